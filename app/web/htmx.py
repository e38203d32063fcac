"""htmx helpers: when a fragment is wanted, and the response headers htmx understands."""

from __future__ import annotations

from flask import Response, render_template, request


def wants_fragment() -> bool:
    """True for a plain htmx request; boosted navigation and history restores want full pages."""
    headers = request.headers
    return (
        headers.get("HX-Request") == "true"
        and headers.get("HX-Boosted") != "true"
        and headers.get("HX-History-Restore-Request") != "true"
    )


def render(page: str, fragment: str, **context: object) -> str:
    """Render the full page, or only its fragment when htmx asked for it."""
    return render_template(fragment if wants_fragment() else page, **context)


def redirect(location: str) -> Response:
    """Tell htmx to navigate the whole page (a 302 would be swapped into the fragment)."""
    response = Response(status=204)
    response.headers["HX-Redirect"] = location
    return response


def trigger(response: Response, event: str) -> Response:
    response.headers["HX-Trigger"] = event
    return response


def add_vary(response: Response) -> Response:
    """Full pages and fragments share URLs, so caches must key on HX-Request."""
    response.vary.add("HX-Request")
    return response
