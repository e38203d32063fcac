"""/api/v1/usage: metered usage. A customer reads a subscription's usage as the usage page shows it; the
provider records it.

Recording is the provider's: `usage.record` refuses customers (their own usage is not theirs to report), so
POST /usage/record is an admin endpoint (a tenant admin's token with the admin scope), as the CSV upload and
`flask usage record` are. Its `idempotencyKey` makes a retry safe: the same key with the same values answers
the record made the first time, with other values 409.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

from flask import g
from marshmallow import EXCLUDE, Schema, fields, validate

from app.blueprints.api.base import actor, api_blueprint
from app.blueprints.api.ids import OpaqueId
from app.domain.billing import UsageSource
from app.domain.usage import MAX_KEY
from app.models import UsageRecord
from app.selectors import usage as selectors
from app.selectors.usage import UsageSummary
from app.services import usage as service
from app.services.errors import NotFound

blp = api_blueprint("usage", __name__, url_prefix="/usage",
                    description="A usage-based subscription's usage per billing period, with its cost.")
admin_blp = api_blueprint("usage_records", __name__, url_prefix="/usage", audience="admin",
                          description="Recording metered usage (tenant admins' tokens with the admin scope).")

SUBSCRIPTION = "/<opaque(kind='sub'):subscription_id>"


class RecordSchema(Schema):
    class Meta:
        unknown = EXCLUDE  # fields this API does not know are ignored

    subscriptionId = OpaqueId("sub", required=True)
    metric = fields.String(required=True, validate=validate.Length(min=1, max=63),
                           metadata={"description": "one of the plan's metered metrics", "example": "traffic_gb"})
    quantity = fields.Integer(required=True, strict=True, metadata={"description": "units used"})
    timestamp = fields.AwareDateTime(required=True, format="iso",
                                     metadata={"description": "when it was used, with its offset (Z for UTC)"})
    idempotencyKey = fields.String(required=True, validate=validate.Length(min=1, max=MAX_KEY),
                                   metadata={"description": "the same key and values again answer the first "
                                                            "record"})


class UsageRecordSchema(Schema):
    id = OpaqueId("usage_record", required=True)
    subscriptionId = OpaqueId("sub", attribute="subscription_id", required=True)
    metric = fields.String(required=True)
    quantity = fields.Integer(required=True)
    timestamp = fields.AwareDateTime(attribute="recorded_at", required=True)
    idempotencyKey = fields.String(attribute="idempotency_key", required=True)
    source = fields.String(required=True)
    periodStart = fields.AwareDateTime(attribute="period_start", required=True)
    periodEnd = fields.AwareDateTime(attribute="period_end", required=True)


class MeteredPriceSchema(Schema):
    metric = fields.String(required=True)
    label = fields.String(required=True)
    unit = fields.String(required=True)
    unitPrice = fields.Integer(attribute="unit_price_minor", required=True,
                               metadata={"description": "per unit beyond the included ones, in minor units"})
    included = fields.Integer(required=True, metadata={"description": "free units per period"})


class UsageLineSchema(Schema):
    metric = fields.Function(lambda line: line.price.metric, required=True)
    units = fields.Integer(attribute="quantity", required=True)
    billableUnits = fields.Integer(attribute="billable", required=True)
    cost = fields.Integer(attribute="amount_minor", required=True, metadata={"description": "in minor units"})


class PeriodSchema(Schema):
    start = fields.AwareDateTime(required=True)
    end = fields.AwareDateTime(required=True)
    lines = fields.List(fields.Nested(UsageLineSchema), required=True)
    cost = fields.Integer(attribute="cost_minor", required=True,
                          metadata={"description": "the units at the plan's prices, in minor units"})
    billed = fields.Boolean(required=True, metadata={"description": "the billing run has charged it"})
    billedAmount = fields.Integer(attribute="billed_minor", required=True,
                                  metadata={"description": "what it was charged, in minor units"})


class UsageSummarySchema(Schema):
    subscriptionId = OpaqueId("sub", required=True)
    currency = fields.String(required=True)
    prices = fields.List(fields.Nested(MeteredPriceSchema), required=True)
    current = fields.Nested(PeriodSchema, allow_none=True,
                            metadata={"description": "this period so far; null when it takes no usage now"})
    past = fields.List(fields.Nested(PeriodSchema), required=True, metadata={"description": "newest first"})


def _summary(summary: UsageSummary) -> dict[str, Any]:
    return {"subscriptionId": summary.subscription.id, "currency": summary.subscription.currency,
            "prices": summary.prices, "current": summary.current, "past": list(summary.past)}


@blp.route("/summary" + SUBSCRIPTION)
@blp.response(200, UsageSummarySchema)
def summary(subscription_id: int) -> dict[str, Any]:
    """The subscription's usage as its usage page shows it: this period so far and the last twelve, per metric,
    units and cost. 404 for a subscription that is not the token's user's or whose plan meters nothing."""
    found = selectors.subscription_usage(g.tenant, g.api_user, subscription_id)
    if found is None:
        raise NotFound("There is no such usage-based subscription.")
    return _summary(found)


@admin_blp.route("/record", methods=["POST"])
@admin_blp.arguments(RecordSchema)
@admin_blp.response(201, UsageRecordSchema)
def record(body: dict[str, Any]) -> UsageRecord:
    """Record units of a metric used by one of the tenant's subscriptions. A time in a closed billing period,
    in the future, or a metric the plan does not meter is refused with the reason (422)."""
    return service.record(tenant=g.tenant, actor=actor(), subscription_id=body["subscriptionId"],
                          metric=body["metric"], quantity=body["quantity"],
                          recorded_at=body["timestamp"].astimezone(UTC), idempotency_key=body["idempotencyKey"],
                          source=UsageSource.API)
