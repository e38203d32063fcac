"""Error pages: a clear message and the request id, never a trace."""

from __future__ import annotations

import logging

from flask import Flask, g, render_template
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, InternalServerError

from app.web import htmx

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
    429: ("Too many attempts", "Too many attempts in a short time. Please wait a minute and try again."),
    500: ("Something went wrong", "We could not finish your request. It has been logged; please try again."),
}


def render_error(code: int, detail: str | None = None) -> tuple[str, int]:
    title, message = MESSAGES.get(code, MESSAGES[500])
    template = "errors/_error.html" if htmx.wants_fragment() else "errors/error.html"
    page = render_template(template, code=code, title=title, message=detail or message,
                           request_id=g.get("request_id", "-"))
    return page, code


def handle_http(error: HTTPException) -> tuple[str, int]:
    code = error.code or 500
    # Our own aborts carry a message meant for people; werkzeug's defaults are replaced by ours.
    detail = error.description if error.description != type(error).description else None
    if code == 429:  # the limiter's own text names the limit; people get the plain message
        detail = None
    return render_error(code, detail)


def handle_csrf(error: CSRFError) -> tuple[str, int]:
    log.warning("csrf refused: %s", error.description)
    return render_error(400, "This form has expired or was not sent from this portal. Reload the page and "
                             "try again.")


def handle_unexpected(error: Exception) -> tuple[str, int]:
    original = getattr(error, "original_exception", None) or error
    log.exception("unhandled error (request %s)", g.get("request_id", "-"), exc_info=original)
    return render_error(500)


def init_app(app: Flask) -> None:
    app.register_error_handler(CSRFError, handle_csrf)
    app.register_error_handler(HTTPException, handle_http)
    app.register_error_handler(InternalServerError, handle_unexpected)
