"""/api/v1/pricing: the price of an order before it is placed, as the order form's price box shows it.

The quote comes from the order's own pricing (`ordering.draft_order`: the config merged with the plan's
defaults and checked against its choices, then priced for the chosen server type and location), so what the
preview says is what the order charges.
"""

from __future__ import annotations

from typing import Any

from flask import g
from marshmallow import Schema, fields, validate

from app.blueprints.api.base import api_blueprint
from app.blueprints.api.ids import OpaqueId
from app.blueprints.api.subscriptions import Input, MoneySchema
from app.services import ordering

blp = api_blueprint("pricing", __name__, url_prefix="/pricing",
                    description="What an order would cost, before it is placed.")


class OrderChoicesSchema(Input):
    planId = OpaqueId("plan", required=True)
    requestedConfig = fields.Dict(keys=fields.String(), load_default=dict,
                                  metadata={"description": "serverType, location or region, image: the plan's "
                                                           "choices (GET the plan for them)"})
    quantity = fields.Integer(load_default=1, validate=validate.Range(min=1, max=1000))


class QuoteLineSchema(Schema):
    description = fields.String(required=True)
    quantity = fields.Integer(required=True)
    unitAmount = fields.Nested(MoneySchema, attribute="unit_amount", required=True)
    amount = fields.Nested(MoneySchema, required=True)


class QuoteSchema(Schema):
    planId = OpaqueId("plan", required=True)
    config = fields.Dict(required=True, metadata={"description": "the requested config with the plan's defaults"})
    quantity = fields.Integer(required=True)
    interval = fields.String(required=True)
    currency = fields.String(required=True)
    recurring = fields.Nested(MoneySchema, required=True, metadata={"description": "per interval"})
    dueNow = fields.Nested(MoneySchema, required=True,
                           metadata={"description": "charged for the first period when the servers are ready"})
    lines = fields.List(fields.Nested(QuoteLineSchema), required=True)
    periodStart = fields.AwareDateTime(required=True)
    periodEnd = fields.AwareDateTime(required=True)


def quote_of(draft: ordering.OrderDraft) -> dict[str, Any]:
    quote = draft.quote
    return {"planId": draft.plan.id, "config": draft.config, "quantity": quote.quantity,
            "interval": str(quote.interval), "currency": quote.recurring.currency, "recurring": quote.recurring,
            "dueNow": quote.due_now, "lines": quote.lines, "periodStart": quote.period_start,
            "periodEnd": quote.period_end}


@blp.route("/preview", methods=["POST"])
@blp.arguments(OrderChoicesSchema)
@blp.response(200, QuoteSchema)
def preview(body: dict[str, Any]) -> dict[str, Any]:
    """The quote for `quantity` of the plan with the chosen config: the recurring price, what is due when the
    servers are ready, and its lines. Changes nothing. Invalid choices answer 422 naming the field."""
    plan = ordering.orderable_plan(g.tenant, body["planId"])
    return quote_of(ordering.draft_order(plan, body["requestedConfig"], body["quantity"]))
