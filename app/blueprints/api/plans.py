"""/api/v1/plans: the plans a customer can order now, with the choices an order's `requestedConfig` may make
(the same catalogue reads and schema the catalogue and order pages use)."""

from __future__ import annotations

from typing import Any

from flask import g
from marshmallow import Schema, fields

from app.blueprints.api.base import api_blueprint
from app.blueprints.api.ids import OpaqueId
from app.models import Plan
from app.selectors.catalogue import published_offers
from app.services import ordering

blp = api_blueprint("plans", __name__, url_prefix="/plans", description="The plans that can be ordered now.")


class PlanSchema(Schema):
    id = OpaqueId("plan", required=True)
    name = fields.String(required=True)
    productName = fields.Function(lambda plan: plan.product.name, required=True)
    description = fields.String()
    price = fields.Function(lambda plan: {"amount": plan.price_minor, "currency": plan.currency},
                            metadata={"description": "per interval, in minor units; the choices may add to it"})
    interval = fields.String(required=True)
    quantityAllowed = fields.Boolean(attribute="quantity_allowed")
    configSchema = fields.Function(ordering.offered_schema,
                                   metadata={"description": "JSON Schema of requestedConfig: the plan's choices"})


class PlanListSchema(Schema):
    data = fields.List(fields.Nested(PlanSchema), required=True)


@blp.route("")
@blp.response(200, PlanListSchema)
def list_plans() -> dict[str, Any]:
    """Every plan that can be ordered now, by product (a catalogue is short: not paged)."""
    plans: list[Plan] = [plan for offer in published_offers(g.tenant) for plan in offer.plans]
    return {"data": plans}


@blp.route("/<opaque(kind='plan'):plan_id>")
@blp.response(200, PlanSchema)
def get_plan(plan_id: int) -> Plan:
    """One plan that can be ordered now (404 otherwise)."""
    return ordering.orderable_plan(g.tenant, plan_id)
