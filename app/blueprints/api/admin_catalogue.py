"""/api/v1/admin/service-types, /admin/products and /admin/plans: tenant admins read and edit the catalogue
through the catalogue editing service the admin pages call (app/services/catalogue_editing.py): every check
(schemas, cloud-init templates, offers among the service type's choices, slugs) and the audit trail are its.

A PATCH changes the fields it sends and keeps the others as they are. A published plan's new price reaches its
subscribers only after the plan's notice: the PATCH is refused with a problem listing each change and the date
subscribers start paying it, until it is sent again with `confirm: true`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import g
from marshmallow import Schema, fields, validate

from app.blueprints.api.base import actor, api_blueprint, idempotent
from app.blueprints.api.ids import OpaqueId
from app.blueprints.api.subscriptions import Input
from app.domain.catalogue import ChangeRule, Interval, Provider
from app.domain.plan_offers import IMAGE_KEY, LocationOffer, TypePrice
from app.models import Plan, Product, ServiceType
from app.selectors import catalogue as selectors
from app.services import catalogue_editing as editing
from app.services import cloud_prices
from app.services.errors import InvalidInput, NotFound, ServiceError
from app.web.api import problem

blp = api_blueprint("admin_catalogue", __name__, url_prefix="/admin", audience="admin",
                    description="Tenant admins: read and edit service types, products and plans.")

SERVICE_TYPE = "/service-types/<opaque(kind='service_type'):service_type_id>"
PRODUCT = "/products/<opaque(kind='product'):product_id>"
PLAN = "/plans/<opaque(kind='plan'):plan_id>"
IDEMPOTENCY_HEADER = [{"in": "header", "name": "Idempotency-Key", "required": True, "schema": {"type": "string"},
                       "description": "a new one (a UUID) per create; a retry with the same one and body is "
                                      "answered as the first"}]
CONFIRM_CODE = "price-change-unconfirmed"


def _money(amount: int | None, currency: str) -> dict[str, Any] | None:
    return None if amount is None else {"amount": amount, "currency": currency}


# The service's field -> this API's, where it is not just its camelCase.
RENAMED = {"price_minor": "price", "markup": "markupBp"}


@contextmanager
def _api_fields() -> Iterator[None]:
    """A refusal names the field as this API does (`configSchema`, not the service's `config_schema`)."""
    try:
        yield
    except ServiceError as error:
        if error.field:
            head, *rest = error.field.split("_")
            error.field = RENAMED.get(error.field, head + "".join(word.capitalize() for word in rest))
        raise


def _price_changes(changes: Any, currency: str) -> list[dict[str, Any]]:
    """A published plan's pending price changes: what subscribers pay, and from when."""
    return [{"serverType": change.server_type or None, "old": _money(change.old_price_minor, currency),
             "new": _money(change.new_price_minor, currency), "effectiveAt": change.effective_at.isoformat()}
            for change in changes]


def _unconfirmed(pending: editing.ConfirmPriceChange, currency: str) -> Any:
    return problem(422, pending.message, code=CONFIRM_CODE, errors={"confirm": [pending.message]},
                   priceChanges=_price_changes(pending.changes, currency))


class MoneyIn(Schema):
    amount = fields.Integer(required=True, validate=validate.Range(min=0, max=100_000_000),
                            metadata={"description": "in minor units (cents)"})
    currency = fields.String(load_default=None, metadata={"description": "the plan's currency, if given"})


# --- service types ---------------------------------------------------------------------------------------------

class ServiceTypeSchema(Schema):
    id = OpaqueId("service_type", required=True)
    slug = fields.String(required=True)
    name = fields.String(required=True)
    provider = fields.String(required=True)
    configSchema = fields.Dict(attribute="config_schema", metadata={"description": "JSON Schema of the choices"})
    cloudInitTemplate = fields.String(attribute="cloud_init_template")


class ServiceTypeIn(Input):
    slug = fields.String(validate=validate.Length(max=63))
    name = fields.String(validate=validate.Length(max=200))
    provider = fields.String(validate=validate.OneOf([p.value for p in Provider]))
    configSchema = fields.Dict(metadata={"description": "a JSON Schema object"})
    cloudInitTemplate = fields.String(validate=validate.Length(max=64 * 1024))


class ServiceTypeCreate(ServiceTypeIn):
    slug = fields.String(required=True, validate=validate.Length(max=63))
    name = fields.String(required=True, validate=validate.Length(max=200))
    provider = fields.String(required=True, validate=validate.OneOf([p.value for p in Provider]))
    configSchema = fields.Dict(required=True)
    cloudInitTemplate = fields.String(load_default="", validate=validate.Length(max=64 * 1024))


class ServiceTypeListSchema(Schema):
    data = fields.List(fields.Nested(ServiceTypeSchema), required=True)


def _service_type_input(body: dict[str, Any], row: ServiceType | None = None) -> editing.ServiceTypeInput:
    def pick(name: str, current: Any) -> Any:
        return body.get(name, current)

    schema = pick("configSchema", row.config_schema if row else {})
    return editing.ServiceTypeInput(
        slug=pick("slug", row.slug if row else ""), name=pick("name", row.name if row else ""),
        provider=Provider(pick("provider", row.provider.value if row else Provider.NONE.value)),
        config_schema=json.dumps(schema), cloud_init_template=pick("cloudInitTemplate",
                                                                   row.cloud_init_template if row else ""))


def _service_type(service_type_id: int) -> ServiceType:
    row = selectors.service_type_for_admin(g.tenant, service_type_id)
    if row is None:
        raise NotFound("There is no such service type.")
    return row


@blp.route("/service-types")
@blp.response(200, ServiceTypeListSchema)
def list_service_types() -> dict[str, Any]:
    """The tenant's service types, by name (a catalogue is short: not paged)."""
    return {"data": selectors.service_types(g.tenant)}


@blp.route("/service-types", methods=["POST"])
@idempotent
@blp.arguments(ServiceTypeCreate)
@blp.response(201, ServiceTypeSchema)
@blp.doc(parameters=IDEMPOTENCY_HEADER)
def create_service_type(body: dict[str, Any]) -> ServiceType:
    """A new service type: its provider, the JSON Schema of the choices an order makes, its cloud-init."""
    with _api_fields():
        return editing.create_service_type(tenant=g.tenant, actor=actor(), values=_service_type_input(body))


@blp.route(SERVICE_TYPE)
@blp.response(200, ServiceTypeSchema)
def get_service_type(service_type_id: int) -> ServiceType:
    return _service_type(service_type_id)


@blp.route(SERVICE_TYPE, methods=["PATCH"])
@blp.arguments(ServiceTypeIn)
@blp.response(200, ServiceTypeSchema)
def update_service_type(body: dict[str, Any], service_type_id: int) -> ServiceType:
    """Change the fields sent; its plans' offers must stay among the new schema's choices."""
    row = _service_type(service_type_id)
    with _api_fields():
        return editing.update_service_type(tenant=g.tenant, actor=actor(), service_type_id=row.id,
                                           values=_service_type_input(body, row))


# --- products --------------------------------------------------------------------------------------------------

class PlanSummarySchema(Schema):
    id = OpaqueId("plan", required=True)
    slug = fields.String(required=True)
    name = fields.String(required=True)
    state = fields.String(required=True)


class AdminProductSchema(Schema):
    id = OpaqueId("product", required=True)
    slug = fields.String(required=True)
    name = fields.String(required=True)
    description = fields.String()
    version = fields.Integer(required=True)
    state = fields.String(required=True)
    plans = fields.List(fields.Nested(PlanSummarySchema))


class ProductIn(Input):
    slug = fields.String(validate=validate.Length(max=63))
    name = fields.String(validate=validate.Length(max=200))
    description = fields.String(validate=validate.Length(max=2000))
    version = fields.Integer(validate=validate.Range(min=1, max=10_000))


class ProductCreate(ProductIn):
    slug = fields.String(required=True, validate=validate.Length(max=63))
    name = fields.String(required=True, validate=validate.Length(max=200))
    description = fields.String(load_default="", validate=validate.Length(max=2000))
    version = fields.Integer(load_default=1, validate=validate.Range(min=1, max=10_000))


class AdminProductListSchema(Schema):
    data = fields.List(fields.Nested(AdminProductSchema), required=True)


def _product(product_id: int) -> Product:
    row = selectors.product_for_admin(g.tenant, product_id)
    if row is None:
        raise NotFound("There is no such product.")
    return row


@blp.route("/products")
@blp.response(200, AdminProductListSchema)
def list_products() -> dict[str, Any]:
    """Every product in any state, with its plans (not paged)."""
    return {"data": selectors.catalogue_overview(g.tenant).products}


@blp.route("/products", methods=["POST"])
@idempotent
@blp.arguments(ProductCreate)
@blp.response(201, AdminProductSchema)
@blp.doc(parameters=IDEMPOTENCY_HEADER)
def create_product(body: dict[str, Any]) -> Product:
    """A new product, a draft until published (POST /admin/products/{id}/publish)."""
    with _api_fields():
        row = editing.create_product(tenant=g.tenant, actor=actor(), values=editing.ProductInput(
            slug=body["slug"], name=body["name"], description=body["description"], version=body["version"]))
    return _product(row.id)


@blp.route(PRODUCT)
@blp.response(200, AdminProductSchema)
def get_product(product_id: int) -> Product:
    return _product(product_id)


@blp.route(PRODUCT, methods=["PATCH"])
@blp.arguments(ProductIn)
@blp.response(200, AdminProductSchema)
def update_product(body: dict[str, Any], product_id: int) -> Product:
    """Change the fields sent."""
    row = _product(product_id)
    with _api_fields():
        editing.update_product(tenant=g.tenant, actor=actor(), product_id=row.id, values=editing.ProductInput(
            slug=body.get("slug", row.slug), name=body.get("name", row.name),
            description=body.get("description", row.description), version=body.get("version", row.version)))
    return _product(product_id)


# --- plans -----------------------------------------------------------------------------------------------------

class AdminPlanSchema(Schema):
    id = OpaqueId("plan", required=True)
    productId = OpaqueId("product", attribute="product_id", required=True)
    serviceTypeId = OpaqueId("service_type", attribute="service_type_id", required=True)
    slug = fields.String(required=True)
    name = fields.String(required=True)
    description = fields.String()
    state = fields.String(required=True)
    interval = fields.String(required=True)
    price = fields.Function(lambda plan: _money(plan.price_minor, plan.currency),
                            metadata={"description": "per interval; with server types, the lowest of their prices"})
    prices = fields.Function(lambda plan: [
        {"serverType": p.server_type, "price": _money(p.price_minor, plan.currency),
         "cost": _money(p.cost_minor, plan.currency), "markupBp": p.markup_bp, "default": p.is_default}
        for p in plan.prices], metadata={"description": "the server types offered, each with its price"})
    locations = fields.Function(lambda plan: [
        {"location": where.location, "surcharge": _money(where.surcharge_minor, plan.currency),
         "default": where.is_default} for where in plan.locations])
    images = fields.List(fields.String())
    defaultImage = fields.Function(lambda plan: (plan.config_defaults or {}).get(IMAGE_KEY) if plan.images else None)
    features = fields.List(fields.String())
    quantityAllowed = fields.Boolean(attribute="quantity_allowed")
    maxQuantity = fields.Integer(attribute="max_quantity", allow_none=True)
    allowCustomerLocationSelection = fields.Boolean(attribute="allow_customer_location_selection")
    cancellationRule = fields.String(attribute="cancellation_rule")
    downgradeRule = fields.String(attribute="downgrade_rule")
    freePlanLimit = fields.Integer(attribute="free_plan_limit", allow_none=True)
    priceNoticeDays = fields.Integer(attribute="price_notice_days")
    migrationTargetId = OpaqueId("plan", attribute="migration_target_id", allow_none=True)


class PriceIn(Input):
    serverType = fields.String(required=True, validate=validate.Length(min=1, max=63))
    price = fields.Nested(MoneyIn, required=True)
    default = fields.Boolean(load_default=False)


class LocationIn(Input):
    location = fields.String(required=True, validate=validate.Length(min=1, max=63))
    surcharge = fields.Nested(MoneyIn, load_default=None)
    default = fields.Boolean(load_default=False)


class PlanIn(Input):
    slug = fields.String(validate=validate.Length(max=63))
    name = fields.String(validate=validate.Length(max=200))
    description = fields.String(validate=validate.Length(max=2000))
    features = fields.List(fields.String(validate=validate.Length(max=200)), validate=validate.Length(max=20))
    interval = fields.String(validate=validate.OneOf([i.value for i in Interval]))
    price = fields.Nested(MoneyIn, metadata={"description": "for a plan without server types"})
    prices = fields.List(fields.Nested(PriceIn), validate=validate.Length(max=50))
    locations = fields.List(fields.Nested(LocationIn), validate=validate.Length(max=50))
    images = fields.List(fields.String(validate=validate.Length(min=1, max=63)), validate=validate.Length(max=50))
    defaultImage = fields.String(validate=validate.Length(max=63))
    quantityAllowed = fields.Boolean()
    maxQuantity = fields.Integer(allow_none=True, validate=validate.Range(min=1, max=10_000))
    allowCustomerLocationSelection = fields.Boolean()
    cancellationRule = fields.String(validate=validate.OneOf([r.value for r in ChangeRule]))
    downgradeRule = fields.String(validate=validate.OneOf([r.value for r in ChangeRule]))
    freePlanLimit = fields.Integer(allow_none=True, validate=validate.Range(min=1, max=1000))
    priceNoticeDays = fields.Integer(validate=validate.Range(min=0, max=3650))
    confirm = fields.Boolean(load_default=False, metadata={
        "description": "a published plan's price change: true once the changes and dates were read"})


class PlanCreate(PlanIn):
    productId = OpaqueId("product", required=True)
    serviceTypeId = OpaqueId("service_type", required=True)
    slug = fields.String(required=True, validate=validate.Length(max=63))
    name = fields.String(required=True, validate=validate.Length(max=200))


class AdminPlanListSchema(Schema):
    data = fields.List(fields.Nested(AdminPlanSchema), required=True)


BLANK = editing.PlanInput(slug="", name="", description="", interval=Interval.MONTH, price_minor=0,
                          quantity_allowed=False, max_quantity=None, allow_customer_location_selection=False,
                          cancellation_rule=ChangeRule.PERIOD_END, downgrade_rule=ChangeRule.PERIOD_END,
                          free_plan_limit=1, price_notice_days=30)


def _amount(money: dict[str, Any] | None, currency: str, field: str) -> int:
    if money is None:
        return 0
    if money.get("currency") not in (None, currency):
        raise InvalidInput(f"This plan is priced in {currency}.", field=field)
    return int(money["amount"])


def _plan_input(body: dict[str, Any], current: editing.PlanInput, currency: str) -> editing.PlanInput:
    """`current` with the fields `body` sends."""
    changes: dict[str, Any] = {}
    simple = {"slug": "slug", "name": "name", "description": "description", "quantityAllowed": "quantity_allowed",
              "maxQuantity": "max_quantity", "allowCustomerLocationSelection": "allow_customer_location_selection",
              "freePlanLimit": "free_plan_limit", "priceNoticeDays": "price_notice_days",
              "defaultImage": "default_image"}
    for name, attribute in simple.items():
        if name in body:
            changes[attribute] = body[name]
    if "interval" in body:
        changes["interval"] = Interval(body["interval"])
    for name, attribute in (("cancellationRule", "cancellation_rule"), ("downgradeRule", "downgrade_rule")):
        if name in body:
            changes[attribute] = ChangeRule(body[name])
    if "price" in body:
        changes["price_minor"] = _amount(body["price"], currency, "price")
    if "features" in body:
        changes["features"] = tuple(body["features"])
    if "images" in body:
        changes["images"] = tuple(body["images"])
    if "prices" in body:
        kept = {p.server_type: p for p in current.prices}  # a typed price keeps the import's cost, if any
        changes["prices"] = tuple(TypePrice(
            p["serverType"], _amount(p["price"], currency, "prices"),
            kept[p["serverType"]].cost_minor if p["serverType"] in kept else None, None, p["default"])
            for p in body["prices"])
    if "locations" in body:
        changes["locations"] = tuple(LocationOffer(where["location"], _amount(where["surcharge"], currency,
                                                                              "locations"), where["default"])
                                     for where in body["locations"])
    return dataclasses.replace(current, **changes)


def _plan(plan_id: int) -> Plan:
    row = selectors.plan_for_admin(g.tenant, plan_id)
    if row is None:
        raise NotFound("There is no such plan.")
    return row


@blp.route("/plans")
@blp.response(200, AdminPlanListSchema)
def list_plans() -> dict[str, Any]:
    """Every plan in any state, by product (not paged)."""
    return {"data": [plan for product in selectors.catalogue_overview(g.tenant).products for plan in product.plans]}


@blp.route("/plans", methods=["POST"])
@idempotent
@blp.arguments(PlanCreate)
@blp.response(201, AdminPlanSchema)
@blp.doc(parameters=IDEMPOTENCY_HEADER)
def create_plan(body: dict[str, Any]) -> Plan:
    """A new plan of a product, with its offers: a draft until published (POST /admin/plans/{id}/publish)."""
    with _api_fields():
        row = editing.create_plan(tenant=g.tenant, actor=actor(), product_id=body["productId"],
                                  service_type_id=body["serviceTypeId"], values=_plan_input(body, BLANK, "EUR"))
    return _plan(row.id)


@blp.route(PLAN)
@blp.response(200, AdminPlanSchema)
def get_plan(plan_id: int) -> Plan:
    return _plan(plan_id)


@blp.route(PLAN, methods=["PATCH"])
@blp.arguments(PlanIn)
@blp.response(200, AdminPlanSchema)
@blp.alt_response(422, description=f"`{CONFIRM_CODE}`: a published plan's prices would change; `priceChanges` "
                                   "lists each with the date subscribers start paying it: send again with "
                                   "`confirm: true`")
def update_plan(body: dict[str, Any], plan_id: int) -> Any:
    """Change the fields sent. A published plan's price change needs `confirm: true`."""
    row = _plan(plan_id)
    values = _plan_input(body, editing.current_values(row), row.currency)
    try:
        with _api_fields():
            editing.update_plan(tenant=g.tenant, actor=actor(), plan_id=row.id, values=values,
                                confirmed=body["confirm"])
    except editing.ConfirmPriceChange as pending:
        return _unconfirmed(pending, row.currency)
    return _plan(plan_id)


# --- cloud price import ----------------------------------------------------------------------------------------

class CloudPricesIn(Input):
    markupBp = fields.Integer(required=True, metadata={"description": "the markup on the cloud's cost, in basis "
                                                                      "points (2000 = 20 %)"})
    serverTypes = fields.List(fields.String(validate=validate.Length(min=1, max=63)), load_default=list,
                              validate=validate.Length(max=50),
                              metadata={"description": "the server types to price (default: those offered)"})


class CloudPricesApplyIn(CloudPricesIn):
    fingerprint = fields.String(required=True, validate=validate.Length(max=64),
                                metadata={"description": "the preview's: prices changed since answer 409"})
    confirm = fields.Boolean(load_default=False, metadata={
        "description": "a published plan's price change: true once the changes and dates were read"})


class CloudPreviewSchema(Schema):
    provider = fields.String(required=True)
    markupBp = fields.Integer(required=True)
    lines = fields.List(fields.Dict(), required=True, metadata={
        "description": "per server type: offered, currentCost, currentPrice, cost (null: the cloud no longer "
                       "lists it), price, marginBp, byLocation"})
    costChanges = fields.List(fields.Dict(), metadata={"description": "the cloud's costs against the last import"})
    priceChanges = fields.List(fields.Dict(), metadata={"description": "what subscribers will pay, and from when"})
    changesAnything = fields.Boolean()
    fingerprint = fields.String(required=True, metadata={"description": "send it to apply exactly this"})


def _cloud_preview(preview: cloud_prices.ImportPreview) -> dict[str, Any]:
    currency = preview.currency
    return {
        "provider": preview.provider.value, "markupBp": preview.markup_bp, "fingerprint": preview.fingerprint,
        "changesAnything": preview.changes_anything,
        "lines": [{"serverType": line.server_type, "offered": line.offered,
                   "currentCost": _money(line.current_cost, currency),
                   "currentPrice": _money(line.current_price, currency), "cost": _money(line.cost, currency),
                   "price": _money(line.price, currency), "marginBp": line.margin_bp,
                   "byLocation": [{"location": where, "cost": _money(amount, currency)}
                                  for where, amount in line.by_location]} for line in preview.lines],
        "costChanges": [{"serverType": change.server_type, "location": change.location,
                         "change": str(change.change), "old": _money(change.old_minor, currency),
                         "new": _money(change.new_minor, currency)} for change in preview.cost_changes],
        "priceChanges": _price_changes(preview.pending, currency),
    }


@blp.route(PLAN + "/cloud-prices/preview", methods=["POST"])
@blp.arguments(CloudPricesIn)
@blp.response(200, CloudPreviewSchema)
def preview_cloud_prices(body: dict[str, Any], plan_id: int) -> dict[str, Any]:
    """What importing the cloud's current prices plus the markup would do to the plan: nothing is changed."""
    with _api_fields():
        return _cloud_preview(cloud_prices.preview_import(
            tenant=g.tenant, actor=actor(), plan_id=_plan(plan_id).id, markup_bp=body["markupBp"],
            server_types=body["serverTypes"]))


@blp.route(PLAN + "/cloud-prices/apply", methods=["POST"])
@blp.arguments(CloudPricesApplyIn)
@blp.response(200, AdminPlanSchema)
@blp.alt_response(409, description="the cloud's prices or the plan changed since the preview: preview again")
def apply_cloud_prices(body: dict[str, Any], plan_id: int) -> Any:
    """Apply the preview named by `fingerprint`; a published plan's price change needs `confirm: true`."""
    row = _plan(plan_id)
    try:
        with _api_fields():
            cloud_prices.apply_import(tenant=g.tenant, actor=actor(), plan_id=row.id, markup_bp=body["markupBp"],
                                      server_types=body["serverTypes"], fingerprint=body["fingerprint"],
                                      confirmed=body["confirm"])
    except editing.ConfirmPriceChange as pending:
        return _unconfirmed(pending, row.currency)
    return _plan(plan_id)
