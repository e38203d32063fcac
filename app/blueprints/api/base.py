"""What every API endpoint shares: the blueprint factory (authentication, scopes, JSON bodies, rate limit,
service errors as problems), the acting user, Idempotency-Key, ETag/If-Match and cursor paging.

Adding an area: `blp = api_blueprint("invoices", __name__, url_prefix="/invoices")` in a module of this
package, registered in `init_app` (app/blueprints/api/__init__.py); its views call the same services as the
pages, with `actor()` and `g.tenant`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from functools import wraps
from typing import Any, Literal

from flask import Response, current_app, g, request
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from app.domain.accounts import Role
from app.domain.api_tokens import Scope, granted
from app.domain.policy import ActorKind
from app.extensions import limiter
from app.models import ApiToken, User
from app.services import api_tokens, idempotency
from app.services.actors import Actor
from app.services.errors import ServiceError
from app.services.ordering import IDEMPOTENCY_KEY
from app.web.api import PROBLEM_JSON, problem, service_problem

DEFAULT_RATE_LIMIT = "120 per minute"
BEARER = "Bearer "


class ApiRefusal(Exception):
    """Raised by the request checks: answered as the problem `response`."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


def _token_key() -> str:
    """Rate limits count per token (its public lookup id), else per address: a token's limit is its own."""
    from app.domain.api_tokens import lookup_of

    header = request.headers.get("Authorization", "")
    lookup = lookup_of(header[len(BEARER):].strip()) if header.startswith(BEARER) else None
    return f"api-token:{lookup}" if lookup else f"api-addr:{request.remote_addr or 'unknown'}"


def api_blueprint(name: str, import_name: str, *, url_prefix: str, audience: Literal["customer", "admin"]
                  = "customer", description: str = "", raw_bodies: frozenset[str] = frozenset()) -> Blueprint:
    """A blueprint of API endpoints under /api/v1`url_prefix`, for `audience`.

    Every request needs a bearer token of the request's tenant (a session cookie alone is refused); GET needs
    the read scope, other methods write, an admin area admin (and a tenant admin's token); customer areas
    serve customers' tokens. Rate limited per token (API_RATE_LIMIT). Bodies are JSON objects, or of a media
    type in `raw_bodies` (such as text/csv) that the area's views read themselves.
    """
    blp = Blueprint(f"api_{name}", import_name, url_prefix=url_prefix, description=description)
    blp.audience = audience  # type: ignore[attr-defined]  # read by the API's schema tests (which token to send)

    @blp.before_request
    def _authenticate() -> Response | None:
        try:
            token = _token()
            _check_body(raw_bodies)
            needed = Scope.ADMIN if audience == "admin" else Scope.READ if request.method in (
                "GET", "HEAD", "OPTIONS") else Scope.WRITE
            if not granted(api_tokens.scopes_of(token), needed):
                return problem(403, f"This token lacks the {needed.value} scope this call needs.",
                               code="forbidden", requiredScope=needed.value)
            wanted = Role.TENANT_ADMIN if audience == "admin" else Role.CUSTOMER
            if token.user.role is not wanted:
                return problem(403, f"These endpoints are for {wanted.label.lower()} accounts.")
            g.api_token, g.api_user = token, token.user
        except ApiRefusal as refusal:
            return refusal.response
        except ServiceError as error:
            return service_problem(error)
        return None

    blp.register_error_handler(ServiceError, service_problem)
    blp.register_error_handler(ApiRefusal, lambda refusal: refusal.response)
    limiter.limit(lambda: current_app.config.get("API_RATE_LIMIT", DEFAULT_RATE_LIMIT), key_func=_token_key)(blp)
    return blp


def _token() -> ApiToken:
    header = request.headers.get("Authorization", "")
    if not header.startswith(BEARER):
        raise ApiRefusal(problem(401, "Send a personal API token: 'Authorization: Bearer ptk_...'. "
                                      "A browser session cannot call the API."))
    return api_tokens.authenticate(g.tenant, header[len(BEARER):].strip())


def _check_body(raw_bodies: frozenset[str] = frozenset()) -> None:
    """Bodies are JSON objects without NUL characters (PostgreSQL cannot store one), or of a media type the area
    reads itself."""
    if request.method not in ("POST", "PUT", "PATCH", "DELETE") or not (
            request.content_length or request.headers.get("Transfer-Encoding")):
        return
    if request.mimetype in raw_bodies:
        return
    if request.mimetype != "application/json":
        raise ApiRefusal(problem(415, "Send the body as application/json."))
    try:
        body = json.loads(request.get_data(cache=True) or b"null")
    except (ValueError, RecursionError):  # RecursionError: nested deeper than any real request
        raise ApiRefusal(problem(400, "The body is not valid JSON.")) from None
    if not isinstance(body, dict):
        raise ApiRefusal(problem(400, "The body must be a JSON object."))
    if "\x00" in json.dumps(body, ensure_ascii=False):
        raise ApiRefusal(problem(400, "The body contains a NUL character, which is not allowed."))


def actor() -> Actor:
    """The token's user as a service sees them: a customer's token acts as `ActorKind.API_TOKEN` (owner-bound,
    a customer's rights, recorded as the API in the history); a tenant admin's token acts as the admin."""
    user: User = g.api_user
    if user.role is Role.CUSTOMER:
        return Actor(user=user, kind=ActorKind.API_TOKEN)
    return Actor(user=user)


# --- Idempotency-Key -------------------------------------------------------------------------------------------

def idempotent(view: Callable[..., Any]) -> Callable[..., Any]:
    """A creating POST: requires `Idempotency-Key`; the same key and body get the first answer again (with
    `Idempotent-Replayed: true`), the same key with another body 422, while the first still runs 409.

    Put it right under `@blp.route`, above `@blp.arguments`/`@blp.response`, so that it keeps the final answer.
    """

    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        key = request.headers.get("Idempotency-Key", "")
        if not key:
            return problem(428, "Send an Idempotency-Key header (for example a UUID) so that a retry cannot "
                                "create a second one.", code="precondition-required")
        if not IDEMPOTENCY_KEY.match(key):
            return problem(400, "Idempotency-Key: up to 64 letters, digits and . _ : -",
                           errors={"Idempotency-Key": ["Up to 64 letters, digits and . _ : -"]})
        fingerprint = hashlib.sha256(b"\n".join((request.method.encode(), request.path.encode(),
                                                 _canonical_body()))).hexdigest()
        token: ApiToken = g.api_token
        claim = idempotency.claim(tenant=g.tenant, user_id=g.api_user.id, token_id=token.id, key=key,
                                  fingerprint=fingerprint)
        if claim.outcome is idempotency.Outcome.MISMATCH:
            return problem(422, "This Idempotency-Key was used with another request.",
                           code="idempotency-key-reused")
        if claim.outcome is idempotency.Outcome.IN_PROGRESS:
            return problem(409, "The first request with this Idempotency-Key is still running; retry shortly.",
                           code="idempotency-key-in-use")
        if claim.outcome is idempotency.Outcome.REPLAY:
            replay = current_app.response_class(  # a refusal was a problem: it is again
                json.dumps(claim.body), status=claim.status,
                mimetype=PROBLEM_JSON if claim.status >= 400 else "application/json")
            replay.headers["Idempotent-Replayed"] = "true"
            return replay
        assert claim.row_id is not None
        try:
            response = current_app.make_response(view(*args, **kwargs))
        except ServiceError as error:  # the rules refused it: that is the answer, for retries too
            response = service_problem(error)
        except Exception:  # invalid fields (webargs' 422) or a failure: a corrected retry may run
            idempotency.release(claim.row_id)
            raise
        if response.status_code >= 500:
            idempotency.release(claim.row_id)
        else:
            idempotency.finish(claim.row_id, response.status_code, response.get_json())
        return response

    return wrapped


def _canonical_body() -> bytes:
    raw = request.get_data(cache=True)
    try:
        return json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":")).encode() if raw else b""
    except ValueError:
        return raw


# --- ETag / If-Match (subscriptions carry a version that every change bumps) ------------------------------------

def etag(version: int) -> str:
    return f'"v{version}"'


def if_match_version() -> int | None:
    """The version an `If-Match: "v<n>"` names; None without the header (or `*`). A malformed one: 412."""
    header = request.headers.get("If-Match", "").strip()
    if not header or header == "*":
        return None
    value = header.removeprefix("W/").strip('"')
    if value.startswith("v") and value[1:].isdigit() and len(value) < 12:
        return int(value[1:])
    raise ApiRefusal(problem(412, 'If-Match must be an ETag this API sent, like "v3".'))


def stale() -> Response:
    return problem(412, "The subscription has changed since you read it: GET it again, then retry with its ETag.")


# --- cursor paging ---------------------------------------------------------------------------------------------

class PageArgs(Schema):
    cursor = fields.String(load_default=None, metadata={"description": "nextCursor of the previous page"})
    limit = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))


def page_schema(item: type[Schema]) -> type[Schema]:
    """The response schema of a page of `item`s: `data` and `nextCursor` (null on the last page)."""
    return type(f"{item.__name__.removesuffix('Schema')}PageSchema", (Schema,), {
        "data": fields.List(fields.Nested(item), required=True),
        "nextCursor": fields.String(allow_none=True, required=True),
    })


def _cursor_mac(payload: bytes) -> str:
    digest = hmac.new(current_app.config["SECRET_KEY"].encode(), b"api-cursor:" + payload, hashlib.sha256)
    return base64.urlsafe_b64encode(digest.digest()[:9]).decode()


def encode_cursor(last_key: list[Any]) -> str:
    """An opaque cursor holding the last row's sort key; signed, so it cannot be forged to another key."""
    payload = base64.urlsafe_b64encode(json.dumps(last_key, separators=(",", ":")).encode()).decode().rstrip("=")
    return f"{payload}.{_cursor_mac(payload.encode())}"


def decode_cursor(cursor: str | None) -> list[Any] | None:
    """The sort key in `cursor` (None for the first page); a forged or garbled one: 422 naming `cursor`."""
    if cursor is None:
        return None
    payload, _, mac = cursor.partition(".")
    try:
        if not hmac.compare_digest(mac, _cursor_mac(payload.encode())):
            raise ValueError
        value = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        if not isinstance(value, list):
            raise ValueError
    except (ValueError, TypeError):
        raise ApiRefusal(problem(422, "This cursor is not one this API gave.",
                                 errors={"cursor": ["Not a cursor this API gave; start without one."]})) from None
    return value

