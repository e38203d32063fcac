"""/api/v1/availability: whether the cloud can place an order's servers now, and what it could place instead.

Both ask `ordering.check_availability`, as the order form does: the cloud's answer may be a few seconds old,
a choice behind waiting backorders counts as taken, and only alternatives the plan lets the customer pick
are offered. The order itself asks the cloud again.
"""

from __future__ import annotations

from typing import Any

from flask import g
from marshmallow import Schema, fields

from app.blueprints.api.base import api_blueprint
from app.blueprints.api.pricing import OrderChoicesSchema
from app.domain.availability import Availability
from app.services import ordering

blp = api_blueprint("availability", __name__, url_prefix="/availability",
                    description="Whether the cloud can place an order now, and the alternatives when it cannot.")


class AlternativeSchema(Schema):
    kind = fields.String(required=True, metadata={"description": "other_location or other_server_type"})
    serverType = fields.String(attribute="server_type", required=True)
    location = fields.String(required=True)


class AvailabilitySchema(Schema):
    available = fields.Boolean(required=True)
    reason = fields.String(attribute="message", required=True,
                           metadata={"description": "why not (empty when available)"})
    permanent = fields.Boolean(required=True,
                               metadata={"description": "the server type is never offered there"})
    alternatives = fields.List(fields.Nested(AlternativeSchema), required=True)


class AlternativeListSchema(Schema):
    data = fields.List(fields.Nested(AlternativeSchema), required=True)


def _check(body: dict[str, Any]) -> Availability:
    plan = ordering.orderable_plan(g.tenant, body["planId"])
    draft = ordering.draft_order(plan, body["requestedConfig"], body["quantity"])
    return ordering.check_availability(g.tenant, draft)


@blp.route("/check", methods=["POST"])
@blp.arguments(OrderChoicesSchema)
@blp.response(200, AvailabilitySchema)
def check(body: dict[str, Any]) -> Availability:
    """Whether the chosen server type can be placed in the chosen location now, with the reason when not."""
    return _check(body)


@blp.route("/alternatives", methods=["POST"])
@blp.arguments(OrderChoicesSchema)
@blp.response(200, AlternativeListSchema)
def alternatives(body: dict[str, Any]) -> dict[str, Any]:
    """What the order form offers instead when the choice is sold out (the same server type elsewhere, or
    another server type here); none when it is available."""
    found = _check(body)
    return {"data": [] if found.available else list(found.alternatives)}
