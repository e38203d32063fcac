"""Request ids and the security headers every response carries."""

from __future__ import annotations

import re
import secrets
from urllib.parse import urlsplit, urlunsplit

from flask import Flask, Response, g, request, session

from app.extensions import write_intent
from app.web import htmx

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "object-src 'none'",
    )
)

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


def declare_write_intent() -> None:
    """Requests that change things begin their database transactions ready to write (see extensions)."""
    write_intent.set(request.method not in ("GET", "HEAD", "OPTIONS"))


def writes() -> None:
    """A GET that changes things (a marketplace's landing page records the purchase): its transactions begin
    ready to write, as a POST's do, so SQLite makes them wait for the write lock instead of failing, and on
    PostgreSQL its statements leave the read-only engine (app.extensions._Session)."""
    write_intent.set(True)


def end_write_intent(_error: BaseException | None = None) -> None:
    """After the request, whatever runs next in this context (a test, a command) may write again."""
    write_intent.set(True)


def request_id() -> str:
    """This request's id: a well-formed one from the proxy in front of us, else a new one; made once."""
    if "request_id" not in g:
        incoming = request.headers.get("X-Request-ID", "")
        g.request_id = incoming if _REQUEST_ID.match(incoming) else secrets.token_hex(8)
    return g.request_id


def assign_request_id() -> None:
    request_id()


def relative_location(response: Response) -> None:
    """Redirects to this site name no host: the request's host may be untrusted (see app/web/tenancy.py)."""
    location = response.headers.get("Location")
    if not location:
        return
    parts = urlsplit(location)
    if parts.netloc and parts.netloc.lower() == request.host.lower():
        response.headers["Location"] = urlunsplit(("", "", parts.path or "/", parts.query, parts.fragment))


def add_headers(response: Response) -> Response:
    """Every response, error pages included; reads nothing from the database, so it cannot fail."""
    relative_location(response)
    headers = response.headers
    headers["X-Request-ID"] = request_id()
    headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    headers["X-Content-Type-Options"] = "nosniff"
    headers["X-Frame-Options"] = "DENY"
    headers["Referrer-Policy"] = "same-origin"
    headers["Cross-Origin-Opener-Policy"] = "same-origin"
    headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=(), payment=()"
    if request.is_secure:
        headers["Strict-Transport-Security"] = "max-age=63072000; includeSubDomains"
    if request.endpoint != "static":
        htmx.add_vary(response)
        if "_user_id" in session:
            # Back and htmx history restore must not show account data after logout.
            headers["Cache-Control"] = "no-store"
    return response


def init_app(app: Flask) -> None:
    app.before_request(assign_request_id)
    app.before_request(declare_write_intent)
    app.teardown_request(end_write_intent)
    app.after_request(add_headers)
