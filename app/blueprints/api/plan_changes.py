"""/api/v1/subscriptions/{id}/plan-change...: change a subscription's plan or quantity, or migrate it, as the
Change plan pages do (app/services/plan_changes.py): the plans it may move to with their price for it, a preview,
the change itself, and cancelling a change scheduled for the period's end.

The preview and the change are worked out by the same service function from the same inputs, so what a preview
answers is what the change then charges, to the cent. A paid target needs a saved card; cards are added only on
the payment provider's page in a browser, so the API answers that with a `payment-method-required` problem
pointing there.
"""

from __future__ import annotations

from typing import Any

from flask import Response, g, url_for
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from app.blueprints.api.base import actor, api_blueprint, etag, idempotent, if_match_version, stale
from app.blueprints.api.ids import OpaqueId
from app.blueprints.api.subscriptions import Input, MoneySchema, SubscriptionSchema
from app.domain.plan_changes import ChangeAction
from app.models import Subscription
from app.selectors import subscriptions as selectors
from app.services import plan_changes
from app.services.errors import Conflict, NotFound
from app.services.ordering import PaymentMethodRequired
from app.web.api import problem

blp = api_blueprint("plan_changes", __name__, url_prefix="/subscriptions",
                    description="Change a subscription's plan or quantity, or migrate it: targets, preview, apply; "
                                "cancel a scheduled change.")

SUBSCRIPTION = "/<opaque(kind='sub'):subscription_id>"
ADD_CARD = ("A saved card is needed for this plan. Cards are added only in a browser, on the Payment methods "
            "page (addCardUrl), never over the API; then try again (a change with a new Idempotency-Key: this "
            "refusal is the answer to the one sent).")


class ChangeTargetSchema(Schema):
    planId = OpaqueId("plan", required=True)
    name = fields.String(required=True)
    productName = fields.String(required=True)
    interval = fields.String(required=True)
    quantityAllowed = fields.Boolean(required=True)
    price = fields.Nested(MoneySchema, allow_none=True, required=True,
                          metadata={"description": "per interval for this subscription (its server type and "
                                                   "location kept, its quantity); null where the plan is not "
                                                   "offered for it"})


class ScheduledChangeSchema(Schema):
    action = fields.String(required=True)
    planId = OpaqueId("plan", attribute="plan_id", required=True)
    planName = fields.Function(lambda change: change.plan.name, required=True)
    quantity = fields.Integer(required=True)
    price = fields.Function(lambda change: {"amount": change.price_minor, "currency": change.subscription.currency},
                            required=True, metadata={"description": "per interval, from effectiveAt"})
    serverType = fields.String(attribute="server_type", allow_none=True, required=True,
                               metadata={"description": "the servers' new type, when they are resized"})
    effectiveAt = fields.AwareDateTime(attribute="effective_at", required=True)


class TargetListSchema(Schema):
    data = fields.List(fields.Nested(ChangeTargetSchema), required=True)
    changeable = fields.Boolean(required=True, metadata={"description": "false: the subscription cannot change "
                                                                        "now (only an active one can)"})
    scheduledChange = fields.Nested(ScheduledChangeSchema, allow_none=True, required=True,
                                    metadata={"description": "the change waiting for the period's end; another "
                                                             "change is refused until it is canceled"})
    migrationTargetId = OpaqueId("plan", allow_none=True, required=True,
                                 metadata={"description": "the plan `migrate` moves to; null when there is none"})


class ChangeSchema(Input):
    action = fields.String(required=True, validate=validate.OneOf([action.value for action in ChangeAction]),
                           metadata={"description": "plan: to planId; quantity: the same plan, another quantity; "
                                                    "migrate: to the plan's migration target"})
    planId = OpaqueId("plan", load_default=None, metadata={"description": "required for action plan"})
    quantity = fields.Integer(load_default=None, validate=validate.Range(min=1, max=999_999),
                              metadata={"description": "the new quantity; the current one when absent"})

    @validates_schema
    def _plan_for_plan(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data.get("action") == ChangeAction.PLAN.value and data.get("planId") is None:
            raise ValidationError("Choose the plan to change to.", field_name="planId")
        if data.get("action") == ChangeAction.QUANTITY.value and data.get("quantity") is None:
            raise ValidationError("Give the new quantity.", field_name="quantity")


class ProrationSchema(Schema):
    credit = fields.Nested(MoneySchema, required=True, metadata={"description": "unused time at the current "
                                                                               "price (negative)"})
    debit = fields.Nested(MoneySchema, required=True, metadata={"description": "the rest of the period at the new "
                                                                             "price"})
    net = fields.Nested(MoneySchema, required=True)


class ChangePreviewSchema(Schema):
    action = fields.String(required=True)
    planId = OpaqueId("plan", required=True)
    planName = fields.String(required=True)
    quantity = fields.Integer(required=True)
    currentPrice = fields.Nested(MoneySchema, required=True)
    newPrice = fields.Nested(MoneySchema, required=True, metadata={"description": "per interval, from effectiveAt"})
    interval = fields.String(required=True)
    immediate = fields.Boolean(required=True, metadata={"description": "false: scheduled for the period's end"})
    upgrade = fields.Boolean(required=True)
    effectiveAt = fields.AwareDateTime(required=True)
    proration = fields.Nested(ProrationSchema, allow_none=True, required=True,
                              metadata={"description": "the two lines of a change applied now; null when "
                                                       "scheduled"})
    dueNow = fields.Nested(MoneySchema, required=True, metadata={"description": "invoiced now and charged to the "
                                                                               "default card"})
    balanceCredit = fields.Nested(MoneySchema, required=True,
                                  metadata={"description": "what an immediate downgrade puts on the balance"})
    serverType = fields.String(allow_none=True, required=True)
    location = fields.String(allow_none=True, required=True)
    locationSurcharge = fields.Nested(MoneySchema, required=True, metadata={"description": "included in newPrice"})
    resizeTo = fields.String(allow_none=True, required=True,
                             metadata={"description": "the new server type when the servers are resized"})


class AppliedSchema(Schema):
    change = fields.Nested(ChangePreviewSchema, required=True,
                           metadata={"description": "what was applied or scheduled"})
    subscription = fields.Nested(SubscriptionSchema, required=True)


def _own(subscription_id: int) -> Subscription:
    subscription = selectors.customer_subscription(g.tenant, g.api_user, subscription_id, items=False)
    if subscription is None:
        raise NotFound("There is no such subscription.")
    return subscription


def _shown(proposal: plan_changes.Proposal) -> dict[str, Any]:
    found, currency = proposal.preview, proposal.subscription.currency
    proration = found.proration
    return {
        "action": found.action.value, "planId": proposal.target.id, "planName": proposal.target.name,
        "quantity": found.quantity, "currentPrice": found.current_price, "newPrice": found.new_price,
        "interval": found.interval.value, "immediate": found.immediate, "upgrade": found.upgrade,
        "effectiveAt": found.effective_at,
        "proration": None if proration is None else {"credit": proration.credit, "debit": proration.debit,
                                                     "net": proration.net},
        "dueNow": found.due_now, "balanceCredit": found.balance_credit, "serverType": found.target.server_type,
        "location": proposal.location,
        "locationSurcharge": {"amount": proposal.surcharge_minor, "currency": currency},
        "resizeTo": found.resize_to,
    }


def _card_needed(error: PaymentMethodRequired) -> Response:
    return problem(error.status_code, ADD_CARD, code="payment-method-required",
                   addCardUrl=url_for("billing.methods", _external=True), reason=error.message)


def _no_such_plan(error: NotFound) -> Response:
    return problem(422, error.message, code="validation-failed", errors={"planId": [error.message]})


@blp.route(SUBSCRIPTION + "/plan-change/targets")
@blp.response(200, TargetListSchema)
def targets(subscription_id: int) -> dict[str, Any]:
    """The plans Change plan may move this subscription to, each priced for it (a short list: not paged), whether
    it can change now, and the change scheduled for the period's end, if any."""
    subscription = _own(subscription_id)
    plans = plan_changes.targets(g.tenant, subscription)
    prices = plan_changes.target_prices(subscription, plans)
    return {"data": [{"planId": plan.id, "name": plan.name, "productName": plan.product.name,
                      "interval": plan.interval.value, "quantityAllowed": plan.quantity_allowed,
                      "price": None if prices[plan.id] is None else {"amount": prices[plan.id],
                                                                     "currency": plan.currency}}
                     for plan in plans],
            "migrationTargetId": subscription.plan.migration_target_id,
            "changeable": plan_changes.changeable(subscription), "scheduledChange": subscription.scheduled_change}


@blp.route(SUBSCRIPTION + "/plan-change/preview", methods=["POST"])
@blp.arguments(ChangeSchema)
@blp.response(200, ChangePreviewSchema)
@blp.alt_response(400, description="payment-method-required: add a card in a browser first")
def preview(body: dict[str, Any], subscription_id: int) -> Any:
    """What the change would do, without doing it: the new price, the proration lines, what is due now, when it
    takes effect, the server type and location, and a resize. The change then charges exactly this."""
    _own(subscription_id)
    try:
        proposal = plan_changes.preview(tenant=g.tenant, actor=actor(), subscription_id=subscription_id,
                                        action=ChangeAction(body["action"]), plan_id=body["planId"],
                                        quantity=body["quantity"])
    except PaymentMethodRequired as error:
        return _card_needed(error)
    except NotFound as error:  # the subscription is theirs: what was not found is the plan
        return _no_such_plan(error)
    return _shown(proposal)


@blp.route(SUBSCRIPTION + "/plan-change", methods=["POST"])
@idempotent
@blp.arguments(ChangeSchema)
@blp.response(200, AppliedSchema)
@blp.alt_response(400, description="payment-method-required: add a card in a browser first")
@blp.alt_response(412, description="If-Match names an older version")
@blp.doc(parameters=[{"in": "header", "name": "Idempotency-Key", "required": True, "schema": {"type": "string"},
                      "description": "a new one per change; a retry with the same one and body is answered as "
                                     "the first, and charges once"}])
def apply(body: dict[str, Any], subscription_id: int) -> Any:
    """Apply the change (an upgrade, or a downgrade whose plan says so: now, invoiced now) or schedule it for the
    period's end. With If-Match, only at that version of the subscription."""
    version = if_match_version()
    current = _own(subscription_id).version
    try:
        proposal = plan_changes.apply(
            tenant=g.tenant, actor=actor(), subscription_id=subscription_id, action=ChangeAction(body["action"]),
            version=current if version is None else version, plan_id=body["planId"], quantity=body["quantity"])
    except PaymentMethodRequired as error:
        return _card_needed(error)
    except NotFound as error:
        return _no_such_plan(error)
    except Conflict:
        if version is None:
            raise
        return stale()
    subscription = _own(subscription_id)
    return {"change": _shown(proposal), "subscription": subscription}, {"ETag": etag(subscription.version)}


@blp.route(SUBSCRIPTION + "/scheduled-change", methods=["DELETE"])
@blp.response(200, SubscriptionSchema)
@blp.alt_response(412, description="If-Match names an older version")
def cancel_scheduled(subscription_id: int) -> Any:
    """Cancel the change waiting for the period's end: the subscription stays on its plan. Without a scheduled
    change: a `rule-refused` problem."""
    version = if_match_version()
    current = _own(subscription_id).version
    try:
        plan_changes.cancel_scheduled(tenant=g.tenant, actor=actor(), subscription_id=subscription_id,
                                      version=current if version is None else version)
    except Conflict:
        if version is None:
            raise
        return stale()
    subscription = _own(subscription_id)
    return subscription, {"ETag": etag(subscription.version)}
