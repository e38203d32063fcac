"""/api/v1/subscriptions/{id}/backorder: a subscription waiting for the cloud's capacity, as its page shows it
(its place in the queue, what it could switch to now), and the switch to one of those alternatives
(`backorders.switch_to_alternative`: the waiting subscription leaves the queue and provisioning starts)."""

from __future__ import annotations

from typing import Any

from flask import g
from marshmallow import EXCLUDE, Schema, fields, validate

from app.blueprints.api.availability import AlternativeSchema
from app.blueprints.api.base import actor, api_blueprint, etag, if_match_version, stale
from app.blueprints.api.ids import OpaqueId
from app.blueprints.api.subscriptions import SubscriptionSchema
from app.models import Subscription
from app.selectors import subscriptions as selectors
from app.services import backorders
from app.services.errors import Conflict, NotFound

blp = api_blueprint("backorders", __name__, url_prefix="/subscriptions",
                    description="Subscriptions waiting for capacity: their place in the queue and switching to "
                                "an available alternative.")

BACKORDER = "/<opaque(kind='sub'):subscription_id>/backorder"


class BackorderSchema(Schema):
    subscriptionId = OpaqueId("sub", attribute="subscription_id", required=True)
    serverType = fields.String(attribute="server_type", required=True)
    location = fields.String(required=True)
    position = fields.Integer(required=True, metadata={"description": "place in the queue, 1 for the next"})
    createdAt = fields.AwareDateTime(attribute="created_at", required=True)
    alternatives = fields.List(fields.Nested(AlternativeSchema), required=True,
                               metadata={"description": "what it could switch to now"})


class SwitchSchema(Schema):
    class Meta:
        unknown = EXCLUDE  # fields this API does not know are ignored

    serverType = fields.String(required=True, validate=validate.Length(min=1, max=63))
    location = fields.String(required=True, validate=validate.Length(min=1, max=63))


def _own(subscription_id: int) -> Subscription:
    subscription = selectors.customer_subscription(g.tenant, g.api_user, subscription_id, items=False)
    if subscription is None:
        raise NotFound("There is no such subscription.")
    return subscription


@blp.route(BACKORDER)
@blp.response(200, BackorderSchema)
def get_backorder(subscription_id: int) -> dict[str, Any]:
    """The backorder the subscription waits on, its place in the queue and the alternatives available now;
    404 when it waits on none."""
    subscription = _own(subscription_id)
    backorder = selectors.waiting_backorder(subscription)
    if backorder is None:
        raise NotFound("This subscription is not waiting on a backorder.")
    return {"subscription_id": subscription.id, "server_type": backorder.server_type,
            "location": backorder.location, "position": selectors.backorder_position(backorder),
            "created_at": backorder.created_at,
            "alternatives": backorders.alternatives_for(g.tenant, subscription)}


@blp.route(BACKORDER + "/switch", methods=["POST"])
@blp.arguments(SwitchSchema)
@blp.response(200, SubscriptionSchema)
@blp.alt_response(412, description="If-Match names an older version")
def switch(body: dict[str, Any], subscription_id: int) -> Any:
    """Leave the queue for one of the alternatives GET .../backorder lists; provisioning starts at once.
    Send the subscription's ETag in If-Match (without it, the version read now is used)."""
    version = if_match_version()
    current = _own(subscription_id)
    try:
        subscription = backorders.switch_to_alternative(
            tenant=g.tenant, actor=actor(), subscription_id=subscription_id,
            version=current.version if version is None else version,
            server_type=body["serverType"], location=body["location"])
    except Conflict:
        if version is None:
            raise
        return stale()
    fresh = _own(subscription.id)
    return fresh, {"ETag": etag(fresh.version)}
