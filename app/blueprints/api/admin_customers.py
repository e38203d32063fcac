"""/api/v1/admin/customers and /api/v1/admin/subscriptions: a tenant admin finds the tenant's customers and
subscriptions as the support and admin pages do, reads one subscription, and suspends or reinstates it.

The lists are the pages' own searches (app/selectors/customers.py, app/selectors/staff.py); the actions call
the subscription services the admin page calls, so the permission table, the lifecycle's transitions, the
reason's rule and the version check are theirs.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from flask import g
from marshmallow import Schema, ValidationError, fields, validate, validates

from app.blueprints.admin.forms import FURTHEST_DAYS_AHEAD, QUERY_MAX_LENGTH
from app.blueprints.api.base import (
    PageArgs,
    actor,
    api_blueprint,
    decode_cursor,
    encode_cursor,
    etag,
    if_match_version,
    page_schema,
    stale,
)
from app.blueprints.api.ids import OpaqueId
from app.blueprints.api.subscriptions import Input, SubscriptionSchema
from app.clock import now
from app.domain.subscriptions import SubscriptionStatus
from app.models import Subscription
from app.selectors import staff
from app.selectors.customers import find_customers
from app.selectors.paging import MAX_PAGE, Page
from app.services import subscriptions as service
from app.services.errors import Conflict, NotFound

blp = api_blueprint("admin_customers", __name__, url_prefix="/admin", audience="admin",
                    description="Tenant admins: find customers and subscriptions; suspend and reinstate.")

SUBSCRIPTION = "/subscriptions/<opaque(kind='sub'):subscription_id>"


def _page_of(cursor: str | None) -> int:
    """These lists are the pages' numbered pages: the cursor holds the next page's number."""
    after = decode_cursor(cursor)
    return after[0] if after and isinstance(after[0], int) and 1 <= after[0] <= MAX_PAGE else 1


def _paged(results: Page[Any]) -> dict[str, Any]:
    return {"data": results.rows, "nextCursor": encode_cursor([results.page + 1]) if results.has_next else None}


# --- customers -------------------------------------------------------------------------------------------------

class CustomerSchema(Schema):
    id = OpaqueId("customer", required=True)
    name = fields.String(required=True)
    email = fields.String(required=True)
    state = fields.Function(lambda row: row.state.value, required=True,
                            metadata={"description": "active, unconfirmed, disabled, deleted or purged"})
    stateLabel = fields.String(attribute="state_label")
    createdAt = fields.AwareDateTime(attribute="created_at")


class CustomerArgs(PageArgs):
    q = fields.String(load_default="", validate=validate.Length(max=QUERY_MAX_LENGTH),
                      metadata={"description": "part of the customer's name or email, any case"})


@blp.route("/customers")
@blp.arguments(CustomerArgs, location="query", as_kwargs=True)
@blp.response(200, page_schema(CustomerSchema))
def list_customers(cursor: str | None, limit: int, q: str) -> dict[str, Any]:
    """The tenant's customers by name, as support's search finds them (follow `nextCursor`)."""
    return _paged(find_customers(g.tenant, query=q, page=_page_of(cursor), per_page=limit))


# --- subscriptions ---------------------------------------------------------------------------------------------

class SubscriptionRowSchema(Schema):
    id = OpaqueId("sub", required=True)
    customerName = fields.String(attribute="customer_name", required=True)
    customerEmail = fields.String(attribute="customer_email", required=True)
    planName = fields.String(attribute="plan_name", required=True)
    status = fields.String(required=True)
    price = fields.Function(lambda row: {"amount": row.price_minor, "currency": row.currency},
                            metadata={"description": "per interval, in minor units"})
    interval = fields.String(required=True)
    quantity = fields.Integer(required=True)
    serversReady = fields.Integer(attribute="servers_ready")
    serversTotal = fields.Integer(attribute="servers_total")
    serverName = fields.String(attribute="server_name", allow_none=True)
    next = fields.Function(lambda row: {"label": row.milestone.label,
                                        "at": row.milestone.at.isoformat() if row.milestone.at else None},
                           metadata={"description": "the next date that matters, and what happens then"})


class SubscriptionArgs(PageArgs):
    q = fields.String(load_default="", validate=validate.Length(max=QUERY_MAX_LENGTH),
                      metadata={"description": "part of the customer's name or email, or #id"})
    status = fields.String(load_default=None, validate=validate.OneOf([s.value for s in SubscriptionStatus]))


class AdminSubscriptionSchema(SubscriptionSchema):
    customerId = OpaqueId("customer", attribute="user_id", required=True)
    customerEmail = fields.Function(lambda sub: sub.user.email, required=True)
    suspendedAt = fields.AwareDateTime(attribute="suspended_at", allow_none=True)
    serversDeleteAt = fields.AwareDateTime(attribute="servers_delete_at", allow_none=True)


class SuspendSchema(Input):
    reason = fields.String(required=True, validate=validate.Length(max=service.REASON_MAX_LENGTH),
                           metadata={"description": "kept in the subscription's history, which the customer sees"})
    graceEndsOn = fields.Date(load_default=None, metadata={
        "description": "the day it is canceled unless reinstated (UTC); default 30 days from now"})

    @validates("graceEndsOn")
    def _grace(self, value: date | None, **_: Any) -> None:
        if value is None:
            return
        if value <= now().date():
            raise ValidationError("Choose a day after today.")
        if value > now().date() + timedelta(days=FURTHEST_DAYS_AHEAD):
            raise ValidationError("Choose a day within the next ten years.")


class ReinstateSchema(Input):
    reason = fields.String(required=True, validate=validate.Length(max=service.REASON_MAX_LENGTH))


@blp.route("/subscriptions")
@blp.arguments(SubscriptionArgs, location="query", as_kwargs=True)
@blp.response(200, page_schema(SubscriptionRowSchema))
def list_subscriptions(cursor: str | None, limit: int, q: str, status: str | None) -> dict[str, Any]:
    """Every customer's subscriptions, newest first, as the admin list finds them (follow `nextCursor`)."""
    return _paged(staff.find_subscriptions(g.tenant, status=SubscriptionStatus(status) if status else None,
                                           query=q, page=_page_of(cursor), per_page=limit))


def _found(subscription_id: int) -> tuple[Subscription, dict[str, str]]:
    subscription = staff.subscription_for_staff(g.tenant, subscription_id)
    if subscription is None:
        raise NotFound("There is no such subscription.")
    return subscription, {"ETag": etag(subscription.version)}


@blp.route(SUBSCRIPTION)
@blp.response(200, AdminSubscriptionSchema)
def get_subscription(subscription_id: int) -> tuple[Subscription, dict[str, str]]:
    """Any of the tenant's subscriptions; its ETag goes into If-Match on suspend and reinstate."""
    return _found(subscription_id)


@blp.route(SUBSCRIPTION + "/suspend", methods=["POST"])
@blp.arguments(SuspendSchema)
@blp.response(200, AdminSubscriptionSchema)
@blp.alt_response(412, description="If-Match names an older version")
def suspend(body: dict[str, Any], subscription_id: int) -> Any:
    """Suspend an active subscription: its servers are powered off, and it is canceled at the end of the grace
    period unless reinstated."""
    version = if_match_version()
    grace: date | None = body["graceEndsOn"]
    try:
        service.suspend(tenant=g.tenant, actor=actor(), subscription_id=subscription_id, reason=body["reason"],
                        version=version,
                        grace_ends_at=datetime.combine(grace, time(), tzinfo=UTC) if grace else None)
    except Conflict:
        if version is None:
            raise
        return stale()
    return _found(subscription_id)


@blp.route(SUBSCRIPTION + "/reinstate", methods=["POST"])
@blp.arguments(ReinstateSchema)
@blp.response(200, AdminSubscriptionSchema)
@blp.alt_response(412, description="If-Match names an older version")
def reinstate(body: dict[str, Any], subscription_id: int) -> Any:
    """Reinstate a suspended subscription within its grace period: its servers are powered on again."""
    version = if_match_version()
    try:
        service.reinstate(tenant=g.tenant, actor=actor(), subscription_id=subscription_id, reason=body["reason"],
                          version=version)
    except Conflict:
        if version is None:
            raise
        return stale()
    return _found(subscription_id)
