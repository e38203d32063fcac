"""What every answer must be: no 5xx, no trace, a request id, and the portal's branded error page for errors."""

from __future__ import annotations

import html
import re

from werkzeug.test import TestResponse

from app.web.api import API_PREFIX, PROBLEM_JSON

REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
SHOWN_ID = re.compile(r"Request id: <code>([^<]*)</code>")
ERROR_PAGE = 'class="card card-narrow error-page"'
ERROR_FRAGMENT = 'class="alert alert-error" role="alert"'
TRACES = ("Traceback (most recent call last)", 'File "')


# How a probe must be refused, when it must: the statuses allowed, and whether being sent to log in will do
# (an htmx request of a logged-out browser whose CSRF token is gone is sent to the login page).
REFUSALS = {"too large": ((400, 413), False), "bad CSRF": ((400,), True), "no API token": ((401,), False),
            "no bearer token": ((401,), False)}


def problems(response: TestResponse, *, htmx: bool, tenant_name: str, refusal: str | None = None) -> list[str]:
    """What is wrong with this answer (empty when nothing is)."""
    status = response.status_code
    body = response.get_data().decode("utf-8", "replace")
    found = []
    if status >= 500:
        found.append(f"answered {status}")
    elif refusal and not _refused(response, refusal):
        found.append(f"answered {status}, expected {' or '.join(map(str, REFUSALS[refusal][0]))} ({refusal})")
    if any(trace in body for trace in TRACES):
        found.append("the body shows a Python traceback")
    if 300 <= status < 400 or status == 204:
        return found
    if status >= 400 and response.request.path.startswith(API_PREFIX + "/") and response.mimetype != PROBLEM_JSON:
        found.append(f"the API answered {status} as {response.mimetype}, not as problem details")
    request_id = response.headers.get("X-Request-ID")
    if request_id is None or not REQUEST_ID.match(request_id):
        found.append(f"X-Request-ID header is {request_id!r}")
    if status >= 400 and body and response.mimetype == "text/html":
        found += _error_page_problems(body, status, request_id, htmx=htmx, tenant_name=tenant_name)
    title = re.search(r"<title>(.*?)</title>", body, re.S)
    if title and "<" in title.group(1):
        found.append(f"the page's title holds markup: {title.group(1)[:80]!r}")
    return found


def _refused(response: TestResponse, refusal: str) -> bool:
    statuses, to_login = REFUSALS[refusal]
    target = response.headers.get("HX-Redirect") or response.headers.get("Location") or ""
    return response.status_code in statuses or (to_login and target.startswith("/login"))


def _error_page_problems(body: str, status: int, request_id: str | None, *, htmx: bool, tenant_name: str
                         ) -> list[str]:
    full = "<html" in body
    shown = SHOWN_ID.findall(body)
    if not shown:
        if full and _branded(body, tenant_name):
            return []  # the view's own page, e.g. a form shown again with its errors
        if htmx and not full and status in (409, 422):
            return []  # a fragment htmx swaps in place (see htmx-config in base.html)
        return [f"a {status} that is not the portal's error page: {_start(body)}"]
    found = []
    if html.unescape(shown[0]) != request_id:
        found.append(f"the page shows request id {shown[0]!r}, the X-Request-ID header {request_id!r}")
    if full and not _branded(body, tenant_name):
        found.append(f"the error page lacks the tenant's branding ({_title(body)!r}, not {tenant_name!r})")
    if full and htmx:
        found.append("an htmx request got the full error page, not the errors/_error.html fragment")
    if not full and not htmx:
        found.append("a page request got the bare errors/_error.html fragment")
    if full and f'<p class="error-code">{status}</p>' not in body:
        found.append(f"the error page shows another code than {status}")
    if ERROR_PAGE not in body and ERROR_FRAGMENT not in body:
        found.append("a request id, but not errors/error.html or errors/_error.html (a last-resort page?)")
    return found


def _branded(body: str, tenant_name: str) -> bool:
    """base.html names the tenant in the title."""
    return html.escape(tenant_name) in _title(body)


def _title(body: str) -> str:
    match = re.search(r"<title>(.*?)</title>", body, re.S)
    return " ".join(match.group(1).split()) if match else _start(body)


def _start(body: str, limit: int = 100) -> str:
    text = " ".join(body.split())
    return repr(text[:limit] + ("…" if len(text) > limit else ""))
