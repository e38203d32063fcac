"""A customer changes their subscription's plan or quantity, or migrates it to its plan's migration target.

`preview` writes nothing: it shows what `apply` would do, computed by the same function from the same
inputs, so the amounts confirmed are the amounts charged. `apply` runs under the subscription's row lock
with the version the customer saw: two tabs, or a change racing the renewal, give one winner and a clear
message to the other, never a second charge.

- Applied now (upgrades, and downgrades of plans whose rule says so): the proration's credit and debit become
  two charges dated to the second of the change (unique per subscription, kind and that instant), the
  subscription moves to the new plan and price (`lifecycle.switch_plan`), and the customer is billed now.
- At the period's end (other downgrades): a scheduled change, which the renewal applies before it charges
  the new period (`lifecycle`), or the customer cancels before.

The target is priced for the server type and location the subscription will have on it: the customer's
server type when the target offers it (else the target's default), at the target's price for that type, plus
the surcharge of the location the servers are in; a target not offered there is refused, since a resize
cannot move a server. A new server type queues each server's resize (the server's desired type is set in its
config).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.attributes import flag_modified
from sqlalchemy.orm.exc import StaleDataError

from app.clock import now
from app.domain.billing import ChargeKind
from app.domain.catalogue import CatalogueState, Provider
from app.domain.configuration import geography_key
from app.domain.notifications import Event
from app.domain.plan_changes import (
    ChangeAction,
    ChangeRefused,
    Current,
    PaymentMethodNeeded,
    Preview,
    ScheduledStatus,
    Terms,
    carried_location,
    carried_server_type,
    preview_change,
)
from app.domain.plan_offers import SERVER_TYPE_KEY
from app.domain.policy import Do
from app.domain.pricing import PlanPrice
from app.domain.subscriptions import ItemStatus, SubscriptionStatus
from app.domain.usage import metered_prices
from app.extensions import db
from app.models import Charge, Plan, Product, ScheduledPlanChange, Subscription, TenantLike
from app.providers.base import ProviderError
from app.services import availability_cache, events, lifecycle, ordering, payment_methods, work
from app.services.actors import Actor
from app.services.errors import Conflict, InvalidInput, NotFound, ServiceError
from app.services.notifications import notify
from app.services.ordering import PaymentMethodRequired
from app.services.work import Job

RELOAD = lifecycle.RELOAD


@dataclass(frozen=True)
class Proposal:
    """A previewed change of one subscription: the subscription (with the version shown), the target, the preview,
    and the location the servers stay in (priced with its surcharge)."""

    subscription: Subscription
    target: Plan
    preview: Preview
    location: str | None = None

    @property
    def surcharge_minor(self) -> int:
        """What the location adds to the new price (per seat, times the quantity)."""
        offer = self.target.offers.location_of(self.location) if self.location else None
        return offer.surcharge_minor * self.preview.quantity if offer else 0


def recurring_price(plan: Plan, quantity: int, *, server_type: str | None, location: str | None) -> int:
    """The recurring price of `quantity` of `plan` for the server type and location the subscription has on it,
    as the catalogue prices them now (ordering's price: the type's price plus the location's surcharge)."""
    return ordering.price(plan, quantity, server_type=server_type, location=location).recurring.amount


def targets(tenant: TenantLike, subscription: Subscription) -> list[Plan]:
    """The plans `subscription` may change to with Change plan: orderable, same service type and interval."""
    return list(db.session.scalars(
        select(Plan).join(Plan.product)
        .where(Plan.tenant_id == tenant.id, Plan.service_type_id == subscription.plan.service_type_id,
               Plan.id != subscription.plan_id, Plan.state == CatalogueState.PUBLISHED,
               Product.state == CatalogueState.PUBLISHED, Plan.interval == subscription.interval,
               Plan.currency == subscription.currency)
        .order_by(Plan.sort_order, Plan.id)))


def target_prices(subscription: Subscription, plans: list[Plan]) -> dict[int, int | None]:
    """What each of `plans` would cost this subscription per interval, priced as its preview is (its server type
    and location kept); None for a plan not offered where its servers are."""
    prices: dict[int, int | None] = {}
    for plan in plans:
        try:
            _, server_type, where = _carried(subscription, plan)
            prices[plan.id] = recurring_price(plan, subscription.quantity, server_type=server_type, location=where)
        except (ChangeRefused, InvalidInput):
            prices[plan.id] = None
    return prices


def changeable(subscription: Subscription) -> bool:
    """Whether the plan-change buttons apply: an active, delivered subscription."""
    return subscription.status is SubscriptionStatus.ACTIVE and subscription.current_period_end is not None


def preview(*, tenant: TenantLike, actor: Actor, subscription_id: int, action: ChangeAction,
            plan_id: int | None = None, quantity: int | None = None) -> Proposal:
    """What the change would do; writes nothing. Raises NotFound, Forbidden, InvalidInput or
    PaymentMethodRequired with a message for the customer."""
    subscription = _find(tenant, subscription_id)
    actor.may(Do.CHANGE_PLAN, subscription)
    return _propose(tenant, subscription, action, plan_id, quantity)


def apply(*, tenant: TenantLike, actor: Actor, subscription_id: int, action: ChangeAction, version: int,
          plan_id: int | None = None, quantity: int | None = None) -> Proposal:
    """Apply the change the customer confirmed, at the version they saw, and commit."""
    try:
        subscription = lifecycle.lock(tenant, subscription_id)
        actor.may(Do.CHANGE_PLAN, subscription)
        if subscription.version != version:
            raise Conflict(RELOAD)
        proposal = _propose(tenant, subscription, action, plan_id, quantity)
        if proposal.preview.immediate:
            _apply_now(subscription, proposal, actor)
        else:
            _schedule(subscription, proposal, actor)
        _new_version(subscription)  # even when only a scheduled change was written
        db.session.flush()
    except (StaleDataError, IntegrityError):  # a concurrent writer won (no row locks on SQLite)
        db.session.rollback()
        raise Conflict(RELOAD) from None
    except Exception:
        db.session.rollback()
        raise
    lifecycle.commit()
    return proposal


def _new_version(subscription: Subscription) -> None:
    """The subscription is written (and its version counted up) even when the time stands still (a frozen clock, or
    two changes in one clock tick), so an ETag or a form's version read before is stale."""
    subscription.updated_at = now()
    flag_modified(subscription, "updated_at")


def scheduled(tenant: TenantLike, subscription_id: int) -> ScheduledPlanChange | None:
    """The change waiting for the end of the tenant's subscription's period, if any."""
    return db.session.scalar(select(ScheduledPlanChange).where(
        ScheduledPlanChange.tenant_id == tenant.id, ScheduledPlanChange.subscription_id == subscription_id,
        ScheduledPlanChange.status == ScheduledStatus.SCHEDULED))


def cancel_scheduled(*, tenant: TenantLike, actor: Actor, subscription_id: int, version: int) -> Subscription:
    """Cancel the change waiting for the period's end; the subscription stays on its plan."""
    try:
        subscription = lifecycle.lock(tenant, subscription_id)
        actor.may(Do.CHANGE_PLAN, subscription)
        if subscription.version != version:
            raise Conflict(RELOAD)
        waiting = lifecycle.scheduled_change(subscription)
        if waiting is None:
            raise InvalidInput("There is no scheduled change to cancel: it was canceled or has taken effect.")
        waiting.status, waiting.closed_at = ScheduledStatus.CANCELED, now()
        events.record(subscription, "plan_change_canceled", actor=actor, plan=waiting.plan.name,
                      quantity=waiting.quantity, scheduled_change=waiting.id)
        _new_version(subscription)
        db.session.flush()
    except StaleDataError:
        db.session.rollback()
        raise Conflict(RELOAD) from None
    except Exception:
        db.session.rollback()
        raise
    lifecycle.commit()
    return subscription


# --- the steps ----------------------------------------------------------------------------------------------------

def _find(tenant: TenantLike, subscription_id: int) -> Subscription:
    subscription = db.session.scalar(select(Subscription).where(Subscription.id == subscription_id,
                                                                Subscription.tenant_id == tenant.id))
    if subscription is None:
        raise NotFound("There is no such subscription.")
    return subscription


def _propose(tenant: TenantLike, subscription: Subscription, action: ChangeAction, plan_id: int | None,
             quantity: int | None) -> Proposal:
    if not changeable(subscription):
        raise InvalidInput("Only an active subscription can change its plan or quantity.")
    if subscription.marketplace is not None:  # the marketplace prices and bills the change (marketplace_microsoft)
        raise InvalidInput(f"The {subscription.marketplace.label} bills this subscription: its plan and quantity are "
                           f"changed through it ({subscription.marketplace.store}).")
    if (waiting := lifecycle.scheduled_change(subscription)) is not None:
        raise InvalidInput(f"A change to {waiting.plan.name} is scheduled for {waiting.effective_at:%-d %b %Y}. "
                           "Cancel it first to make another change.")
    target = _target(tenant, subscription, action, plan_id)
    wanted = subscription.quantity if quantity is None else quantity
    if action is ChangeAction.QUANTITY and subscription.items:
        raise InvalidInput("The number of servers of a subscription cannot be changed; order another one instead.")
    if target.service_type.provider is not subscription.plan.service_type.provider:
        raise InvalidInput("That plan runs on another cloud; a subscription cannot move between clouds.")
    try:
        current_type, target_type, where = _carried(subscription, target)
        disks = _disks(tenant, subscription, current_type, target_type)
        current = Current(
            terms=_terms(subscription.plan, current_type, disks.get(current_type)), quantity=subscription.quantity,
            price_minor=subscription.price_minor,
            period_start=subscription.current_period_start,  # type: ignore[arg-type]
            period_end=subscription.current_period_end,  # type: ignore[arg-type]
            downgrade_rule=subscription.plan.downgrade_rule,
            migration_target_id=subscription.plan.migration_target_id)
        price = recurring_price(target, wanted, server_type=target_type, location=where)
        found = preview_change(action, current, _terms(target, target_type, disks.get(target_type)),
                               quantity=wanted, now=now(), new_price_minor=price,
                               has_payment_method=payment_methods.has_card(tenant, subscription.user))
    except PaymentMethodNeeded as needed:
        raise PaymentMethodRequired(needed.message) from None
    except ChangeRefused as refused:
        raise InvalidInput(refused.message) from None
    return Proposal(subscription, target, found, where)


def _target(tenant: TenantLike, subscription: Subscription, action: ChangeAction, plan_id: int | None) -> Plan:
    if action is ChangeAction.QUANTITY:
        return subscription.plan
    if action is ChangeAction.MIGRATE:
        plan_id = subscription.plan.migration_target_id
        if plan_id is None:
            raise InvalidInput("This plan has no migration target.")
    plan = db.session.scalar(select(Plan).where(Plan.id == plan_id, Plan.tenant_id == tenant.id)) if plan_id else None
    if plan is None:
        raise NotFound("There is no such plan.")
    return plan


def _terms(plan: Plan, server_type: str | None, disk_gb: int | None) -> Terms:
    orderable = plan.state is CatalogueState.PUBLISHED and plan.product.state is CatalogueState.PUBLISHED
    usage = tuple(sorted((price.metric, price.unit_price_minor, price.included)
                         for price in metered_prices(plan.usage_prices or [])))
    return Terms(plan.id, plan.name, PlanPrice(plan.price_minor, plan.currency, plan.interval, plan.quantity_allowed,
                                               plan.max_quantity), orderable, server_type, disk_gb, usage)


def _carried(subscription: Subscription, target: Plan) -> tuple[str | None, str | None, str | None]:
    """The server type the subscription has now, the one it has on `target`, and its location (kept). Raises
    ChangeRefused when `target` is not offered there."""
    current_type, where = _placement(subscription)
    target_type = carried_server_type(current_type, _offered(target, SERVER_TYPE_KEY),
                                      target.config_defaults.get(SERVER_TYPE_KEY))
    return current_type, target_type, carried_location(where, _offered_locations(target), target.name)


def _placement(subscription: Subscription) -> tuple[str | None, str | None]:
    """The server type and location the subscription's servers have now, as delivered (the order's choices
    before delivery); None for a plan without servers or locations."""
    geo = geography_key(subscription.plan.service_type.config_schema) or "location"
    configs = [item.config or {} for item in subscription.items if item.status is ItemStatus.ACTIVE]
    requested = subscription.requested_config or {}
    for config in [*configs, requested]:
        server_type = config.get("server_type") or config.get(SERVER_TYPE_KEY)
        if server_type:
            return str(server_type), _str(config.get(geo) or requested.get(geo))
    return None, _str(requested.get(geo))


def _str(value: object) -> str | None:
    return str(value) if value else None


def _offered(plan: Plan, key: str) -> list[str] | None:
    """What `plan` offers for the config `key` (its own list, else its service type's), or None for anything."""
    field = ordering.offered_schema(plan).get("properties", {}).get(key)
    choices = field.get("enum") if isinstance(field, dict) else None
    return [str(choice) for choice in choices] if choices else None


def _offered_locations(plan: Plan) -> list[str] | None:
    """The locations `plan` places servers in: those it offers when its customers choose, else its default."""
    geo = geography_key(plan.service_type.config_schema)
    if geo is None:
        return None
    default = plan.config_defaults.get(geo)
    if not plan.allow_customer_location_selection and default:
        return [str(default)]
    return _offered(plan, geo)


def _disks(tenant: TenantLike, subscription: Subscription, *types: str | None) -> dict[str | None, int]:
    """Each server type's disk in GB, as the cloud offers it; asked only when the type would change."""
    current, target = types
    if current is None or target is None or current == target:
        return {}
    provider = subscription.plan.service_type.provider
    if provider is Provider.NONE:
        return {}
    try:
        offers = availability_cache.offers(tenant, provider)
    except ProviderError:
        raise ServiceError("We could not reach the cloud to check the new server type. "
                           "Please try again in a minute.") from None
    disks = {offer.server_type: offer.disk_gb for offer in offers}
    if target not in disks:
        raise InvalidInput(f"The cloud does not offer the server type {target} now; this change is not possible.")
    return disks


def _apply_now(subscription: Subscription, proposal: Proposal, actor: Actor) -> None:
    found, before = proposal.preview, subscription.plan.name
    proration = found.proration
    assert proration is not None
    moment, end = found.effective_at, subscription.current_period_end
    assert end is not None
    lines = ((ChargeKind.PRORATION_CREDIT, proration.credit.amount, f"Unused time on {before}"),
             (ChargeKind.PRORATION_DEBIT, proration.debit.amount, f"{proposal.target.name}, quantity {found.quantity}, "
                                                                  "rest of the period"))
    for kind, amount, text in lines:
        if amount:
            db.session.add(Charge(
                tenant_id=subscription.tenant_id, subscription_id=subscription.id, user_id=subscription.user_id,
                kind=kind, description=f"{text}, {moment:%-d %b %Y} to {end:%-d %b %Y}"[:200], quantity=1,
                unit_amount_minor=amount, amount_minor=amount, currency=subscription.currency,
                period_start=moment, period_end=end, created_at=moment))
    lifecycle.switch_plan(subscription, plan=proposal.target, quantity=found.quantity,
                          price_minor=found.new_price.amount, server_type=found.resize_to)
    events.record(subscription, "plan_changed", actor=actor, change=found.action.value, from_plan=before,
                  plan=proposal.target.name, quantity=found.quantity, price=found.new_price.amount,
                  currency=subscription.currency, credit=proration.credit.amount, debit=proration.debit.amount,
                  resize_to=found.resize_to)
    if proration.credit.amount or proration.debit.amount:
        work.later(Job.BILL_CUSTOMER, subscription.user_id)  # invoiced now, as at activation
    _tell(subscription, proposal, before, scheduled=False)


def _schedule(subscription: Subscription, proposal: Proposal, actor: Actor) -> None:
    found = proposal.preview
    waiting = ScheduledPlanChange(
        tenant_id=subscription.tenant_id, subscription_id=subscription.id, action=found.action,
        plan_id=proposal.target.id, quantity=found.quantity, price_minor=found.new_price.amount,
        server_type=found.resize_to, effective_at=found.effective_at, status=ScheduledStatus.SCHEDULED,
        created_at=now())
    db.session.add(waiting)
    db.session.flush()  # its id for the event; the partial unique index answers a second one here
    events.record(subscription, "plan_change_scheduled", actor=actor, change=found.action.value,
                  from_plan=subscription.plan.name, plan=proposal.target.name, quantity=found.quantity,
                  price=found.new_price.amount, currency=subscription.currency,
                  effective_at=found.effective_at.isoformat(), scheduled_change=waiting.id)
    _tell(subscription, proposal, subscription.plan.name, scheduled=True)


def _tell(subscription: Subscription, proposal: Proposal, before: str, *, scheduled: bool) -> None:
    found = proposal.preview
    notify(Event.PLAN_CHANGED, user=subscription.user, subscription=subscription, from_plan=before,
           plan=proposal.target.name, quantity=found.quantity, price_minor=found.new_price.amount,
           effective_at=found.effective_at, due_now=found.due_now.amount, resize=found.resize_to,
           scheduled=scheduled)
