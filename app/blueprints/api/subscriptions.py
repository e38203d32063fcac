"""/api/v1/subscriptions: a customer's subscriptions, their servers and the servers' power controls.

Each endpoint calls the service the subscription pages call (ordering, subscriptions, servers) with the
token's actor, so every rule (ownership, states, the free-plan limit, the profile and card an order needs)
is the pages' own.
"""

from __future__ import annotations

import hashlib
from typing import Any

from flask import g, request
from marshmallow import EXCLUDE, Schema, fields, validate

from app.blueprints.api.base import (
    PageArgs,
    actor,
    api_blueprint,
    decode_cursor,
    encode_cursor,
    etag,
    idempotent,
    if_match_version,
    page_schema,
    stale,
)
from app.blueprints.api.ids import OpaqueId
from app.models import Subscription
from app.selectors import subscriptions as selectors
from app.services import ordering, servers
from app.services import subscriptions as service
from app.services.errors import Conflict, NotFound

blp = api_blueprint("subscriptions", __name__, url_prefix="/subscriptions",
                    description="Order, read, cancel and resume subscriptions; their servers and power controls.")

SUBSCRIPTION = "/<opaque(kind='sub'):subscription_id>"
ITEM = SUBSCRIPTION + "/items/<opaque(kind='item'):item_id>"


class Input(Schema):
    class Meta:
        unknown = EXCLUDE  # fields this API does not know are ignored, never stored


class MoneySchema(Schema):
    amount = fields.Integer(required=True, metadata={"description": "in minor units (cents)"})
    currency = fields.String(required=True, metadata={"example": "EUR"})


class SubscriptionSchema(Schema):
    id = OpaqueId("sub", required=True)
    status = fields.String(required=True)
    planId = OpaqueId("plan", attribute="plan_id", required=True)
    planName = fields.Function(lambda sub: sub.plan.name, required=True)
    quantity = fields.Integer(required=True)
    price = fields.Function(lambda sub: {"amount": sub.price_minor, "currency": sub.currency},
                            metadata={"description": "per interval, in minor units"})
    interval = fields.String(required=True)
    autoRenew = fields.Boolean(attribute="auto_renew")
    autoBackorder = fields.Boolean(attribute="auto_backorder")
    requestedConfig = fields.Dict(attribute="requested_config")
    createdAt = fields.AwareDateTime(attribute="created_at", format="iso")
    activatedAt = fields.AwareDateTime(attribute="activated_at", allow_none=True)
    currentPeriodStart = fields.AwareDateTime(attribute="current_period_start", allow_none=True)
    currentPeriodEnd = fields.AwareDateTime(attribute="current_period_end", allow_none=True)
    effectiveAt = fields.AwareDateTime(attribute="effective_at", allow_none=True,
                                       metadata={"description": "when a pending cancellation takes effect"})
    canceledAt = fields.AwareDateTime(attribute="canceled_at", allow_none=True)
    version = fields.Integer(required=True, metadata={"description": 'the ETag is "v<version>"'})


class ItemSchema(Schema):
    id = OpaqueId("item", required=True)
    subscriptionId = OpaqueId("sub", attribute="subscription_id", required=True)
    status = fields.String(required=True)
    serviceKind = fields.String(attribute="service_kind")
    provider = fields.String()
    serverId = fields.String(attribute="server_id", allow_none=True)
    hostname = fields.String(allow_none=True)
    fqdn = fields.String(allow_none=True)
    ipv4 = fields.String(allow_none=True)
    ipv6 = fields.String(allow_none=True)
    config = fields.Dict()
    readyAt = fields.AwareDateTime(attribute="ready_at", allow_none=True)
    errorMessage = fields.String(attribute="error_message", allow_none=True)


class ItemListSchema(Schema):
    data = fields.List(fields.Nested(ItemSchema), required=True)


class ActionSchema(Schema):
    id = fields.String(required=True)
    command = fields.String(required=True)
    status = fields.String(required=True)
    progress = fields.Integer()
    error = fields.String(allow_none=True)


class ServerInfoSchema(Schema):
    serverId = fields.String(attribute="server_id", required=True)
    name = fields.String(required=True)
    power = fields.String(required=True)
    serverType = fields.String(attribute="server_type")
    location = fields.String()
    ipv4 = fields.String(allow_none=True)
    ipv6 = fields.String(allow_none=True)
    privateIp = fields.String(attribute="private_ip", allow_none=True)
    labels = fields.Dict(keys=fields.String(), values=fields.String())
    createdAt = fields.AwareDateTime(attribute="created_at", allow_none=True)
    action = fields.Nested(ActionSchema, allow_none=True)


class OrderSchema(Input):
    planId = OpaqueId("plan", required=True)
    requestedConfig = fields.Dict(keys=fields.String(), load_default=dict,
                                  metadata={"description": "serverType, location or region, image: the plan's "
                                                           "choices (GET the plan for them)"})
    quantity = fields.Integer(load_default=1, validate=validate.Range(min=1, max=1000))
    autoBackorder = fields.Boolean(load_default=False,
                                   metadata={"description": "queue a backorder when the cloud has no capacity"})
    hostname = fields.String(load_default=None, validate=validate.Length(max=63),
                             metadata={"description": "the servers' name; one is made up when absent"})
    sshKeyIds = fields.List(OpaqueId("ssh_key"), load_default=list, validate=validate.Length(max=20))


class CancelSchema(Input):
    reason = fields.String(load_default="", validate=validate.Length(max=service.REASON_MAX_LENGTH))


SubscriptionPageSchema = page_schema(SubscriptionSchema)


def _with_etag(subscription: Subscription) -> tuple[Subscription, dict[str, str]]:
    return subscription, {"ETag": etag(subscription.version)}


def _own(subscription_id: int, *, items: bool = False) -> Subscription:
    subscription = selectors.customer_subscription(g.tenant, g.api_user, subscription_id, items=items)
    if subscription is None:
        raise NotFound("There is no such subscription.")
    return subscription


@blp.route("")
@blp.arguments(PageArgs, location="query", as_kwargs=True)
@blp.response(200, SubscriptionPageSchema)
def list_subscriptions(cursor: str | None, limit: int) -> dict[str, Any]:
    """The token's user's subscriptions, newest first, a page at a time (follow `nextCursor`)."""
    after = decode_cursor(cursor)
    before_id = after[0] if after and isinstance(after[0], int) else None
    rows = selectors.customer_page(g.tenant, g.api_user, before_id=before_id, limit=limit + 1)
    page, more = rows[:limit], len(rows) > limit
    return {"data": page, "nextCursor": encode_cursor([page[-1].id]) if more else None}


@blp.route("", methods=["POST"])
@idempotent
@blp.arguments(OrderSchema)
@blp.response(201, SubscriptionSchema)
@blp.doc(parameters=[{"in": "header", "name": "Idempotency-Key", "required": True, "schema": {"type": "string"},
                      "description": "a new one (a UUID) per order; a retry with the same one and body is "
                                     "answered as the first"}])
def order(body: dict[str, Any]) -> tuple[Subscription, dict[str, str]]:
    """Order a plan: as the order page does (a complete billing profile, a card for paid plans; the cloud's
    capacity checked). The subscription starts `pending_fulfillment` (or `pending_backorder`): poll it until
    it is `active`."""
    subscription = ordering.place_order(
        tenant=g.tenant, actor=actor(), plan_id=body["planId"], requested_config=body["requestedConfig"],
        quantity=body["quantity"], auto_backorder=body["autoBackorder"],
        idempotency_key=_order_key(g.api_user.id, request.headers.get("Idempotency-Key", "")),
        hostname=body["hostname"], ssh_key_ids=body["sshKeyIds"])
    return _with_etag(_own(subscription.id))


def _order_key(user_id: int, key: str) -> str:
    """The order's own idempotency key, per user and header key (the subscriptions' keys are per tenant)."""
    return "api:" + hashlib.sha256(f"{user_id}:{key}".encode()).hexdigest()[:40]


@blp.route(SUBSCRIPTION)
@blp.response(200, SubscriptionSchema)
def get_subscription(subscription_id: int) -> tuple[Subscription, dict[str, str]]:
    """One subscription; its ETag goes into If-Match on cancel and resume."""
    return _with_etag(_own(subscription_id))


@blp.route(SUBSCRIPTION + "/cancel", methods=["POST"])
@blp.arguments(CancelSchema)
@blp.response(200, SubscriptionSchema)
@blp.alt_response(412, description="If-Match names an older version")
def cancel(body: dict[str, Any], subscription_id: int) -> Any:
    """Cancel by the plan's rule: at the period's end (`pending_cancel`) or at once."""
    version = if_match_version()
    try:
        subscription = service.cancel(tenant=g.tenant, actor=actor(), subscription_id=subscription_id,
                                      version=version, reason=body["reason"])
    except Conflict:
        if version is None:
            raise
        return stale()
    return _with_etag(_own(subscription.id))


@blp.route(SUBSCRIPTION + "/resume", methods=["POST"])
@blp.response(200, SubscriptionSchema)
@blp.alt_response(412, description="If-Match names an older version")
def resume(subscription_id: int) -> Any:
    """Take back a pending cancellation before it takes effect."""
    version = if_match_version()
    try:
        subscription = service.resume(tenant=g.tenant, actor=actor(), subscription_id=subscription_id,
                                      version=version)
    except Conflict:
        if version is None:
            raise
        return stale()
    return _with_etag(_own(subscription.id))


@blp.route(SUBSCRIPTION + "/items")
@blp.response(200, ItemListSchema)
def items(subscription_id: int) -> dict[str, Any]:
    """The subscription's servers (at most its quantity: not paged)."""
    return {"data": _own(subscription_id, items=True).items}


@blp.route(ITEM + "/server-info")
@blp.response(200, ServerInfoSchema)
def server_info(subscription_id: int, item_id: int) -> Any:
    """What the cloud says about the server right now."""
    return servers.live_info(tenant=g.tenant, viewer=g.api_user, subscription_id=subscription_id, item_id=item_id)


@blp.route(ITEM + "/actions/<any(start, stop, restart):command>", methods=["POST"])
@blp.response(202, ActionSchema)
def power(subscription_id: int, item_id: int, command: str) -> Any:
    """Start, stop or restart the server; the cloud's action is returned (poll server-info for the result)."""
    return servers.power(tenant=g.tenant, actor=actor(), subscription_id=subscription_id, item_id=item_id,
                         command=servers.PowerCommand(command))
