"""What the portal accepts from a request before any view sees it.

Hostile or malformed input is refused here, once for every route, with a clear message and before anything
is read from or written to the database:

- ids in URLs fit the database's integer columns (a larger number matches no route: 404);
- bodies are HTML form posts (URL-encoded or multipart); anything else answers 415, so a JSON body never
  reaches a form (Flask-WTF would otherwise read JSON as form data); the JSON API (`API_PREFIX`) checks its
  own bodies, JSON only;
- URL-encoded bodies are held to the same number of fields as multipart ones (`MAX_FORM_PARTS`), which
  werkzeug applies to multipart only;
- no text carries a NUL character (PostgreSQL cannot store one; nothing legitimate sends one): 400.
"""

from __future__ import annotations

from io import BytesIO
from typing import IO, Any

from flask import Flask, abort, request
from flask.wrappers import Request
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.formparser import FormDataParser
from werkzeug.routing import IntegerConverter, Map

from app.web.api import is_api_request

# The largest id the portal's integer primary keys hold on every database it runs on (PostgreSQL `integer`).
MAX_ID = 2**31 - 1
FORM_MIMETYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})
BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Blueprints that read bodies of their own (a JSON API, webhooks) and check them themselves.
ACCEPTS_OTHER_BODIES: frozenset[str | None] = frozenset({"webhooks"})

NOT_A_FORM = "This address accepts HTML form submissions only. Nothing was changed."
NUL_REFUSED = "The request contains a character that is not allowed (NUL). Nothing was changed."
TOO_MANY_FIELDS = "The form has more fields than this portal accepts. Nothing was changed."


class IdConverter(IntegerConverter):
    """`<int:...>` in every route: a non-negative whole number no larger than the database's ids."""

    def __init__(self, map: Map, fixed_digits: int = 0, min: int | None = None, max: int | None = MAX_ID,
                 signed: bool = False) -> None:
        super().__init__(map, fixed_digits=fixed_digits, min=min, max=MAX_ID if max is None else max,
                         signed=signed)


class _FormDataParser(FormDataParser):
    def _parse_urlencoded(self, stream: IO[bytes], mimetype: str, content_length: int | None,
                          options: dict[str, str]) -> Any:
        body = stream.read()
        if self.max_form_parts is not None and body.count(b"&") >= self.max_form_parts:
            raise RequestEntityTooLarge(TOO_MANY_FIELDS)
        return super()._parse_urlencoded(BytesIO(body), mimetype, content_length, options)


class PortalRequest(Request):
    form_data_parser_class = _FormDataParser


def _has_nul(values: MultiDict[str, Any]) -> bool:
    return any("\x00" in key or (isinstance(value, str) and "\x00" in value) for key, value in values.items(multi=True))


def check_request() -> None:
    """before_request: refuse what no view can use (see the module docstring)."""
    has_body = request.method in BODY_METHODS and bool(request.content_length or
                                                          request.headers.get("Transfer-Encoding"))
    if (has_body and request.mimetype not in FORM_MIMETYPES and request.blueprint not in ACCEPTS_OTHER_BODIES
            and not is_api_request()):
        abort(415, NOT_A_FORM)
    if "\x00" in request.path or _has_nul(request.args):
        abort(400, NUL_REFUSED)
    if request.method in BODY_METHODS and request.mimetype in FORM_MIMETYPES and _form_has_nul():
        abort(400, NUL_REFUSED)


def _form_has_nul() -> bool:
    return _has_nul(request.form) or any("\x00" in (upload.filename or "") for upload in request.files.values())


def init_app(app: Flask) -> None:
    """Before the routes are added: ids are bounded; before any other check: bad input is refused."""
    app.request_class = PortalRequest
    app.url_map.converters["int"] = IdConverter
    app.before_request(check_request)
