"""The one place where products and plans change lifecycle state, for tenant admins.

Each change asks the transition table (app/domain/plan_lifecycle.py), locks the rows it changes, and writes
a `CatalogueOperation` row naming who did what: the audit. Replace and retire touch every open subscription
of their plans, so they start a tracked operation that `advance` carries out chunk by chunk in the
background. A chunk is one transaction that changes its subscriptions and records what it did to each, so a
crash half-way loses nothing and touches nothing twice: the next `advance` takes up the subscriptions not
touched yet.

- replace: set-based per chunk. The source plans are retired when the operation starts, so a subscription not
  moved yet is one still on a source plan without an event of the operation: the chunk locks the next of them
  in id order and, per source plan, the database writes every row from them: one INSERT ... SELECT of their
  history events, each naming the operation (the record of the move: unique per operation and subscription,
  so no subscription is moved twice by one operation), one of their proration credits and debits (the domain's
  proration rule as SQL, app/models/pricing_sql.py; ON CONFLICT DO NOTHING, so a charge there is already is
  never doubled), then one UPDATE moves them. The admin's view of each move (prices, resize, proration) is
  read from its event and its charges (app/selectors/catalogue_operations.py). Once every subscription has
  moved, each customer gets one email listing what moved: a batch of customers' emails is written in one
  INSERT ... SELECT (`notify_later`: rendered by the worker that sends them, one send job for the lot), in
  customer id order, and the operation notes the last customer told in the same transaction, so a crash or a
  rerun tells nobody twice;
- retire: every subscription goes through the lifecycle engine (app/services/lifecycle.py), which cancels it
  now, ends its billing and starts its servers' end of life (shut down now, deleted after the retention); its
  outcome row (canceled, or failed and why), unique per operation and subscription, is written with it.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from enum import StrEnum
from functools import wraps
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import (
    ColumnElement,
    Integer,
    and_,
    case,
    exists,
    func,
    insert,
    literal,
    select,
    true,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from app.clock import now
from app.domain.billing import ChargeKind
from app.domain.catalogue import CatalogueState
from app.domain.notifications import Event
from app.domain.plan_lifecycle import (
    CatalogueAction,
    CatalogueError,
    Landing,
    check_mapping,
    check_target,
    needs_resize,
    next_state,
)
from app.domain.plan_offers import offer_problems
from app.domain.policy import ActorKind
from app.domain.subscriptions import Action
from app.extensions import db
from app.models import (
    CatalogueOperation,
    Charge,
    OperationOutcome,
    OperationStatus,
    Outcome,
    Plan,
    PlanLocation,
    PlanPrice,
    Product,
    Subscription,
    SubscriptionEvent,
    Tenant,
    TenantLike,
    User,
)
from app.models.base import UTCDateTime, among, json_boolean, json_object, json_string
from app.models.pricing_sql import epoch_microseconds, move_charge_sql
from app.selectors.catalogue_operations import BILLED, OPEN, landing, location_key, plan_facts, server_type
from app.services import lifecycle, plan_notices, work
from app.services.actors import Actor
from app.services.errors import Forbidden, InvalidInput, NotFound
from app.services.notifications import notify_later
from app.services.work import Job

log = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")

CHUNK = 5000  # subscriptions replaced per transaction (set-based: as short a transaction as 500 moved row by row)
TELL_BATCH = 1000  # customers emailed per transaction (one INSERT ... SELECT) once every subscription has moved
RETIRE_CHUNK = 100  # retire goes through the lifecycle engine one subscription at a time
STALLED_AFTER = timedelta(minutes=5)  # a running operation without progress this long lost its worker
RETIRED_REASON = "plan retired"


# --- who may, and the rows ------------------------------------------------------------------------------------

def _atomic(function: Callable[P, R]) -> Callable[P, R]:
    """A refused or failed change leaves nothing behind: what it flushed before the refusal is rolled back."""
    @wraps(function)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return function(*args, **kwargs)
        except Exception:
            db.session.rollback()
            raise
    return run


def _admin(tenant: TenantLike, actor: Actor) -> None:
    if actor.kind is not ActorKind.TENANT_ADMIN or actor.user is None or actor.user.tenant_id != tenant.id:
        raise Forbidden("Only the tenant's admins can change the catalogue's lifecycle.")


def _plan(tenant: TenantLike, plan_id: int) -> Plan:
    plan = db.session.scalar(select(Plan).where(Plan.id == plan_id, Plan.tenant_id == tenant.id).with_for_update())
    if plan is None:
        raise NotFound("There is no such plan.")
    return plan


def _product(tenant: TenantLike, product_id: int) -> Product:
    product = db.session.scalar(select(Product).where(Product.id == product_id, Product.tenant_id == tenant.id)
                                .with_for_update())
    if product is None:
        raise NotFound("There is no such product.")
    return product


def _offers_checked(plan: Plan) -> None:
    """A plan is published only with offers its service type's schema allows (the schema may have changed)."""
    if problems := offer_problems(plan.service_type.config_schema, plan.offers):
        raise InvalidInput(f"Fix the offers of {plan.name} first: {' '.join(problems.values())}")


def _move(row: Plan | Product, action: CatalogueAction) -> None:
    try:
        row.state = next_state(row.state, action)
    except CatalogueError as error:
        raise InvalidInput(error.message) from None


def _record(tenant: TenantLike, actor: Actor, kind: CatalogueAction, *, plan_ids: list[int],
            product_id: int | None = None, mapping: Mapping[int, int] | None = None,
            status: OperationStatus = OperationStatus.FINISHED, total: int = 0,
            **details: object) -> CatalogueOperation:
    moment = now()
    operation = CatalogueOperation(
        tenant_id=tenant.id, kind=kind, actor_id=actor.user_id,
        actor_name=(actor.user.email if actor.user else actor.name)[:200], product_id=product_id,
        plan_ids=plan_ids, mapping={str(k): v for k, v in (mapping or {}).items()}, details=details,
        status=status, total=total, started_at=moment, updated_at=moment,
        finished_at=moment if status is OperationStatus.FINISHED else None, message="")
    db.session.add(operation)
    db.session.flush()
    log.info("catalogue %s by %s: plans %s", kind.value, operation.actor_name, plan_ids,
             extra={"tenant_id": tenant.id, "user_id": actor.user_id})
    return operation


def _done(operation: CatalogueOperation) -> CatalogueOperation:
    try:
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return operation


# --- one plan or product at a time ----------------------------------------------------------------------------

@_atomic
def publish_plan(*, tenant: TenantLike, actor: Actor, plan_id: int) -> CatalogueOperation:
    """A draft plan takes orders (its product must be published, or published with it). The plan's edit page
    and the lifecycle actions both publish through here."""
    _admin(tenant, actor)
    plan = _plan(tenant, plan_id)
    if plan.product.state is not CatalogueState.PUBLISHED:
        raise InvalidInput("Publish the plan's product first: a plan of an unpublished product is not shown.")
    _move(plan, CatalogueAction.PUBLISH)
    _offers_checked(plan)
    return _done(_record(tenant, actor, CatalogueAction.PUBLISH, plan_ids=[plan.id], product_id=plan.product_id))


@_atomic
def publish_product(*, tenant: TenantLike, actor: Actor, product_id: int) -> CatalogueOperation:
    """A draft product and its draft plans take orders."""
    _admin(tenant, actor)
    product = _product(tenant, product_id)
    _move(product, CatalogueAction.PUBLISH)
    drafts = [plan for plan in _plans_of(product) if plan.state is CatalogueState.DRAFT]
    if not drafts and not any(plan.state is CatalogueState.PUBLISHED for plan in product.plans):
        raise InvalidInput("The product has no plan to offer: add one first.")
    for plan in drafts:
        _move(plan, CatalogueAction.PUBLISH)
        _offers_checked(plan)
    return _done(_record(tenant, actor, CatalogueAction.PUBLISH, plan_ids=[p.id for p in drafts],
                         product_id=product.id))


def _plans_of(product: Product) -> list[Plan]:
    return list(db.session.scalars(select(Plan).where(Plan.product_id == product.id).order_by(Plan.sort_order,
                                                                                              Plan.id)
                                   .with_for_update()))


def _target(tenant: TenantLike, plan: Plan, target_id: int) -> Plan:
    target = db.session.scalar(select(Plan).where(Plan.id == target_id, Plan.tenant_id == tenant.id))
    if target is None:
        raise InvalidInput("Choose a plan of this catalogue as the migration target.")
    try:
        check_target(plan_facts(plan), plan_facts(target))
    except CatalogueError as error:
        raise InvalidInput(error.message) from None
    return target


@_atomic
def set_target(*, tenant: TenantLike, actor: Actor, plan_id: int, target_id: int | None,
               deprecate: bool = False) -> CatalogueOperation:
    """Offer the plan's customers `target_id` to move to (None clears it), deprecating the plan if asked.

    Customers choose; a deprecation tells every subscriber, naming the target."""
    _admin(tenant, actor)
    plan = _plan(tenant, plan_id)
    action = CatalogueAction.CLEAR_TARGET if target_id is None else CatalogueAction.SET_TARGET
    _move(plan, action)
    plan.migration_target_id = None if target_id is None else _target(tenant, plan, target_id).id
    kind = action
    if deprecate:
        _move(plan, CatalogueAction.DEPRECATE)
        kind = CatalogueAction.DEPRECATE
    operation = _done(_record(tenant, actor, kind, plan_ids=[plan.id], product_id=plan.product_id,
                              target_id=plan.migration_target_id))
    if deprecate:
        plan_notices.announce_deprecation(tenant=tenant, actor=actor, plan_id=plan.id)
    return operation


@_atomic
def deprecate_plan(*, tenant: TenantLike, actor: Actor, plan_id: int,
                   target_id: int | None = None) -> CatalogueOperation:
    """No new orders; subscribers keep their service and are told (with the target, if one is given)."""
    _admin(tenant, actor)
    plan = _plan(tenant, plan_id)
    _move(plan, CatalogueAction.DEPRECATE)
    if target_id is not None:
        plan.migration_target_id = _target(tenant, plan, target_id).id
    operation = _done(_record(tenant, actor, CatalogueAction.DEPRECATE, plan_ids=[plan.id],
                              product_id=plan.product_id, target_id=plan.migration_target_id))
    plan_notices.announce_deprecation(tenant=tenant, actor=actor, plan_id=plan.id)
    return operation


@_atomic
def next_version(*, tenant: TenantLike, actor: Actor, product_id: int) -> Product:
    """The product's next version: a draft copy of it and its plans, to edit and publish before superseding."""
    _admin(tenant, actor)
    product = _product(tenant, product_id)
    if product.state in (CatalogueState.DRAFT, CatalogueState.RETIRED):
        raise InvalidInput("Only a published or deprecated product gets a next version.")
    latest = db.session.scalar(select(Product.version).where(Product.tenant_id == tenant.id,
                                                             Product.slug == product.slug)
                               .order_by(Product.version.desc()).limit(1))
    copy = Product(tenant_id=tenant.id, slug=product.slug, name=product.name, description=product.description,
                   version=(latest or product.version) + 1, state=CatalogueState.DRAFT)
    db.session.add(copy)
    db.session.flush()
    for plan in _plans_of(product):
        if plan.state is CatalogueState.RETIRED:
            continue
        db.session.add(Plan(  # with what it offers: its server types and their prices, locations, images
            tenant_id=tenant.id, product_id=copy.id, service_type_id=plan.service_type_id, slug=plan.slug,
            name=plan.name, description=plan.description, features=list(plan.features),
            price_minor=plan.price_minor, currency=plan.currency, interval=plan.interval,
            quantity_allowed=plan.quantity_allowed, max_quantity=plan.max_quantity,
            config_defaults=dict(plan.config_defaults),
            allow_customer_location_selection=plan.allow_customer_location_selection,
            cancellation_rule=plan.cancellation_rule, downgrade_rule=plan.downgrade_rule,
            state=CatalogueState.DRAFT, sort_order=plan.sort_order, usage_prices=list(plan.usage_prices),
            images=list(plan.images or []), free_plan_limit=plan.free_plan_limit,
            price_notice_days=plan.price_notice_days,
            prices=[PlanPrice(server_type=price.server_type, price_minor=price.price_minor,
                              cost_minor=price.cost_minor, markup_bp=price.markup_bp, sort=price.sort,
                              is_default=price.is_default) for price in plan.prices],
            locations=[PlanLocation(location=where.location, surcharge_minor=where.surcharge_minor, sort=where.sort,
                                    is_default=where.is_default) for where in plan.locations]))
    _record(tenant, actor, CatalogueAction.SUPERSEDE, plan_ids=[], product_id=product.id, step="next_version",
            copy_id=copy.id, version=copy.version)
    try:
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return copy


@_atomic
def supersede(*, tenant: TenantLike, actor: Actor, product_id: int,
              mapping: Mapping[int, int]) -> CatalogueOperation:
    """Deprecate the product and each of its plans with its own migration target; customers choose."""
    _admin(tenant, actor)
    product = _product(tenant, product_id)
    _move(product, CatalogueAction.SUPERSEDE)
    plans = [plan for plan in _plans_of(product) if plan.state in (CatalogueState.PUBLISHED,
                                                                    CatalogueState.DEPRECATED)]
    missing = [plan.name for plan in plans if plan.id not in mapping]
    if missing:
        raise InvalidInput(f"Choose a target for every plan: {', '.join(missing)}.")
    for plan in plans:
        _move(plan, CatalogueAction.SUPERSEDE)
        plan.migration_target_id = _target(tenant, plan, mapping[plan.id]).id
    operation = _done(_record(tenant, actor, CatalogueAction.SUPERSEDE, plan_ids=[p.id for p in plans],
                              product_id=product.id, mapping={p.id: mapping[p.id] for p in plans}))
    for plan in plans:
        plan_notices.announce_deprecation(tenant=tenant, actor=actor, plan_id=plan.id)
    return operation


# --- replace and retire: tracked operations ------------------------------------------------------------------

def check_replace(tenant: TenantLike, mapping: Mapping[int, int]) -> None:
    """Whether `mapping` (source plan id -> target plan id) may be replaced now; no writes."""
    known = db.session.scalars(select(Plan).where(Plan.tenant_id == tenant.id,
                                                  Plan.id.in_([*mapping, *mapping.values()]))).all()
    facts = {plan.id: plan_facts(plan) for plan in known}
    try:
        check_mapping({k: facts[k] for k in mapping if k in facts},
                      {v: facts[v] for v in mapping.values() if v in facts}, mapping)
    except CatalogueError as error:
        raise InvalidInput(error.message) from None


def _open_count(tenant: TenantLike, plan_ids: list[int]) -> int:
    return db.session.scalar(select(func.count()).select_from(Subscription).where(
        Subscription.tenant_id == tenant.id, Subscription.plan_id.in_(plan_ids),
        Subscription.status.in_(OPEN))) or 0


@_atomic
def start_replace(*, tenant: TenantLike, actor: Actor, mapping: Mapping[int, int],
                  product_id: int | None = None) -> CatalogueOperation:
    """Retire each source plan now and move its subscribers to its target in the background."""
    _admin(tenant, actor)
    if product_id is not None:
        product = _product(tenant, product_id)
        _move(product, CatalogueAction.REPLACE)
        live = {plan.id for plan in _plans_of(product) if plan.state in (CatalogueState.PUBLISHED,
                                                                         CatalogueState.DEPRECATED)}
        if live != set(mapping):
            raise InvalidInput("Map every published or deprecated plan of the product, and only those.")
    sources = [_plan(tenant, plan_id) for plan_id in sorted(mapping)]  # locked in id order: no deadlocks
    check_replace(tenant, mapping)
    for plan in sources:
        _move(plan, CatalogueAction.REPLACE)
        plan.migration_target_id = mapping[plan.id]
    ids = [plan.id for plan in sources]
    operation = _record(tenant, actor, CatalogueAction.REPLACE, plan_ids=ids, product_id=product_id,
                        mapping=mapping, status=OperationStatus.RUNNING, total=_open_count(tenant, ids))
    work.later(Job.ADVANCE_CATALOGUE_OPERATION, operation.id)
    return _done(operation)


@_atomic
def start_retire(*, tenant: TenantLike, actor: Actor, plan_ids: list[int],
                 product_id: int | None = None) -> CatalogueOperation:
    """Retire the plans now and cancel every open subscription of theirs in the background."""
    _admin(tenant, actor)
    if product_id is not None:
        product = _product(tenant, product_id)
        _move(product, CatalogueAction.RETIRE)
        plan_ids = [plan.id for plan in _plans_of(product) if plan.state in (CatalogueState.PUBLISHED,
                                                                             CatalogueState.DEPRECATED)]
    if not plan_ids:
        raise InvalidInput("Choose a published or deprecated plan to retire.")
    plans = [_plan(tenant, plan_id) for plan_id in sorted(set(plan_ids))]
    for plan in plans:
        _move(plan, CatalogueAction.RETIRE)
    ids = [plan.id for plan in plans]
    operation = _record(tenant, actor, CatalogueAction.RETIRE, plan_ids=ids, product_id=product_id,
                        status=OperationStatus.RUNNING, total=_open_count(tenant, ids))
    work.later(Job.ADVANCE_CATALOGUE_OPERATION, operation.id)
    return _done(operation)


@_atomic
def pause(*, tenant: TenantLike, actor: Actor, operation_id: int) -> CatalogueOperation:
    """Stop after the chunk under way; nothing is undone."""
    _admin(tenant, actor)
    operation = _operation(tenant, operation_id)
    if operation.status is not OperationStatus.RUNNING:
        raise InvalidInput("Only a running operation can be paused.")
    operation.status, operation.updated_at = OperationStatus.PAUSED, now()
    operation.message = f"Paused by {actor.user.email if actor.user else actor.name}."
    return _done(operation)


@_atomic
def resume(*, tenant: TenantLike, actor: Actor, operation_id: int) -> CatalogueOperation:
    """Take a paused (or failed) operation up again where it stopped."""
    _admin(tenant, actor)
    operation = _operation(tenant, operation_id)
    if operation.status not in (OperationStatus.PAUSED, OperationStatus.FAILED):
        raise InvalidInput("Only a paused or failed operation can be resumed.")
    operation.status, operation.updated_at, operation.message = OperationStatus.RUNNING, now(), ""
    work.later(Job.ADVANCE_CATALOGUE_OPERATION, operation.id)
    return _done(operation)


def _operation(tenant: TenantLike, operation_id: int) -> CatalogueOperation:
    operation = db.session.scalar(select(CatalogueOperation).where(
        CatalogueOperation.id == operation_id, CatalogueOperation.tenant_id == tenant.id).with_for_update())
    if operation is None or not operation.kind.bulk:
        raise NotFound("There is no such operation.")
    return operation


def stalled() -> list[int]:
    """Running operations that made no progress for a while: their worker died; the periodic job requeues."""
    return list(db.session.scalars(select(CatalogueOperation.id).where(
        CatalogueOperation.status == OperationStatus.RUNNING,
        CatalogueOperation.updated_at < now() - STALLED_AFTER).order_by(CatalogueOperation.id)))


def fail(operation_id: int, error: str) -> None:
    """An unexpected error stops the operation; an admin can resume it (the chunk that failed changed nothing)."""
    db.session.rollback()
    operation = db.session.get(CatalogueOperation, operation_id, with_for_update=True)
    if operation is not None and operation.status is OperationStatus.RUNNING:
        operation.status, operation.message, operation.updated_at = OperationStatus.FAILED, error[:2000], now()
    db.session.commit()


class Step(StrEnum):
    """What one call of `advance` did."""

    CHANGED = "changed"  # a chunk of subscriptions moved or canceled
    TOLD = "told"  # every subscription has moved: a batch of customers emailed
    FINISHED = "finished"
    IDLE = "idle"  # nothing to do: not running (paused, failed, finished) or no such operation


def advance(operation_id: int, *, chunk: int | None = None) -> bool:
    """Carry out one step of a running operation in one transaction; True while there is more to do."""
    return advance_step(operation_id, chunk=chunk) in (Step.CHANGED, Step.TOLD)


def advance_step(operation_id: int, *, chunk: int | None = None) -> Step:
    """One step: a chunk of subscriptions changed; once none is left, a batch of customers told; then finished.

    Each step is one transaction that locks the operation's row first, so two workers on one operation take
    turns, and a pause takes effect before the next step."""
    operation = db.session.get(CatalogueOperation, operation_id, with_for_update=True, populate_existing=True)
    if operation is None or operation.status is not OperationStatus.RUNNING:
        db.session.rollback()
        return Step.IDLE
    try:
        if operation.kind is CatalogueAction.REPLACE:
            step = Step.CHANGED if _replace_chunk(operation, chunk or CHUNK) else (
                Step.TOLD if _tell_customers(operation, TELL_BATCH) else Step.FINISHED)
        else:
            step = Step.CHANGED if _retire_chunk(operation, chunk or RETIRE_CHUNK) else Step.FINISHED
        moment = now()
        operation.updated_at = moment
        if step is Step.FINISHED:
            operation.status, operation.finished_at = OperationStatus.FINISHED, moment
            if operation.done < operation.total:  # some ended on their own in the meantime
                operation.message = (f"{operation.total - operation.done} of the subscriptions counted at the "
                                     f"start ended before their turn.")
            operation.total = operation.done
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return step


def _tell_customers(operation: CatalogueOperation, customers: int) -> int:
    """One "plan replaced" email to each of the next `customers` customers (by id, after the last one told),
    listing every subscription of theirs the operation moved: written in one INSERT ... SELECT and rendered by the
    worker that sends them (what they list is read then: RENDERED_WHEN_SENT in app/services/notifications.py).
    The operation notes the last customer told in the same transaction, so each is told once."""
    untold = (select(Subscription.user_id)
              .join(SubscriptionEvent, SubscriptionEvent.subscription_id == Subscription.id)
              .where(SubscriptionEvent.operation_id == operation.id, Subscription.user_id > operation.told_through)
              .distinct().order_by(Subscription.user_id).limit(customers))
    user_ids = list(db.session.scalars(untold))
    if not user_ids:
        return 0
    tenant = db.session.get(Tenant, operation.tenant_id)
    assert tenant is not None
    notify_later(Event.PLAN_REPLACED, tenant, select(  # type: ignore[arg-type]
        User.id.label("user_id"), User.email.label("to_address"), User.purged_at,
        json_object("operation_id", operation.id, "user_id", User.id).label("render_context"))
        .where(User.id.in_(user_ids), User.tenant_id == operation.tenant_id).order_by(User.id))
    operation.told_through = user_ids[-1]
    return len(user_ids)


def _untouched(operation: CatalogueOperation, plan_ids: list[int]) -> tuple[ColumnElement[bool], ...]:
    """The open subscriptions of the plans that the retire operation has no outcome for yet."""
    done = exists().where(OperationOutcome.operation_id == operation.id,
                          OperationOutcome.subscription_id == Subscription.id)
    return (Subscription.tenant_id == operation.tenant_id, Subscription.plan_id.in_(plan_ids),
            Subscription.status.in_(OPEN), ~done)


def _actor(operation: CatalogueOperation) -> Actor:
    user = db.session.get(User, operation.actor_id) if operation.actor_id else None
    return Actor(user) if user is not None else Actor.system("catalogue")


def _replace_chunk(operation: CatalogueOperation, size: int) -> int:
    """Move the next `size` subscriptions still on a source plan (locked, in id order) to their target plans.

    The sources are retired when the operation starts, so those still on them are those not moved yet; one the
    operation moved already (its event names the operation) is left alone, should a change scheduled before the
    retirement have taken it back. Set-based: per source plan, the database computes every row from the
    subscriptions themselves (`_move_to`)."""
    mapping = {int(source): target for source, target in operation.mapping.items()}
    moved = exists().where(SubscriptionEvent.operation_id == operation.id,  # by the events' unique index
                           SubscriptionEvent.subscription_id == Subscription.id)
    rows = db.session.connection().execute(  # plain rows: only their ids and plans are needed here
        select(Subscription.id, Subscription.plan_id).where(
            Subscription.tenant_id == operation.tenant_id, Subscription.plan_id.in_(list(mapping)),
            Subscription.status.in_(OPEN), ~moved)
        .order_by(Subscription.id).limit(size).with_for_update()).all()
    if not rows:
        return 0
    plans = {plan.id: plan for plan in db.session.scalars(
        select(Plan).where(Plan.id.in_([*mapping, *mapping.values()])))}
    by_source: dict[int, list[int]] = defaultdict(list)
    for subscription_id, plan_id in rows:
        by_source[plan_id].append(subscription_id)
    moment = now()
    for source_id, ids in sorted(by_source.items()):
        _move_to(operation, plans[source_id], plans[mapping[source_id]], ids, moment)
    operation.moved += len(rows)
    return len(rows)


_EVENT_COLUMNS = ["tenant_id", "subscription_id", "kind", "from_status", "to_status", "actor_id", "reason", "data",
                  "created_at", "operation_id"]
_CHARGE_COLUMNS = ["tenant_id", "subscription_id", "user_id", "kind", "description", "usage_metric", "quantity",
                   "unit_amount_minor", "amount_minor", "currency", "period_start", "period_end", "created_at"]


def _move_to(operation: CatalogueOperation, source: Plan, target: Plan, ids: list[int], moment: datetime) -> None:
    """Subscriptions `ids` of `source` (locked, not moved yet) move to `target`: their events, their proration
    charges, then the UPDATE, each one statement over all of them."""
    s, at = Subscription, literal(moment, UTCDateTime)
    # Where each moves: its server type kept if the target offers it, priced for it and its location
    # (plan_lifecycle.replaced_into, worked out once per kind of subscription in the chunk, then a CASE).
    kinds = _kinds(source, target, ids)
    resizes = {kind: bool(needs_resize(current, landed.server_type)) for kind, (current, landed) in kinds.items()}
    prices = {kind: landed.unit_price_minor for kind, (_, landed) in kinds.items()}
    details: dict[str, Any] = {}
    if server_type(target.config_defaults) is None and not target.prices:  # needs_resize: unknown
        resizes = dict.fromkeys(kinds, False)
        details["message"] = "The new plan names no server type."

    def new_price(row: Any) -> Any:
        return _per_kind(row, target, prices) * row.quantity

    def resize(row: Any) -> Any:
        return _per_kind(row, target, resizes)

    # The record of each move: its history event, naming the operation.
    db.session.execute(insert(SubscriptionEvent).from_select(_EVENT_COLUMNS, select(
        s.tenant_id, s.id, literal("plan_replaced"), s.status, s.status, literal(operation.actor_id, Integer),
        literal(f"{source.name} replaced by {target.name}"),
        json_object("operation_id", operation.id, "from_plan_id", source.id, "to_plan_id", target.id,
                    "from_price_minor", s.price_minor, "to_price_minor", new_price(s),
                    "resize_needed", json_boolean(resize(s)),
                    *(part for key, value in details.items() for part in (key, value))),
        at, literal(operation.id)).where(among(s.id, ids))))
    # The proration of those being billed: each one's period ends parsed once (the costly part on SQLite), and
    # its configuration read only where the kinds' prices differ; each charge's amount computed once, for the
    # two INSERTs' rows and their filter.
    rows = select(s.id, s.tenant_id, s.user_id, s.quantity, s.price_minor, s.currency, s.current_period_end,
                  *([s.requested_config] if len(set(prices.values())) > 1 else []),
                  epoch_microseconds(s.current_period_start).label("start_us"),
                  epoch_microseconds(s.current_period_end).label("end_us"),
                  ).where(among(s.id, ids), s.status.in_(BILLED)).cte("moving").prefix_with("MATERIALIZED")
    credit, debit = move_charge_sql(rows.c.price_minor, new_price(rows.c), billed=true(),
                                    period_start_us=rows.c.start_us, period_end_us=rows.c.end_us, at=moment)
    lines = select(rows.c.id, rows.c.tenant_id, rows.c.user_id, rows.c.currency, rows.c.current_period_end,
                   credit.label("credit"), debit.label("debit")).cte("lines").prefix_with("MATERIALIZED")
    db.session.execute(_insert_new_charges().from_select(_CHARGE_COLUMNS, union_all(*(
        select(lines.c.tenant_id, lines.c.id, lines.c.user_id, literal(kind.value),
               literal(f"{text} (plan replaced)"[:200]), literal(""), literal(1), amount, amount, lines.c.currency,
               at, lines.c.current_period_end, at).where(amount != 0)
        for kind, amount, text in (
            (ChargeKind.PRORATION_CREDIT, lines.c.credit, f"{source.name}: unused time"),
            (ChargeKind.PRORATION_DEBIT, lines.c.debit, f"{target.name}: rest of the period"))))))
    db.session.execute(
        update(Subscription).where(among(s.id, ids))
        .values(plan_id=target.id, price_minor=new_price(s), version=Subscription.version + 1, updated_at=moment)
        .execution_options(synchronize_session=False))
    if any(resizes.values()):
        _resize_where_needed(target, ids, resize(s), kinds)


def _kind_of(config: Any, target: Plan) -> tuple[ColumnElement[str], ColumnElement[str]]:
    """A subscription's kind, from its configuration: the server type and the location it asks for, "" for none."""
    return (func.coalesce(json_string(config, "serverType"), ""),
            func.coalesce(json_string(config, location_key(target)), ""))


def _kinds(source: Plan, target: Plan, ids: list[int]) -> dict[tuple[str, str], tuple[str | None, Landing]]:
    """The chunk's kinds of subscription (server type and location asked for, "" for none) and where each
    lands on the target: a handful, whatever the chunk's size."""
    key = location_key(target)
    config = Subscription.requested_config
    found = db.session.execute(select(func.coalesce(json_string(config, "serverType"), ""),
                                      func.coalesce(json_string(config, key), "")).distinct()
                               .where(among(Subscription.id, ids))).all()
    return {(kind, where): landing(source, target, {"serverType": kind or None, key: where or None})
            for kind, where in found}


def _per_kind(row: Any, target: Plan, values: Mapping[tuple[str, str], Any]) -> Any:
    """A CASE giving each kind of subscription (of `row`'s configuration) its value; the value itself when every
    kind has the same."""
    if len(set(values.values())) == 1:
        return literal(next(iter(values.values())))
    kind_of = _kind_of(row.requested_config, target)
    return case(*[(and_(kind_of[0] == kind, kind_of[1] == where), literal(value))
                  for (kind, where), value in values.items()], else_=literal(next(iter(values.values()))))


def _resize_where_needed(target: Plan, ids: list[int], needed: ColumnElement[bool],
                         kinds: Mapping[tuple[str, str], tuple[str | None, Landing]]) -> None:
    """The moved subscriptions whose server type changes (`needed`): each server is given its new type and
    resized (the 'resizing' job takes up any whose task is lost). Few, as a rule: a replace's target usually
    offers the types its subscribers have."""
    key = location_key(target)
    moved = db.session.scalars(select(Subscription).where(among(Subscription.id, ids), needed)
                               .execution_options(populate_existing=True)).all()
    for subscription in moved:
        config = subscription.requested_config or {}
        where = config.get(key)  # read as json_string reads it: a string, else none
        _, landed = kinds[(server_type(config) or "", where if isinstance(where, str) else "")]
        lifecycle.switch_plan(subscription, plan=target, quantity=subscription.quantity,
                              price_minor=subscription.price_minor, server_type=landed.server_type)


def _insert_new_charges() -> Any:
    """INSERT INTO charges ... ON CONFLICT DO NOTHING (a charge there is already is kept, never doubled), on
    SQLite and PostgreSQL alike."""
    insert_ = postgresql.insert if db.session.get_bind().dialect.name == "postgresql" else sqlite.insert
    return insert_(Charge).on_conflict_do_nothing()


def _retire_chunk(operation: CatalogueOperation, size: int) -> int:
    where = _untouched(operation, list(operation.plan_ids))
    subscriptions = db.session.scalars(select(Subscription).where(*where).order_by(Subscription.id).limit(size)
                                       .with_for_update()).all()
    actor, moment, outcomes = _actor(operation), now(), []
    for subscription in subscriptions:
        outcome, message = Outcome.CANCELED, ""
        try:
            with db.session.begin_nested():
                lifecycle.apply(subscription, Action.TERMINATE, actor=actor, reason=RETIRED_REASON,
                                event="plan_retired", operation_id=operation.id)
        except InvalidInput as error:
            outcome, message = Outcome.FAILED, error.message
        outcomes.append({
            "operation_id": operation.id, "subscription_id": subscription.id, "outcome": outcome,
            "from_plan_id": subscription.plan_id, "to_plan_id": None, "old_price_minor": subscription.price_minor,
            "new_price_minor": None, "proration_minor": 0, "resize_needed": False, "message": message[:500],
            "notified": outcome is Outcome.CANCELED, "created_at": moment})
        if outcome is Outcome.CANCELED:
            operation.canceled += 1
        else:
            operation.failed += 1
    if outcomes:
        db.session.execute(insert(OperationOutcome.__table__), outcomes)
    return len(subscriptions)


def apply_now(operation_id: int, *, chunk: int | None = None) -> None:
    """Run an operation to its end in this process, step by step as the background task does."""
    while advance(operation_id, chunk=chunk):
        pass
