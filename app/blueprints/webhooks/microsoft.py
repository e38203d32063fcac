"""Microsoft's marketplace webhook for one tenant: POST /webhooks/microsoft/<tenant slug> (the "Connection webhook"
of the offer's technical configuration in Partner Center).

No session and no CSRF token: the bearer JWT is the proof, checked before the body is read (401 for a bad one,
nothing changed). 200 for an operation handled now or before (a replay changes nothing, an unknown action is
logged); 400 for a change the portal refused (its operation is PATCHed Failure as well); 503 when Microsoft could
not be asked about the operation (Microsoft delivers it again). Never a 500 for a hostile request.
"""

from __future__ import annotations

import json

from flask import Response, abort, jsonify, request

from app.blueprints.webhooks import bp
from app.extensions import csrf
from app.selectors.tenants import tenant_by_slug
from app.services import marketplace_microsoft
from app.services.errors import AuthenticationFailed, InvalidInput, ServiceError

MAX_PAYLOAD = 64 * 1024  # Microsoft's webhooks are a few kilobytes


@bp.post("/webhooks/microsoft/<tenant_slug>")
@csrf.exempt
def microsoft(tenant_slug: str) -> tuple[Response, int]:
    tenant = tenant_by_slug(tenant_slug) if len(tenant_slug) <= 63 else None
    if tenant is None:
        abort(404)
    if (request.content_length or 0) > MAX_PAYLOAD:
        abort(413)
    try:
        marketplace_microsoft.verify_webhook_token(tenant, request.headers.get("Authorization", ""))
    except AuthenticationFailed:
        return jsonify(error="The bearer token is missing or not valid."), 401
    try:
        payload = json.loads(request.get_data(cache=False, as_text=False) or b"null")
    except ValueError:
        payload = None
    if not isinstance(payload, dict):
        return jsonify(error="The body must be a JSON object."), 400
    try:
        receipt = marketplace_microsoft.handle_webhook(tenant, payload)
    except InvalidInput as error:
        return jsonify(error=error.message), 400
    except ServiceError as error:
        return jsonify(error=error.message), 503
    return jsonify(outcome=receipt.outcome, duplicate=receipt.duplicate), receipt.status
