"""Tenant admins edit the catalogue: service types, products and plans (publishing a draft is a lifecycle
transition: app.services.catalogue_lifecycle).

Every change is checked here (a schema must be a valid JSON Schema, a cloud-init template must render in the
sandbox and fit 32 KiB, a plan's offers must be among its service type's choices) and written to the
catalogue's audit trail with who made it and each field before and after.

A published plan keeps the terms its subscribers bought: a new price for a server type applies to new orders
at once and reaches existing subscribers' renewals only after the plan's notice period
(`Plan.price_notice_days`); the subscribers are told by email. The renewal applies it
(app.services.lifecycle, `_renewal_price`).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from app.clock import now
from app.domain.accounts import Role
from app.domain.catalogue import CatalogueState, ChangeRule, Interval, Provider
from app.domain.configuration import geography_key
from app.domain.notifications import Event
from app.domain.plan_offers import (
    IMAGE_KEY,
    MAX_NOTICE_DAYS,
    SERVER_TYPE_KEY,
    LocationOffer,
    Offers,
    TypePrice,
    enum_of,
    notice_date,
    offer_problems,
    schema_problem,
    template_problem,
)
from app.extensions import db
from app.models import (
    CatalogueChange,
    Plan,
    PlanLocation,
    PlanPrice,
    PlanPriceChange,
    Product,
    ServiceType,
    Subscription,
    Tenant,
    TenantLike,
    User,
)
from app.models.base import json_object, json_string
from app.services.actors import Actor
from app.services.errors import Conflict, Forbidden, InvalidInput, NotFound
from app.services.notifications import notify_later
from app.services.plan_notices import KEEPING

log = logging.getLogger(__name__)

SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
SLUG_MESSAGE = "Use 1 to 63 lowercase letters, digits and hyphens, not starting or ending with a hyphen."


class ConfirmPriceChange(InvalidInput):
    """A published plan's prices would change: the admin must see when subscribers pay them and confirm."""

    def __init__(self, changes: list[PendingPriceChange]) -> None:
        super().__init__("Existing subscribers keep their price until the notice date. Please confirm.")
        self.changes = changes


@dataclass(frozen=True)
class PendingPriceChange:
    server_type: str  # "" for a plan with one price
    old_price_minor: int
    new_price_minor: int
    effective_at: datetime


@dataclass(frozen=True)
class ServiceTypeInput:
    slug: str
    name: str
    provider: Provider
    config_schema: str  # JSON text, as the admin typed it
    cloud_init_template: str


@dataclass(frozen=True)
class ProductInput:
    slug: str
    name: str
    description: str
    version: int


@dataclass(frozen=True)
class PlanInput:
    slug: str
    name: str
    description: str
    interval: Interval
    price_minor: int  # for a plan without server types; otherwise the lowest of `prices` is kept here
    quantity_allowed: bool
    max_quantity: int | None
    allow_customer_location_selection: bool
    cancellation_rule: ChangeRule
    downgrade_rule: ChangeRule
    free_plan_limit: int | None
    price_notice_days: int
    prices: tuple[TypePrice, ...] = ()
    locations: tuple[LocationOffer, ...] = ()
    images: tuple[str, ...] = ()
    default_image: str = ""
    features: tuple[str, ...] = field(default=())


def require_admin(tenant: TenantLike, actor: Actor) -> None:
    """Only the tenant's own admins change its catalogue, and never while impersonated by support."""
    user = actor.user
    if user is None or user.role is not Role.TENANT_ADMIN or user.tenant_id != tenant.id or actor.impersonator:
        raise Forbidden("Only the tenant's admins can change the catalogue.")


def _audit(tenant: TenantLike, actor: Actor, entity: str, entity_id: int, action: str,
           changes: dict[str, Any]) -> None:
    db.session.add(CatalogueChange(tenant_id=tenant.id, entity=entity, entity_id=entity_id, action=action,
                                   changes=changes, actor_id=actor.user_id,
                                   impersonator_id=actor.impersonator.id if actor.impersonator else None,
                                   created_at=now()))


def _diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, list[Any]]:
    return {key: [before.get(key), value] for key, value in after.items() if before.get(key) != value}


def _edit(tenant: TenantLike, actor: Actor, entity: str, row: Any, values: dict[str, Any],
          snapshot: Callable[[Any], dict[str, Any]]) -> None:
    """Set `values` on `row` and audit what changed, each field before and after (nothing when nothing did)."""
    before = snapshot(row)
    for key, value in values.items():
        setattr(row, key, value)
    if changes := _diff(before, snapshot(row)):
        _audit(tenant, actor, entity, row.id, "edited", changes)


def _slug(slug: str) -> str:
    slug = slug.strip()
    if not SLUG.fullmatch(slug):
        raise InvalidInput(SLUG_MESSAGE, field="slug")
    return slug


def _name(name: str) -> str:
    name = name.strip()
    if not 1 <= len(name) <= 200:
        raise InvalidInput("Give a name of 1 to 200 characters.", field="name")
    return name


def _commit(message: str) -> None:
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise InvalidInput(message, field="slug") from None


# Service types ---------------------------------------------------------------------------------------------

def _service_type_values(values: ServiceTypeInput) -> dict[str, Any]:
    try:
        schema = json.loads(values.config_schema)
    except ValueError as error:
        raise InvalidInput(f"The schema is not valid JSON: {error}.", field="config_schema") from None
    if problem := schema_problem(schema):
        raise InvalidInput(problem, field="config_schema")
    if problem := template_problem(values.cloud_init_template):
        raise InvalidInput(problem, field="cloud_init_template")
    return {"slug": _slug(values.slug), "name": _name(values.name), "provider": values.provider,
            "config_schema": schema, "cloud_init_template": values.cloud_init_template}


def _service_type_snapshot(row: ServiceType) -> dict[str, Any]:
    return {"slug": row.slug, "name": row.name, "provider": str(row.provider), "config_schema": row.config_schema,
            "cloud_init_template": row.cloud_init_template}


def create_service_type(*, tenant: TenantLike, actor: Actor, values: ServiceTypeInput) -> ServiceType:
    require_admin(tenant, actor)
    row = ServiceType(tenant_id=tenant.id, **_service_type_values(values))
    db.session.add(row)
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        raise InvalidInput("Another service type has this slug.", field="slug") from None
    _audit(tenant, actor, "service_type", row.id, "created", _diff({}, _service_type_snapshot(row)))
    _commit("Another service type has this slug.")
    return row


def update_service_type(*, tenant: TenantLike, actor: Actor, service_type_id: int,
                        values: ServiceTypeInput) -> ServiceType:
    """Change a service type. Its plans' offers must stay among the new schema's choices."""
    require_admin(tenant, actor)
    row = _owned(tenant, ServiceType, service_type_id, "There is no such service type.", lock=True)
    new = _service_type_values(values)
    for plan in db.session.scalars(select(Plan).where(Plan.service_type_id == row.id)):
        if problems := offer_problems(new["config_schema"], plan.offers):
            raise InvalidInput(f"The plan {plan.name} offers what the new schema does not: "
                               f"{' '.join(problems.values())}", field="config_schema")
    _edit(tenant, actor, "service_type", row, new, _service_type_snapshot)
    _commit("Another service type has this slug.")
    return row


# Products --------------------------------------------------------------------------------------------------

def _product_values(values: ProductInput) -> dict[str, Any]:
    if not 1 <= values.version <= 10_000:
        raise InvalidInput("The version is a whole number from 1.", field="version")
    description = values.description.strip()
    if len(description) > 2000:
        raise InvalidInput("Keep the description under 2,000 characters.", field="description")
    return {"slug": _slug(values.slug), "name": _name(values.name), "description": description,
            "version": values.version}


def _product_snapshot(row: Product) -> dict[str, Any]:
    return {"slug": row.slug, "name": row.name, "description": row.description, "version": row.version,
            "state": str(row.state)}


def create_product(*, tenant: TenantLike, actor: Actor, values: ProductInput) -> Product:
    """A new product, a draft until published."""
    require_admin(tenant, actor)
    row = Product(tenant_id=tenant.id, state=CatalogueState.DRAFT, **_product_values(values))
    db.session.add(row)
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        raise InvalidInput("Another product has this slug and version.", field="slug") from None
    _audit(tenant, actor, "product", row.id, "created", _diff({}, _product_snapshot(row)))
    _commit("Another product has this slug and version.")
    return row


def update_product(*, tenant: TenantLike, actor: Actor, product_id: int, values: ProductInput) -> Product:
    require_admin(tenant, actor)
    row = _owned(tenant, Product, product_id, "There is no such product.", lock=True)
    _edit(tenant, actor, "product", row, _product_values(values), _product_snapshot)
    _commit("Another product has this slug and version.")
    return row


# Plans -----------------------------------------------------------------------------------------------------

def _plan_snapshot(row: Plan) -> dict[str, Any]:
    return {
        "slug": row.slug, "name": row.name, "description": row.description, "interval": str(row.interval),
        "price_minor": row.price_minor, "quantity_allowed": row.quantity_allowed, "max_quantity": row.max_quantity,
        "allow_customer_location_selection": row.allow_customer_location_selection,
        "cancellation_rule": str(row.cancellation_rule), "downgrade_rule": str(row.downgrade_rule),
        "free_plan_limit": row.free_plan_limit, "price_notice_days": row.price_notice_days,
        "prices": {p.server_type: p.price_minor for p in row.prices},
        "costs": {p.server_type: p.cost_minor for p in row.prices if p.cost_minor is not None},
        "markups_bp": {p.server_type: p.markup_bp for p in row.prices if p.markup_bp is not None},
        "default_server_type": next((p.server_type for p in row.prices if p.is_default), None),
        "locations": {loc.location: loc.surcharge_minor for loc in row.locations},
        "default_location": next((loc.location for loc in row.locations if loc.is_default), None),
        "images": list(row.images or []), "default_image": (row.config_defaults or {}).get(IMAGE_KEY),
        "features": list(row.features or []), "state": str(row.state),
    }


def _check_plan(schema: dict[str, Any], values: PlanInput) -> None:
    if values.interval not in tuple(Interval):
        raise InvalidInput("Choose monthly or yearly billing.", field="interval")
    if not values.prices and values.price_minor < 0:
        raise InvalidInput("The price cannot be negative.", field="price_minor")
    if values.max_quantity is not None and values.max_quantity < 1:
        raise InvalidInput("The maximum quantity is at least 1, or empty for no limit.", field="max_quantity")
    if values.free_plan_limit is not None and values.free_plan_limit < 1:
        raise InvalidInput("The limit is at least 1, or empty for no limit.", field="free_plan_limit")
    if not 0 <= values.price_notice_days <= MAX_NOTICE_DAYS:
        raise InvalidInput(f"Give 0 to {MAX_NOTICE_DAYS} days of notice.", field="price_notice_days")
    offers = Offers(values.prices, values.locations, values.images)
    if problems := offer_problems(schema, offers):
        key, message = next(iter(problems.items()))
        raise InvalidInput(message, field=key)
    if values.images and values.default_image not in values.images:
        raise InvalidInput("Choose the default image among the images offered.", field="default_image")
    if enum_of(schema, SERVER_TYPE_KEY) and not values.prices:
        raise InvalidInput("Offer at least one server type, each with its price.", field="prices")


def _defaults(schema: dict[str, Any], values: PlanInput, current: dict[str, Any]) -> dict[str, Any]:
    """The order form's defaults: the default server type, location and image the admin marked."""
    defaults = dict(current)
    geo = geography_key(schema)
    if chosen := next((p.server_type for p in values.prices if p.is_default), None):
        defaults[SERVER_TYPE_KEY] = chosen
    if geo and (chosen := next((loc.location for loc in values.locations if loc.is_default), None)):
        defaults[geo] = chosen
    if values.default_image:
        defaults[IMAGE_KEY] = values.default_image
    return defaults


def _apply(row: Plan, schema: dict[str, Any], values: PlanInput) -> None:
    row.slug, row.name = _slug(values.slug), _name(values.name)
    row.description = values.description.strip()[:2000]
    row.interval, row.quantity_allowed = values.interval, values.quantity_allowed
    row.max_quantity = values.max_quantity if values.quantity_allowed else None
    row.allow_customer_location_selection = values.allow_customer_location_selection
    row.cancellation_rule, row.downgrade_rule = values.cancellation_rule, values.downgrade_rule
    row.free_plan_limit, row.price_notice_days = values.free_plan_limit, values.price_notice_days
    row.price_minor = min((p.price_minor for p in values.prices), default=values.price_minor)
    row.images = list(values.images)
    row.features = [f.strip() for f in values.features if f.strip()][:20]
    row.config_defaults = _defaults(schema, values, row.config_defaults or {})
    old_prices = {p.server_type: p for p in row.prices}
    row.prices = [_price_row(old_prices.get(p.server_type), p, n) for n, p in enumerate(values.prices)]
    old_locations = {loc.location: loc for loc in row.locations}
    row.locations = [_location_row(old_locations.get(loc.location), loc, n) for n, loc in enumerate(values.locations)]


def _price_row(row: PlanPrice | None, price: TypePrice, sort: int) -> PlanPrice:
    row = row or PlanPrice(server_type=price.server_type)
    if price.markup_bp is not None:
        row.markup_bp = price.markup_bp
    elif row.price_minor is not None and row.price_minor != price.price_minor:
        row.markup_bp = None  # a price typed by hand is no longer its cost plus the markup
    row.price_minor, row.sort, row.is_default = price.price_minor, sort, price.is_default
    if price.cost_minor is not None or row.cost_minor is None:
        row.cost_minor = price.cost_minor
    return row


def _location_row(row: PlanLocation | None, offer: LocationOffer, sort: int) -> PlanLocation:
    row = row or PlanLocation(location=offer.location)
    row.surcharge_minor, row.sort, row.is_default = offer.surcharge_minor, sort, offer.is_default
    return row


def create_plan(*, tenant: TenantLike, actor: Actor, product_id: int, service_type_id: int,
                values: PlanInput) -> Plan:
    """A new plan in `product_id`, a draft until published."""
    require_admin(tenant, actor)
    product = _owned(tenant, Product, product_id, "There is no such product.", lock=True)
    service_type = _owned(tenant, ServiceType, service_type_id, "There is no such service type.")
    _check_plan(service_type.config_schema, values)
    row = Plan(tenant_id=tenant.id, product_id=product.id, service_type_id=service_type.id, currency="EUR",
               state=CatalogueState.DRAFT, config_defaults={}, prices=[], locations=[],
               sort_order=len(product.plans))
    _apply(row, service_type.config_schema, values)
    db.session.add(row)
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        raise InvalidInput("Another plan of this product has this slug.", field="slug") from None
    _audit(tenant, actor, "plan", row.id, "created", _diff({}, _plan_snapshot(row)))
    _commit("Another plan of this product has this slug.")
    return row


def price_changes(plan: Plan, values: PlanInput) -> list[PendingPriceChange]:
    """What editing a published plan to `values` would change for existing subscribers, with the date they
    start paying it. Drafts have no subscribers: nothing."""
    if plan.state is CatalogueState.DRAFT:
        return []
    effective = notice_date(now(), values.price_notice_days)
    if not values.prices and not plan.prices:
        if values.price_minor != plan.price_minor:
            return [PendingPriceChange("", plan.price_minor, values.price_minor, effective)]
        return []
    # A plan that had one price sold every server type at it: each type's new price is a change from it.
    old = {p.server_type: p.price_minor for p in plan.prices} if plan.prices else {
        p.server_type: plan.price_minor for p in values.prices}
    return [PendingPriceChange(p.server_type, old[p.server_type], p.price_minor, effective)
            for p in values.prices if p.server_type in old and old[p.server_type] != p.price_minor]


def current_values(plan: Plan) -> PlanInput:
    """The plan as it is, as an edit's input: a change of a few fields (a price import) starts from it."""
    return PlanInput(
        slug=plan.slug, name=plan.name, description=plan.description, interval=plan.interval,
        price_minor=plan.price_minor, quantity_allowed=plan.quantity_allowed, max_quantity=plan.max_quantity,
        allow_customer_location_selection=plan.allow_customer_location_selection,
        cancellation_rule=plan.cancellation_rule, downgrade_rule=plan.downgrade_rule,
        free_plan_limit=plan.free_plan_limit, price_notice_days=plan.price_notice_days,
        prices=plan.offers.prices, locations=plan.offers.locations, images=tuple(plan.images or ()),
        default_image=(plan.config_defaults or {}).get(IMAGE_KEY, "") if plan.images else "",
        features=tuple(plan.features or ()))


def update_plan(*, tenant: TenantLike, actor: Actor, plan_id: int, values: PlanInput,
                confirmed: bool = False, action: str = "edited") -> Plan:
    """Edit a plan. On a published plan a changed price needs `confirmed` (else ConfirmPriceChange, naming the
    changes and their dates): it is recorded as a scheduled change, and the subscribers are emailed. `action`
    names the change in the audit (a price import is one edit among others)."""
    require_admin(tenant, actor)
    row = _owned(tenant, Plan, plan_id, "There is no such plan.", lock=True)
    if row.state is CatalogueState.RETIRED:
        raise Conflict("A retired plan cannot be edited.")
    schema = row.service_type.config_schema
    _check_plan(schema, values)
    free = min((p.price_minor for p in values.prices), default=values.price_minor) == 0
    if row.state is not CatalogueState.DRAFT and free != row.is_free:
        raise InvalidInput("A published plan stays free or paid: make a new plan instead.", field="prices")
    changes = price_changes(row, values)
    if changes and not confirmed:
        raise ConfirmPriceChange(changes)
    before = _plan_snapshot(row)
    _apply(row, schema, values)
    moment = now()
    scheduled = [PlanPriceChange(tenant_id=tenant.id, plan_id=row.id, server_type=change.server_type,
                                 old_price_minor=change.old_price_minor, new_price_minor=change.new_price_minor,
                                 announced_at=moment, effective_at=change.effective_at, created_by_id=actor.user_id)
                 for change in changes]
    db.session.add_all(scheduled)
    if diff := _diff(before, _plan_snapshot(row)):
        _audit(tenant, actor, "plan", row.id, action, diff)
    if scheduled:
        _tell_subscribers(tenant, row, scheduled)
    _commit("Another plan of this product has this slug.")
    log.info("plan %s edited, %s price changes", row.id, len(changes), extra={"tenant_id": tenant.id})
    return row


def _tell_subscribers(tenant: TenantLike, plan: Plan, changes: list[PlanPriceChange]) -> None:
    """Email each subscription's owner whose server type's price changes (all of them for a plan with one price):
    per change, one INSERT ... SELECT of the emails, rendered by the worker that sends them (RENDERED_WHEN_SENT in
    app/services/notifications.py), so a plan with thousands of subscribers saves as fast as one with none. A
    subscription takes the change of its own server type, else the plan-wide one (server type "")."""
    db.session.flush()  # the changes' ids, for the emails
    sender = db.session.get(Tenant, tenant.id)
    assert sender is not None
    own_types = [change.server_type for change in changes if change.server_type]
    kind = func.coalesce(json_string(Subscription.requested_config, SERVER_TYPE_KEY), "")
    for change in changes:
        applies = (kind == change.server_type) if change.server_type else kind.not_in(own_types)
        notify_later(Event.PRICE_CHANGED, sender, select(  # type: ignore[arg-type]
            User.id.label("user_id"), User.email.label("to_address"), User.purged_at,
            json_object("change_id", change.id, "subscription_id", Subscription.id).label("render_context"))
            .join(Subscription, Subscription.user_id == User.id)
            .where(Subscription.tenant_id == tenant.id, Subscription.plan_id == plan.id,
                   Subscription.status.in_(KEEPING), applies)
            .order_by(Subscription.id))


def _owned(tenant: TenantLike, model: type[Any], row_id: int, missing: str, *, lock: bool = False) -> Any:
    """The tenant's row, locked for the change when `lock` (two admins editing at once go one after the other)."""
    query = select(model).where(model.id == row_id, model.tenant_id == tenant.id)
    row = db.session.scalar(query.with_for_update() if lock else query)
    if row is None:
        raise NotFound(missing)
    return row
