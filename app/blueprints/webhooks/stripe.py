"""Stripe's webhooks for one tenant: POST /webhooks/stripe/<tenant slug>, signed with the endpoint's secret.

No session and no CSRF token: the Stripe-Signature header is the proof. 400 for a bad or stale signature,
200 for an event handled now or before (a replay or duplicate changes nothing), 503 when handling needs the
provider and it could not be reached (Stripe sends the event again later).
"""

from __future__ import annotations

from flask import Response, abort, jsonify, request

from app.blueprints.webhooks import bp
from app.extensions import csrf
from app.services import webhooks
from app.services.errors import InvalidInput, NotFound, ServiceError

MAX_PAYLOAD = 512 * 1024  # Stripe's events are a few kilobytes


@bp.post("/webhooks/stripe/<tenant_slug>")
@csrf.exempt
def stripe(tenant_slug: str) -> tuple[Response, int]:
    if len(tenant_slug) > 63 or (request.content_length or 0) > MAX_PAYLOAD:
        abort(404 if len(tenant_slug) > 63 else 413)
    payload = request.get_data(cache=False, as_text=False)
    try:
        receipt = webhooks.receive(tenant_slug=tenant_slug, payload=payload,
                                   signature=request.headers.get("Stripe-Signature", ""))
    except NotFound:
        abort(404)
    except InvalidInput as error:
        return jsonify(error=error.message), 400
    except ServiceError as error:
        return jsonify(error=error.message), 503
    return jsonify(received=receipt.event_id, duplicate=receipt.duplicate, outcome=receipt.outcome), 200
