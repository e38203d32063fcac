"""Cloud prices into a plan: what the plan's cloud charges for its server types, plus a markup, as its prices.

An import is previewed first (`preview_import`: per server type the cost and price now, the cloud's cost, the
new price and its margin, and which costs changed since the last import) and applied after (`apply_import`),
only if neither the cloud's prices nor the plan changed in between (the preview's fingerprint).

Applying is an edit of the plan through the editing service (app.services.catalogue_editing.update_plan): the
same checks, the same audit, and on a published plan the same notice to existing subscribers, confirmed first
(ConfirmPriceChange). The cloud is read through the tenant's own account (app.services.clouds.provider_for).

Locations: Hetzner prices a server type per location, DigitalOcean one price everywhere. A plan's location
surcharge is one amount for every server type, while the clouds' differences are not, so the dearest of the
plan's locations sets a type's cost (the markup then holds in every location) and the differences are shown
in the preview for the admin to turn into surcharges by hand, or not.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from app.domain.catalogue import Interval, Provider
from app.domain.cloud_prices import BASIS_POINTS, PriceChange, TypeCost, price_changes, selling_price, type_costs
from app.domain.configuration import geography_key
from app.domain.plan_offers import SERVER_TYPE_KEY, TypePrice, enum_of
from app.extensions import db
from app.models import Plan, PlanPrice, TenantLike
from app.providers.base import CostPrice, ErrorKind, ProviderError
from app.services import catalogue_editing as editing
from app.services.actors import Actor
from app.services.clouds import provider_for
from app.services.errors import Conflict, InvalidInput, NotFound, ServiceError

log = logging.getLogger(__name__)

MAX_MARKUP_BP = 10 * BASIS_POINTS  # 1,000 %: anything above is a typing error
AUDIT_ACTION = "prices_imported"


class CloudUnavailable(ServiceError):
    """The cloud could not be asked for its prices: nothing was changed."""

    status_code = 503


@dataclass(frozen=True)
class ImportLine:
    """One server type in an import's preview (amounts per billing period of the plan, minor units)."""

    server_type: str
    offered: bool  # the plan offers it already (else the import adds it)
    current_cost: int | None
    current_price: int | None
    cost: int | None  # the cloud's now; None: the cloud no longer lists it, and its price is kept
    price: int | None  # the new price: cost plus markup
    margin_bp: int | None
    by_location: tuple[tuple[str, int], ...] = ()  # where the plan's locations cost differently

    @property
    def changes_price(self) -> bool:
        return self.price is not None and self.price != self.current_price


@dataclass(frozen=True)
class ImportPreview:
    plan_id: int
    provider: Provider
    currency: str
    markup_bp: int
    lines: tuple[ImportLine, ...]
    cost_changes: tuple[PriceChange, ...]  # the cloud's costs against the last import's (added, removed, changed)
    pending: tuple[editing.PendingPriceChange, ...]  # what existing subscribers will pay, and from when
    fingerprint: str

    @property
    def changes_anything(self) -> bool:
        return any(line.changes_price or (line.cost is not None and line.cost != line.current_cost)
                   or line.current_price is None for line in self.lines)


def markup_from_percent(text: str) -> int:
    """ "25" or "12.5" (percent, at most two decimals) in basis points; InvalidInput with a message otherwise."""
    whole, _, fraction = text.strip().partition(".")
    if not whole.isdigit() or len(whole) > 4 or (fraction and (not fraction.isdigit() or len(fraction) > 2)):
        raise InvalidInput("Give the markup in percent, such as 25 or 12.5.", field="markup")
    markup = int(whole) * 100 + int(fraction.ljust(2, "0") or 0)
    _check_markup(markup)
    return markup


def _check_markup(markup_bp: int) -> None:
    if not 0 <= markup_bp <= MAX_MARKUP_BP:
        raise InvalidInput(f"The markup is 0 to {MAX_MARKUP_BP // 100} %.", field="markup")


def _cloud_prices(tenant: TenantLike, provider: Provider) -> list[CostPrice]:
    try:
        return provider_for(tenant, provider).prices()
    except ProviderError as error:
        later = " Try again in a moment." if error.retryable or error.kind is ErrorKind.UNAVAILABLE else ""
        raise CloudUnavailable(f"The prices of {provider.label} could not be read, so nothing changed: "
                               f"{error.message}{later}") from None


def _plan(tenant: TenantLike, plan_id: int, *, lock: bool = False) -> Plan:
    query = select(Plan).where(Plan.id == plan_id, Plan.tenant_id == tenant.id)
    if lock:  # read afresh once locked, prices included: a concurrent apply's prices are seen, not a stale copy
        query = (query.with_for_update().options(selectinload(Plan.prices), selectinload(Plan.locations))
                 .execution_options(populate_existing=True))
    plan = db.session.scalar(query)
    if plan is None:
        raise NotFound("There is no such plan.")
    return plan


def _chosen_types(plan: Plan, server_types: Sequence[str]) -> list[str]:
    allowed = enum_of(plan.service_type.config_schema, SERVER_TYPE_KEY)
    if not allowed:
        raise InvalidInput("This plan's service type offers no server types, so it has no cloud prices.")
    chosen = list(dict.fromkeys(t.strip() for t in server_types if t.strip())) or [p.server_type for p in plan.prices]
    if not chosen:
        raise InvalidInput("Choose the server types to price.", field="server_types")
    if unknown := [t for t in chosen if t not in allowed]:
        raise InvalidInput(f"Not among the service type's server types: {', '.join(unknown)}.",
                           field="server_types")
    return chosen


def _locations(plan: Plan) -> frozenset[str] | None:
    if plan.locations:
        return frozenset(loc.location for loc in plan.locations)
    key = geography_key(plan.service_type.config_schema)
    offered = enum_of(plan.service_type.config_schema, key) if key else None
    return frozenset(offered) if offered else None


def _build(plan: Plan, prices: list[CostPrice], markup_bp: int, server_types: Sequence[str]) -> ImportPreview:
    _check_markup(markup_bp)
    provider = plan.service_type.provider
    chosen = _chosen_types(plan, server_types)
    if foreign := sorted({p.currency for p in prices} - {plan.currency}):
        raise InvalidInput(f"{provider.label} charges in {', '.join(foreign)} and this plan is priced in "
                           f"{plan.currency}; the portal converts no currencies, so its prices cannot be imported.")
    months = 12 if plan.interval is Interval.YEAR else 1
    costs = type_costs({(p.server_type, p.location): p.monthly_minor for p in prices}, locations=_locations(plan),
                       months=months)
    current = {p.server_type: p for p in plan.prices}
    if missing := [t for t in chosen if t not in costs and t not in current]:
        raise InvalidInput(f"{provider.label} does not sell {', '.join(missing)} in the plan's locations.",
                           field="server_types")
    lines = tuple(_line(t, current.get(t), costs.get(t), markup_bp) for t in chosen)
    cost_changes = price_changes(
        {(t, ""): current[t].cost_minor for t in chosen if t in current and current[t].cost_minor is not None},
        {(line.server_type, ""): line.cost for line in lines if line.cost is not None})
    values = _values(plan, lines, markup_bp)
    pending = tuple(editing.price_changes(plan, values))
    return ImportPreview(plan.id, provider, plan.currency, markup_bp, lines, tuple(cost_changes), pending,
                         _fingerprint(plan, lines, markup_bp))


def _line(server_type: str, row: PlanPrice | None, cost: TypeCost | None, markup_bp: int) -> ImportLine:
    current_cost, current_price = (row.cost_minor, row.price_minor) if row is not None else (None, None)
    if cost is None:
        return ImportLine(server_type, row is not None, current_cost, current_price, None, None, None)
    price = selling_price(cost.cost_minor, markup_bp)
    return ImportLine(server_type, row is not None, current_cost, current_price, cost.cost_minor, price,
                      TypePrice(server_type, price, cost.cost_minor).margin_bp, cost.by_location)


def _values(plan: Plan, lines: Sequence[ImportLine], markup_bp: int) -> editing.PlanInput:
    """The plan's current values with the imported prices: offered types repriced, new ones added."""
    by_type = {line.server_type: line for line in lines if line.cost is not None and line.price is not None}
    values = editing.current_values(plan)
    prices = [replace(p, price_minor=by_type[p.server_type].price or 0, cost_minor=by_type[p.server_type].cost,
                      markup_bp=markup_bp) if p.server_type in by_type else p for p in values.prices]
    added = [TypePrice(line.server_type, line.price or 0, line.cost, markup_bp, False)
             for line in lines if not line.offered and line.server_type in by_type]
    if not values.prices and added:
        added[0] = replace(added[0], is_default=True)  # a plan's first server type is its default
    return replace(values, prices=(*prices, *added))


def _fingerprint(plan: Plan, lines: Sequence[ImportLine], markup_bp: int) -> str:
    text = repr((plan.id, markup_bp, [(p.server_type, p.price_minor, p.cost_minor) for p in plan.prices],
                 [(line.server_type, line.cost) for line in lines]))
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def preview_import(*, tenant: TenantLike, actor: Actor, plan_id: int, markup_bp: int,
                   server_types: Sequence[str] = ()) -> ImportPreview:
    """What importing the cloud's prices with `markup_bp` would do to the plan's `server_types` (default: the
    ones it offers); changes nothing. CloudUnavailable when the cloud cannot be asked."""
    editing.require_admin(tenant, actor)
    plan = _plan(tenant, plan_id)
    if plan.service_type.provider is Provider.NONE:
        raise InvalidInput("This plan's service type has no cloud, so it has no cloud prices.")
    prices = _cloud_prices(tenant, plan.service_type.provider)
    return _build(plan, prices, markup_bp, server_types)


def apply_import(*, tenant: TenantLike, actor: Actor, plan_id: int, markup_bp: int, server_types: Sequence[str],
                 fingerprint: str, confirmed: bool = False) -> Plan:
    """Apply the import previewed as `fingerprint`: the cloud is asked again, and if its prices or the plan
    changed since the preview, Conflict (look at the new preview). The prices are written by the editing
    service, so a published plan needs `confirmed` (else ConfirmPriceChange) and its subscribers get notice."""
    editing.require_admin(tenant, actor)
    plan = _plan(tenant, plan_id)
    if plan.service_type.provider is Provider.NONE:
        raise InvalidInput("This plan's service type has no cloud, so it has no cloud prices.")
    prices = _cloud_prices(tenant, plan.service_type.provider)  # before the lock: no row held during a call
    plan = _plan(tenant, plan_id, lock=True)
    preview = _build(plan, prices, markup_bp, server_types)
    if preview.fingerprint != fingerprint:
        db.session.rollback()
        raise Conflict("The cloud's prices or the plan changed since the preview: check the new preview and "
                       "apply it again.")
    values = _values(plan, preview.lines, markup_bp)
    try:
        row = editing.update_plan(tenant=tenant, actor=actor, plan_id=plan.id, values=values, confirmed=confirmed,
                                  action=AUDIT_ACTION)
    except ServiceError:
        db.session.rollback()  # the plan's lock goes, and nothing was written
        raise
    log.info("cloud prices imported into plan %s at %s bp", plan.id, markup_bp, extra={"tenant_id": tenant.id})
    return row

