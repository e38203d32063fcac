"""What every JSON API response shares, whatever answers it: problem details, and no session cookie.

Errors under `API_PREFIX` are RFC 9457 problem details (`application/problem+json`), never HTML pages, also
for what no API view handles (an unknown path, a refused host, a rate limit). Each has a stable `type` URI,
`https://<host>/api/problems/<code>`, that clients branch on; `title` is the same for every problem of a
type, `detail` says what happened here, and validation problems add `errors`: field name -> messages.

API calls authenticate with a bearer token on every request; the portal never gives them a cookie
(`NoApiCookieSessions`), whatever Flask-Login or Flask-WTF would otherwise put in the session.
"""

from __future__ import annotations

import math
import time
from typing import Any, Final

from flask import Flask, Response, current_app, json, request
from flask.sessions import SecureCookieSessionInterface, SessionMixin

from app.services.errors import (
    AuthenticationFailed,
    Conflict,
    Forbidden,
    InvalidInput,
    NotConfirmed,
    NotFound,
    ServiceError,
)
from app.web.security import request_id

API_PREFIX: Final = "/api/v1"
PROBLEM_JSON: Final = "application/problem+json"

# code -> title; the code is the last part of the `type` URI and never changes once published.
PROBLEMS: Final = {
    "bad-request": "The request is malformed",
    "validation-failed": "Some fields are invalid",
    "unauthorized": "Authentication required",
    "forbidden": "Not allowed",
    "not-found": "Not found",
    "method-not-allowed": "Method not allowed",
    "not-acceptable": "Not acceptable",
    "conflict": "Conflict",
    "idempotency-key-in-use": "A request with this Idempotency-Key is still running",
    "idempotency-key-reused": "This Idempotency-Key was used with another request",
    "precondition-failed": "The resource has changed",
    "precondition-required": "A precondition header is required",
    "payload-too-large": "The request body is too large",
    "unsupported-media-type": "The body must be JSON",
    "rate-limited": "Too many requests",
    "rule-refused": "The request breaks a rule",
    "internal-error": "Internal error",
    "service-unavailable": "Temporarily unavailable",
    # Refusals of the ordering rules, by the service error's class name.
    "profile-incomplete": "The billing profile is incomplete",
    "payment-method-required": "A payment method is required",
    "payment-failed": "The payment failed",
    "unavailable": "Not available at the cloud",
}

_BY_STATUS: Final = {400: "bad-request", 401: "unauthorized", 403: "forbidden", 404: "not-found",
                     405: "method-not-allowed", 406: "not-acceptable", 409: "conflict", 412: "precondition-failed",
                     413: "payload-too-large", 415: "unsupported-media-type", 422: "validation-failed",
                     428: "precondition-required", 429: "rate-limited", 500: "internal-error",
                     503: "service-unavailable"}


def is_api_request() -> bool:
    return request.path == API_PREFIX or request.path.startswith(API_PREFIX + "/")


def problem_type(code: str) -> str:
    return f"{request.host_url}api/problems/{code}"


def problem(status: int, detail: str | None = None, *, code: str | None = None,
            errors: dict[str, list[str]] | None = None, headers: dict[str, str] | None = None,
            **extra: Any) -> Response:
    """A problem+json response. `code` defaults to the one for `status`."""
    code = code or _BY_STATUS.get(status, "bad-request" if status < 500 else "internal-error")
    title = PROBLEMS.get(code, PROBLEMS["rule-refused"])
    body: dict[str, Any] = {"type": problem_type(code), "title": title, "status": status,
                            "detail": detail or title, "instance": request.path,
                            "requestId": request_id()}
    if errors:
        body["errors"] = errors
    body.update(extra)
    response = current_app.response_class(json.dumps(body), status=status, mimetype=PROBLEM_JSON)
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="api"'
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def service_problem(error: ServiceError) -> Response:
    """The problem for an error a service raised: its message is meant for the caller; a field is named."""
    errors = getattr(error, "errors", None)  # ConfigInvalid: field -> message
    if errors:
        return problem(422, error.message, code="validation-failed",
                       errors={name: [message] for name, message in errors.items()})
    if error.field:
        return problem(422, error.message, code="validation-failed", errors={error.field: [error.message]})
    if isinstance(error, NotFound):
        return problem(404, error.message)
    if isinstance(error, AuthenticationFailed):
        return problem(401, error.message)
    if isinstance(error, Forbidden | NotConfirmed):
        return problem(403, error.message)
    if isinstance(error, Conflict):
        return problem(409, error.message)
    if isinstance(error, InvalidInput):
        return problem(422, error.message, code="rule-refused")
    # Other refusals (an incomplete profile, no card, unavailable): a stable code from the error's class.
    status = error.status_code if 400 <= error.status_code < 500 else 422
    code = _kebab(type(error).__name__)
    extra: dict[str, Any] = {}
    availability = getattr(error, "availability", None)
    if availability is not None:
        extra["alternatives"] = [{"serverType": alt.server_type, "location": alt.location, "kind": str(alt.kind)}
                                 for alt in availability.alternatives]
    return problem(status, error.message, code=code, **extra)


def rate_limited() -> Response:
    """429 with Retry-After from the limit that was hit."""
    from app.extensions import limiter

    current = limiter.current_limit
    retry_after = max(1, math.ceil(current.reset_at - time.time())) if current is not None else 60
    return problem(429, "Too many requests with this token. Try again after the Retry-After seconds.",
                   headers={"Retry-After": str(retry_after)})


def _kebab(name: str) -> str:
    return "".join(f"-{char.lower()}" if char.isupper() and index else char.lower()
                   for index, char in enumerate(name))


class NoApiCookieSessions(SecureCookieSessionInterface):
    """The browser session, except that API responses never carry a cookie: tokens are the API's only state."""

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        if is_api_request():
            return
        super().save_session(app, session, response)


def no_store(response: Response) -> Response:
    """after_request: API answers hold account data; no cache keeps them."""
    if is_api_request():
        response.headers["Cache-Control"] = "no-store"
    return response


def init_app(app: Flask) -> None:
    app.session_interface = NoApiCookieSessions()
    app.after_request(no_store)
