"""Error pages: a clear message and the request id, never a trace, whatever state the request was left in."""

from __future__ import annotations

import logging

from flask import Flask, Response, g, render_template, request
from flask_login import current_user
from flask_wtf.csrf import CSRFError
from markupsafe import escape
from werkzeug.exceptions import HTTPException, InternalServerError

from app.extensions import db
from app.web import api, htmx
from app.web.access import to_login
from app.web.security import request_id

log = logging.getLogger(__name__)

MESSAGES = {
    400: ("Bad request", "The request could not be understood. Please go back and try again."),
    401: ("Please log in", "You need to log in to see this page."),
    403: ("Not allowed", "Your account does not have access to this page."),
    404: ("Not found", "There is nothing here. It may have moved, or the link may be wrong."),
    405: ("Not allowed", "This address does not accept that kind of request."),
    409: ("Changed in the meantime", "Someone changed this in the meantime. Please reload the page."),
    410: ("No longer available", "This is no longer available."),
    413: ("Too large", "What you sent is larger than this portal accepts."),
    415: ("Not accepted", "This address does not accept what was sent."),
    429: ("Too many attempts", "Too many attempts in a short time. Please wait a minute and try again."),
    500: ("Something went wrong", "We could not finish your request. It has been logged; please try again."),
}

CSRF_MESSAGE = "This form has expired or was not sent from this portal. Reload the page and try again."

# The last resort when even the error page cannot be rendered (the database is gone, a template is broken).
PLAIN_PAGE = ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title} · {brand}</title>"
              "</head><body><main><h1>{title}</h1><p>{message}</p><p>Request id: <code>{request_id}</code></p>"
              "</main></body></html>")


def render_error(code: int, detail: str | None = None) -> tuple[str, int]:
    title, message = MESSAGES.get(code, MESSAGES[500])
    context = {"code": code, "title": title, "message": detail or message, "request_id": request_id()}
    template = "errors/_error.html" if htmx.wants_fragment() else "errors/error.html"
    try:
        return render_template(template, **context), code
    except Exception:
        log.exception("the error page could not be rendered; answering with the plain one")
        _discard_transaction()
        brand = g.get("tenant_name") or "Cloud portal"
        return PLAIN_PAGE.format(brand=escape(brand), **{k: escape(v) for k, v in context.items()}), code


def handle_http(error: HTTPException) -> tuple[str, int] | Response:
    if api.is_api_request():
        return _api_problem(error)
    code = error.code or 500
    # Our own aborts carry a message meant for people; werkzeug's defaults are replaced by ours.
    detail = error.description if error.description != type(error).description else None
    limit = getattr(error, "limit", None)  # set by the limiter
    if limit is not None and not limit.error_message:  # the limiter's own text names the limit: people get ours
        detail = None
    return render_error(code, detail)


def handle_csrf(error: CSRFError) -> tuple[str, int] | Response:
    log.warning("csrf refused: %s", error.description)
    if htmx.wants_fragment() and not current_user.is_authenticated:
        # Logged out in another tab: the session (and its CSRF token) is gone. Go to the login page, then back.
        return to_login()
    return render_error(400, CSRF_MESSAGE)


def handle_unexpected(error: Exception) -> tuple[str, int] | Response:
    original = getattr(error, "original_exception", None) or error
    log.error("unhandled error in %s %s (request %s)", request.method, request.path, request_id(),
              exc_info=original)
    _discard_transaction()
    if api.is_api_request():
        return api.problem(500)
    return render_error(500)


def _api_problem(error: HTTPException) -> Response:
    """An HTTP error under the API's prefix: problem+json. webargs' 422 carries the fields' messages."""
    code = error.code or 500
    if code == 429:
        return api.rate_limited()
    detail = error.description if error.description != type(error).description else None
    messages = getattr(error, "data", {}).get("messages") if hasattr(error, "data") else None
    if code == 422 and messages:
        errors: dict[str, list[str]] = {}
        for fields in messages.values():  # location (json, query, headers) -> field -> messages
            for name, texts in fields.items():
                errors[name] = _flat(texts)
        return api.problem(422, "Some fields are invalid; see errors.", errors=errors)
    headers = {"Allow": ", ".join(error.valid_methods)} if getattr(error, "valid_methods", None) else None
    return api.problem(code, detail, headers=headers)


def _flat(texts: object) -> list[str]:
    """webargs' messages for one field: a list, or a dict for nested fields and list items."""
    if isinstance(texts, list):
        return [str(text) for text in texts]
    if isinstance(texts, dict):
        return [f"{key}: {message}" for key, value in texts.items() for message in _flat(value)]
    return [str(texts)]


def _discard_transaction() -> None:
    """A failed statement leaves the transaction aborted (PostgreSQL): roll back before reading again."""
    try:
        db.session.rollback()
    except Exception:
        log.exception("rolling back after an error failed")


def init_app(app: Flask) -> None:
    app.register_error_handler(CSRFError, handle_csrf)
    app.register_error_handler(HTTPException, handle_http)
    app.register_error_handler(InternalServerError, handle_unexpected)
