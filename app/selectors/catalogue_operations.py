"""Reads for the catalogue's lifecycle: what a replace or a retire would do (its preview, no writes), and the
operations with their progress and outcomes."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import joinedload, selectinload

from app.domain.billing import ChargeKind
from app.domain.catalogue import CatalogueState
from app.domain.configuration import geography_key
from app.domain.plan_lifecycle import CatalogueAction, Landing, PlanFacts, move_charge, needs_resize, replaced_into
from app.domain.subscriptions import SubscriptionStatus
from app.extensions import db
from app.models import (
    CatalogueOperation,
    Charge,
    OperationOutcome,
    Outcome,
    Plan,
    Product,
    Subscription,
    SubscriptionEvent,
    TenantLike,
)
from app.selectors.paging import Page, one_page_and_a_peek, page_number

# The subscriptions a replace moves or a retire cancels: every one not canceled yet.
OPEN = tuple(status for status in SubscriptionStatus if status is not SubscriptionStatus.CANCELED)
# Those being billed for a period now: a move credits and debits the rest of it.
BILLED = (SubscriptionStatus.ACTIVE, SubscriptionStatus.PENDING_CANCEL)


def server_type(config: Mapping[str, object] | None) -> str | None:
    value = (config or {}).get("serverType")
    return value if isinstance(value, str) and value else None


def location_key(plan: Plan) -> str:
    """The key of a subscription's configuration that names its location on `plan`'s service type."""
    return geography_key(plan.service_type.config_schema or {}) or "location"


def landing(source: Plan, target: Plan, requested_config: Mapping[str, object] | None) -> tuple[str | None, Landing]:
    """A subscription of `source` replaced by `target`: its server type now, and where it lands (type, price)."""
    current = server_type(requested_config) or server_type(source.config_defaults)
    where = (requested_config or {}).get(location_key(target))
    return current, replaced_into(target.offers, target.price_minor, server_type(target.config_defaults),
                                  server_type=current, location=where if isinstance(where, str) else None)


def plan_facts(plan: Plan) -> PlanFacts:
    return PlanFacts(id=plan.id, product_id=plan.product_id, state=plan.state, price_minor=plan.price_minor,
                     currency=plan.currency, interval=plan.interval.value,
                     server_type=server_type(plan.config_defaults))


def plans(tenant: TenantLike, plan_ids: Iterable[int]) -> dict[int, Plan]:
    ids = set(plan_ids)
    if not ids:
        return {}
    found = db.session.scalars(select(Plan).where(Plan.tenant_id == tenant.id, Plan.id.in_(ids))
                               .options(joinedload(Plan.product))).all()
    return {plan.id: plan for plan in found}


def product(tenant: TenantLike, product_id: int) -> Product | None:
    return db.session.scalar(select(Product).where(Product.id == product_id, Product.tenant_id == tenant.id)
                             .options(selectinload(Product.plans)))


def target_choices(tenant: TenantLike) -> list[Plan]:
    """The plans customers may be moved to: the published ones, by product."""
    return list(db.session.scalars(
        select(Plan).join(Product).where(Plan.tenant_id == tenant.id, Plan.state == CatalogueState.PUBLISHED)
        .options(joinedload(Plan.product)).order_by(Product.name, Product.version, Plan.sort_order, Plan.id)))


def open_counts(tenant: TenantLike, plans: Iterable[Plan]) -> dict[int, int]:
    """How many subscriptions not canceled yet each plan has."""
    ids = [plan.id for plan in plans]
    if not ids:
        return {}
    rows = db.session.execute(select(Subscription.plan_id, func.count()).where(
        Subscription.tenant_id == tenant.id, Subscription.plan_id.in_(ids), Subscription.status.in_(OPEN))
        .group_by(Subscription.plan_id))
    return {plan_id: count for plan_id, count in rows}


@dataclass
class PriceChange:
    old_minor: int
    new_minor: int
    currency: str
    count: int


@dataclass
class Preview:
    """What an operation would do now: how many subscriptions, their prices, the proration, the resizes."""

    subscriptions: int = 0
    by_plan: list[tuple[Plan, Plan | None, int]] = field(default_factory=list)  # source, target, subscribers
    price_changes: list[PriceChange] = field(default_factory=list)
    proration_minor: int = 0  # the net of every credit and debit charged by the move
    currency: str = ""
    resizes: int = 0
    no_server_type: int = 0  # moved to a target that names no server type: whether a resize is needed is unknown
    billed_now: int = 0  # in a paid period now: charged or credited for the rest of it
    ends_servers: int = 0  # retire: servers shut down, then deleted after the retention


def _open_rows(tenant: TenantLike, plan_ids: Iterable[int]) -> list:  # type: ignore[type-arg]
    return list(db.session.execute(
        select(Subscription.id, Subscription.plan_id, Subscription.status, Subscription.quantity,
               Subscription.price_minor, Subscription.currency, Subscription.current_period_start,
               Subscription.current_period_end, Subscription.requested_config)
        .where(Subscription.tenant_id == tenant.id, Subscription.plan_id.in_(list(plan_ids)),
               Subscription.status.in_(OPEN))))


def preview_replace(tenant: TenantLike, mapping: Mapping[int, int], *, at: datetime) -> Preview:
    """What replacing each source plan of `mapping` by its target would do at `at`."""
    known = plans(tenant, [*mapping, *mapping.values()])
    preview, changes, per_plan = Preview(), Counter[tuple[int, int, str]](), Counter[int]()
    for row in _open_rows(tenant, mapping):
        target = known[mapping[row.plan_id]]
        current, landed = landing(known[row.plan_id], target, row.requested_config)
        new_price = landed.unit_price_minor * row.quantity
        per_plan[row.plan_id] += 1
        changes[(row.price_minor, new_price, row.currency)] += 1
        charge = move_charge(row.price_minor, new_price, row.currency, billed=row.status in BILLED,
                             period_start=row.current_period_start, period_end=row.current_period_end, at=at)
        preview.proration_minor += charge.net
        preview.billed_now += charge.net != 0 or charge.credit != 0
        names_a_type = bool(target.prices) or server_type(target.config_defaults) is not None
        resize = needs_resize(current, landed.server_type) if names_a_type else None
        preview.resizes += resize is True
        preview.no_server_type += resize is None
        preview.subscriptions += 1
    preview.by_plan = [(known[source], known[target], per_plan[source]) for source, target in mapping.items()
                       if source in known and target in known]
    preview.price_changes = [PriceChange(old, new, currency, count)
                             for (old, new, currency), count in sorted(changes.items())]
    preview.currency = next(iter(known.values())).currency if known else ""
    return preview


def preview_retire(tenant: TenantLike, plan_ids: Iterable[int]) -> Preview:
    """What retiring the plans would do: every open subscription canceled now, its servers' end of life begun."""
    ids = list(plan_ids)
    known = plans(tenant, ids)
    preview, per_plan = Preview(), Counter[int]()
    for row in _open_rows(tenant, ids):
        per_plan[row.plan_id] += 1
        preview.subscriptions += 1
        preview.billed_now += row.status in BILLED and row.price_minor > 0
    preview.by_plan = [(known[plan_id], None, per_plan[plan_id]) for plan_id in ids if plan_id in known]
    return preview


def operations_page(tenant: TenantLike, page: int = 1, per_page: int = 25) -> Page[CatalogueOperation]:
    page = page_number(page)
    rows = list(db.session.scalars(one_page_and_a_peek(
        select(CatalogueOperation).where(CatalogueOperation.tenant_id == tenant.id)
        .order_by(CatalogueOperation.id.desc()), page, per_page)))
    return Page(rows[:per_page], page, per_page, len(rows) > per_page)


def operation(tenant: TenantLike, operation_id: int) -> CatalogueOperation | None:
    return db.session.scalar(select(CatalogueOperation).where(CatalogueOperation.id == operation_id,
                                                              CatalogueOperation.tenant_id == tenant.id))


@dataclass(frozen=True)
class OutcomeRow:
    """What an operation did to one subscription, as the admin and the customer see it.

    A replace's move is read from the subscription's `plan_replaced` event (its prices and resize) and the
    proration charges written with it (their sum); a retire's from its outcome row."""

    id: int  # the event's id for a move, the outcome row's otherwise
    subscription_id: int
    outcome: Outcome
    from_plan_id: int | None
    to_plan_id: int | None
    old_price_minor: int | None
    new_price_minor: int | None
    proration_minor: int
    resize_needed: bool
    notified: bool
    message: str
    created_at: datetime
    currency: str


def _moves(tenant: TenantLike, operation: CatalogueOperation) -> Select[Any]:
    event = SubscriptionEvent
    proration = (select(func.coalesce(func.sum(Charge.amount_minor), 0)).where(  # by the charges' unique key
        Charge.subscription_id == event.subscription_id,
        Charge.kind.in_([ChargeKind.PRORATION_CREDIT, ChargeKind.PRORATION_DEBIT]),
        Charge.period_start == event.created_at, Charge.usage_metric == "").scalar_subquery())
    return (select(event.id, event.subscription_id, event.data, event.created_at, proration.label("proration"),
                   Subscription.user_id, Subscription.currency)
            .join(Subscription, Subscription.id == event.subscription_id)
            .where(event.operation_id == operation.id, event.tenant_id == tenant.id)
            .order_by(event.subscription_id))


def _move_row(operation: CatalogueOperation, row: Any) -> OutcomeRow:
    data = row.data or {}
    return OutcomeRow(id=row.id, subscription_id=row.subscription_id, outcome=Outcome.MOVED,
                      from_plan_id=data.get("from_plan_id"), to_plan_id=data.get("to_plan_id"),
                      old_price_minor=data.get("from_price_minor"), new_price_minor=data.get("to_price_minor"),
                      proration_minor=row.proration, resize_needed=bool(data.get("resize_needed")),
                      notified=row.user_id <= operation.told_through, message=data.get("message", ""),
                      created_at=row.created_at, currency=row.currency)


def _outcome_row(outcome: OperationOutcome, currency: str) -> OutcomeRow:
    return OutcomeRow(id=outcome.id, subscription_id=outcome.subscription_id, outcome=outcome.outcome,
                      from_plan_id=outcome.from_plan_id, to_plan_id=outcome.to_plan_id,
                      old_price_minor=outcome.old_price_minor, new_price_minor=outcome.new_price_minor,
                      proration_minor=outcome.proration_minor, resize_needed=outcome.resize_needed,
                      notified=outcome.notified, message=outcome.message, created_at=outcome.created_at,
                      currency=currency)


def moved(tenant: TenantLike, operation_id: int, user_id: int) -> list[OutcomeRow]:
    """Every subscription of the customer that the replace operation moved, by id."""
    found = operation(tenant, operation_id)
    if found is None:
        return []
    # The customer's few subscriptions first, then their events by the events' unique key (not every event of the
    # operation, for each customer).
    ids = list(db.session.scalars(select(Subscription.id).where(Subscription.tenant_id == tenant.id,
                                                                Subscription.user_id == user_id)))
    rows = db.session.execute(_moves(tenant, found).where(SubscriptionEvent.subscription_id.in_(ids))) if ids else []
    return [_move_row(found, row) for row in rows]


def outcomes_page(tenant: TenantLike, operation_id: int, page: int = 1, per_page: int = 50) -> Page[OutcomeRow]:
    """What the operation did to each subscription: a replace's moves by subscription, a retire's outcomes in the
    order it had them."""
    page = page_number(page)
    found = operation(tenant, operation_id)
    if found is None:
        return Page([], page, per_page, False)
    if found.kind is CatalogueAction.REPLACE:
        rows = [_move_row(found, row) for row in db.session.execute(
            one_page_and_a_peek(_moves(tenant, found), page, per_page))]
    else:
        rows = [_outcome_row(outcome, currency) for outcome, currency in db.session.execute(one_page_and_a_peek(
            select(OperationOutcome, Subscription.currency)
            .join(Subscription, Subscription.id == OperationOutcome.subscription_id)
            .where(OperationOutcome.operation_id == found.id).order_by(OperationOutcome.id), page, per_page))]
    return Page(rows[:per_page], page, per_page, len(rows) > per_page)
