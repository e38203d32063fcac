"""/api/v1/admin/plans/..., /admin/products/... and /admin/operations: the catalogue's lifecycle for tenant
admins, as the admin area's lifecycle pages drive it.

Plan and product transitions call app/services/catalogue_lifecycle.py (which asks the transition table, locks
the rows and records who did what). Replace and retire are previewed first (the same numbers the preview page
shows, from app/selectors/catalogue_operations.py, no writes), then started as an operation that runs in the
background; the operation's progress and per-subscription outcomes are read here, and it can be paused and
resumed.
"""

from __future__ import annotations

from typing import Any

from flask import g
from marshmallow import Schema, fields, validate

from app.blueprints.api.base import (
    PageArgs,
    actor,
    api_blueprint,
    decode_cursor,
    encode_cursor,
    idempotent,
    page_schema,
)
from app.blueprints.api.ids import OpaqueId, encode
from app.blueprints.api.subscriptions import Input
from app.clock import now
from app.domain.catalogue import CatalogueState
from app.models import CatalogueOperation, Plan, Product
from app.selectors import catalogue_operations as selectors
from app.selectors.paging import MAX_PAGE, Page
from app.services import catalogue_lifecycle as service
from app.services.errors import NotFound

blp = api_blueprint("admin_catalogue_lifecycle", __name__, url_prefix="/admin", audience="admin",
                    description="Tenant admins: publish, deprecate, supersede, replace and retire plans and "
                                "products; follow, pause and resume replace and retire operations.")

PLAN = "/plans/<opaque(kind='plan'):plan_id>"
PRODUCT = "/products/<opaque(kind='product'):product_id>"
OPERATION = "/operations/<opaque(kind='operation'):operation_id>"
IDEMPOTENCY_HEADER = [{"in": "header", "name": "Idempotency-Key", "required": True, "schema": {"type": "string"},
                       "description": "a new one (a UUID) per start; a retry with the same one and body is "
                                      "answered as the first, and starts nothing"}]
LIVE = (CatalogueState.PUBLISHED, CatalogueState.DEPRECATED)


def _money(amount: int | None, currency: str) -> dict[str, Any] | None:
    return None if amount is None else {"amount": amount, "currency": currency}


# --- schemas ---------------------------------------------------------------------------------------------------

class PlanStateSchema(Schema):
    id = OpaqueId("plan", required=True)
    name = fields.String(required=True)
    productId = OpaqueId("product", attribute="product_id", required=True)
    state = fields.String(required=True)
    migrationTargetId = OpaqueId("plan", attribute="migration_target_id", allow_none=True)


class ProductStateSchema(Schema):
    id = OpaqueId("product", required=True)
    slug = fields.String(required=True)
    name = fields.String(required=True)
    version = fields.Integer(required=True)
    state = fields.String(required=True)
    plans = fields.List(fields.Nested(PlanStateSchema))


class MappingTargetSchema(Input):
    planId = OpaqueId("plan", required=True)
    targetPlanId = OpaqueId("plan", required=True)


class DeprecateSchema(Input):
    targetPlanId = OpaqueId("plan", load_default=None, allow_none=True,
                            metadata={"description": "the plan its customers are offered to move to"})


class SetTargetSchema(Input):
    targetPlanId = OpaqueId("plan", required=True)
    deprecate = fields.Boolean(load_default=False, metadata={"description": "deprecate the plan as well"})


class SupersedeSchema(Input):
    targets = fields.List(fields.Nested(MappingTargetSchema), required=True, validate=validate.Length(min=1, max=200),
                          metadata={"description": "a target for every published or deprecated plan"})


class ReplaceSchema(Input):
    targets = fields.List(fields.Nested(MappingTargetSchema), required=True, validate=validate.Length(min=1, max=200),
                          metadata={"description": "each plan to replace and the plan its subscribers move to"})
    productId = OpaqueId("product", load_default=None, allow_none=True,
                         metadata={"description": "replace the whole product (map each of its live plans)"})


class RetireSchema(Input):
    planIds = fields.List(OpaqueId("plan"), load_default=list, validate=validate.Length(max=200))
    productId = OpaqueId("product", load_default=None, allow_none=True,
                         metadata={"description": "retire the whole product (its published and deprecated plans)"})


class ByPlanSchema(Schema):
    planId = OpaqueId("plan", required=True)
    planName = fields.String(required=True)
    targetPlanId = OpaqueId("plan", allow_none=True)
    subscriptions = fields.Integer(required=True)


class PriceChangeSchema(Schema):
    old = fields.Dict(required=True)
    new = fields.Dict(required=True)
    subscriptions = fields.Integer(required=True)


class OperationPreviewSchema(Schema):
    subscriptions = fields.Integer(required=True, metadata={"description": "open subscriptions it touches"})
    byPlan = fields.List(fields.Nested(ByPlanSchema), required=True)
    priceChanges = fields.List(fields.Nested(PriceChangeSchema))
    proration = fields.Dict(allow_none=True, metadata={"description": "net of the credits and debits the move "
                                                                      "charges, in minor units"})
    resizes = fields.Integer(metadata={"description": "servers to be resized to the target's server type"})
    noServerType = fields.Integer(metadata={"description": "moved to a target that names no server type"})
    billedNow = fields.Integer(metadata={"description": "in a paid period now: charged or credited for the rest"})


class OperationSchema(Schema):
    id = OpaqueId("operation", required=True)
    kind = fields.String(required=True)
    status = fields.String(required=True, metadata={"description": "running, paused, finished or failed"})
    actorName = fields.String(attribute="actor_name")
    productId = OpaqueId("product", attribute="product_id", allow_none=True)
    planIds = fields.Function(lambda op: [encode("plan", plan_id) for plan_id in op.plan_ids])
    targets = fields.Function(lambda op: [{"planId": encode("plan", int(source)),
                                           "targetPlanId": encode("plan", target)}
                                          for source, target in op.mapping.items()],
                              metadata={"description": "replace: each plan and the plan it moved to"})
    total = fields.Integer(required=True, metadata={"description": "subscriptions counted when it started"})
    done = fields.Integer(required=True)
    percent = fields.Integer(required=True)
    moved = fields.Integer()
    canceled = fields.Integer()
    skipped = fields.Integer()
    failed = fields.Integer()
    message = fields.String()
    startedAt = fields.AwareDateTime(attribute="started_at")
    updatedAt = fields.AwareDateTime(attribute="updated_at")
    finishedAt = fields.AwareDateTime(attribute="finished_at", allow_none=True)


class OutcomeSchema(Schema):
    id = OpaqueId("outcome", required=True)
    subscriptionId = OpaqueId("sub", required=True)
    outcome = fields.String(required=True, metadata={"description": "moved, canceled, skipped or failed"})
    fromPlanId = OpaqueId("plan", allow_none=True)
    toPlanId = OpaqueId("plan", allow_none=True)
    oldPrice = fields.Dict(allow_none=True)
    newPrice = fields.Dict(allow_none=True)
    proration = fields.Dict(allow_none=True)
    resizeNeeded = fields.Boolean()
    notified = fields.Boolean()
    message = fields.String()
    createdAt = fields.AwareDateTime()


# --- plans and products ----------------------------------------------------------------------------------------

def _plan(plan_id: int) -> Plan:
    plan = selectors.plans(g.tenant, [plan_id]).get(plan_id)
    if plan is None:
        raise NotFound("There is no such plan.")
    return plan


def _product(product_id: int) -> Product:
    product = selectors.product(g.tenant, product_id)
    if product is None:
        raise NotFound("There is no such product.")
    return product


@blp.route(PLAN + "/publish", methods=["POST"])
@blp.response(200, PlanStateSchema)
def publish_plan(plan_id: int) -> Plan:
    """A draft plan takes orders (its product must be published)."""
    service.publish_plan(tenant=g.tenant, actor=actor(), plan_id=plan_id)
    return _plan(plan_id)


@blp.route(PLAN + "/deprecate", methods=["POST"])
@blp.arguments(DeprecateSchema)
@blp.response(200, PlanStateSchema)
def deprecate_plan(body: dict[str, Any], plan_id: int) -> Plan:
    """No new orders; its subscribers keep their service and are told (with the target, if given)."""
    service.deprecate_plan(tenant=g.tenant, actor=actor(), plan_id=plan_id, target_id=body["targetPlanId"])
    return _plan(plan_id)


@blp.route(PLAN + "/set-target", methods=["POST"])
@blp.arguments(SetTargetSchema)
@blp.response(200, PlanStateSchema)
def set_target(body: dict[str, Any], plan_id: int) -> Plan:
    """Offer the plan's customers a plan to move to (they choose); deprecate it as well if asked."""
    service.set_target(tenant=g.tenant, actor=actor(), plan_id=plan_id, target_id=body["targetPlanId"],
                       deprecate=body["deprecate"])
    return _plan(plan_id)


@blp.route(PLAN + "/clear-target", methods=["POST"])
@blp.response(200, PlanStateSchema)
def clear_target(plan_id: int) -> Plan:
    """Take back the plan's migration target."""
    service.set_target(tenant=g.tenant, actor=actor(), plan_id=plan_id, target_id=None)
    return _plan(plan_id)


@blp.route(PRODUCT + "/publish", methods=["POST"])
@blp.response(200, ProductStateSchema)
def publish_product(product_id: int) -> Product:
    """A draft product and its draft plans take orders."""
    service.publish_product(tenant=g.tenant, actor=actor(), product_id=product_id)
    return _product(product_id)


@blp.route(PRODUCT + "/next-version", methods=["POST"])
@idempotent
@blp.response(201, ProductStateSchema)
@blp.doc(parameters=IDEMPOTENCY_HEADER)
def next_version(product_id: int) -> Product:
    """A draft copy of a published or deprecated product and its plans, with what they offer: edit and publish
    it, then supersede or replace this version with it."""
    copy = service.next_version(tenant=g.tenant, actor=actor(), product_id=product_id)
    return _product(copy.id)


@blp.route(PRODUCT + "/supersede", methods=["POST"])
@blp.arguments(SupersedeSchema)
@blp.response(200, ProductStateSchema)
def supersede(body: dict[str, Any], product_id: int) -> Product:
    """Deprecate the product and each of its plans, each with its own migration target; customers choose."""
    service.supersede(tenant=g.tenant, actor=actor(), product_id=product_id, mapping=_mapping(body["targets"]))
    return _product(product_id)


def _mapping(targets: list[dict[str, int]]) -> dict[int, int]:
    return {target["planId"]: target["targetPlanId"] for target in targets}


# --- replace and retire ----------------------------------------------------------------------------------------

def _preview(preview: selectors.Preview, mapping: dict[int, int] | None = None) -> dict[str, Any]:
    currency = preview.currency
    return {
        "subscriptions": preview.subscriptions,
        "byPlan": [{"planId": source.id, "planName": source.name, "targetPlanId": target.id if target else None,
                    "subscriptions": count} for source, target, count in preview.by_plan],
        "priceChanges": [{"old": _money(change.old_minor, change.currency),
                          "new": _money(change.new_minor, change.currency), "subscriptions": change.count}
                         for change in preview.price_changes],
        "proration": _money(preview.proration_minor, currency) if mapping is not None else None,
        "resizes": preview.resizes, "noServerType": preview.no_server_type, "billedNow": preview.billed_now,
    }


def _known(plan_ids: list[int]) -> None:
    """Plans named in a body that are not the tenant's are not found, as in a path."""
    if set(plan_ids) - set(selectors.plans(g.tenant, plan_ids)):
        raise NotFound("There is no such plan.")


def _retired_plans(body: dict[str, Any]) -> list[int]:
    if body["productId"] is not None:
        return [plan.id for plan in _product(body["productId"]).plans if plan.state in LIVE]
    _known(body["planIds"])
    return list(body["planIds"])


@blp.route("/operations/replace/preview", methods=["POST"])
@blp.arguments(ReplaceSchema)
@blp.response(200, OperationPreviewSchema)
def preview_replace(body: dict[str, Any]) -> dict[str, Any]:
    """What replacing each plan by its target would do now: no writes. Start it with POST /admin/operations/replace."""
    mapping = _mapping(body["targets"])
    if body["productId"] is not None:
        _product(body["productId"])
    _known(list(mapping))
    service.check_replace(g.tenant, mapping)
    return _preview(selectors.preview_replace(g.tenant, mapping, at=now()), mapping)


@blp.route("/operations/replace", methods=["POST"])
@idempotent
@blp.arguments(ReplaceSchema)
@blp.response(201, OperationSchema)
@blp.doc(parameters=IDEMPOTENCY_HEADER)
def start_replace(body: dict[str, Any]) -> CatalogueOperation:
    """Retire each plan now and move its subscribers to its target in the background; poll the operation."""
    return service.start_replace(tenant=g.tenant, actor=actor(), mapping=_mapping(body["targets"]),
                                 product_id=body["productId"])


@blp.route("/operations/retire/preview", methods=["POST"])
@blp.arguments(RetireSchema)
@blp.response(200, OperationPreviewSchema)
def preview_retire(body: dict[str, Any]) -> dict[str, Any]:
    """What retiring the plans (or the product) would do: every open subscription canceled now. No writes."""
    return _preview(selectors.preview_retire(g.tenant, _retired_plans(body)))


@blp.route("/operations/retire", methods=["POST"])
@idempotent
@blp.arguments(RetireSchema)
@blp.response(201, OperationSchema)
@blp.doc(parameters=IDEMPOTENCY_HEADER)
def start_retire(body: dict[str, Any]) -> CatalogueOperation:
    """Retire the plans (or the product) now and cancel their open subscriptions in the background."""
    return service.start_retire(tenant=g.tenant, actor=actor(), plan_ids=body["planIds"],
                                product_id=body["productId"])


# --- operations ------------------------------------------------------------------------------------------------

def _page_of(cursor: str | None) -> int:
    """The operations pages are numbered: the cursor holds the next page's number."""
    after = decode_cursor(cursor)
    return after[0] if after and isinstance(after[0], int) and 1 <= after[0] <= MAX_PAGE else 1


def _next(results: Page[Any]) -> str | None:
    return encode_cursor([results.page + 1]) if results.has_next else None


def _operation(operation_id: int) -> CatalogueOperation:
    operation = selectors.operation(g.tenant, operation_id)
    if operation is None:
        raise NotFound("There is no such operation.")
    return operation


@blp.route("/operations")
@blp.arguments(PageArgs, location="query", as_kwargs=True)
@blp.response(200, page_schema(OperationSchema))
def list_operations(cursor: str | None, limit: int) -> dict[str, Any]:
    """Every catalogue change, newest first (each transition is recorded with who made it)."""
    results = selectors.operations_page(g.tenant, _page_of(cursor), per_page=limit)
    return {"data": results.rows, "nextCursor": _next(results)}


@blp.route(OPERATION)
@blp.response(200, OperationSchema)
def get_operation(operation_id: int) -> CatalogueOperation:
    """One operation: its status, progress and counts (poll it while `status` is running)."""
    return _operation(operation_id)


@blp.route(OPERATION + "/outcomes")
@blp.arguments(PageArgs, location="query", as_kwargs=True)
@blp.response(200, page_schema(OutcomeSchema))
def outcomes(cursor: str | None, limit: int, operation_id: int) -> dict[str, Any]:
    """What the operation did to each subscription, in the order it did it."""
    operation = _operation(operation_id)
    currency = {plan.id: plan.currency for plan in selectors.plans(g.tenant, operation.plan_ids).values()}
    results = selectors.outcomes_page(g.tenant, operation_id, _page_of(cursor), per_page=limit)
    rows = []
    for row in results.rows:
        money = currency.get(row.from_plan_id or 0, "")
        rows.append({"id": row.id, "subscriptionId": row.subscription_id, "outcome": row.outcome.value,
                     "fromPlanId": row.from_plan_id, "toPlanId": row.to_plan_id,
                     "oldPrice": _money(row.old_price_minor, money), "newPrice": _money(row.new_price_minor, money),
                     "proration": _money(row.proration_minor, money), "resizeNeeded": row.resize_needed,
                     "notified": row.notified, "message": row.message, "createdAt": row.created_at})
    return {"data": rows, "nextCursor": _next(results)}


@blp.route(OPERATION + "/pause", methods=["POST"])
@blp.response(200, OperationSchema)
def pause(operation_id: int) -> CatalogueOperation:
    """Stop a running replace or retire after the chunk under way; nothing is undone."""
    return service.pause(tenant=g.tenant, actor=actor(), operation_id=operation_id)


@blp.route(OPERATION + "/resume", methods=["POST"])
@blp.response(200, OperationSchema)
def resume(operation_id: int) -> CatalogueOperation:
    """Take a paused (or failed) operation up again where it stopped."""
    return service.resume(tenant=g.tenant, actor=actor(), operation_id=operation_id)
