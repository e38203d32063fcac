"""The one place where subscriptions, their items and their backorders change state.

Every transition, for every actor, goes through `apply` (or `change`, which also finds, permits, locks and
commits): it asks the domain (`app.domain.subscriptions.plan_transition`), sets the dates, records the
event (who, on whose behalf, why) and asks for the follow-up work, which runs after the commit:

- cancellation effective: servers that were delivered are shut down (graceful, then powered off) and kept
  until `servers_delete_at` (the tenant's retention); servers never delivered are deleted at once;
- suspended: servers powered off; reinstated: powered on again;
- activated or renewed: the period's charge, once (a unique constraint per subscription, kind and period); a
  subscription bought on a marketplace is never charged here: activated, the marketplace is told (and bills it);
- renewed with a plan change scheduled for the period's end (a downgrade): the change is applied first, so the
  new period is charged at the new plan's price (`switch_plan`, which an immediate change uses too);
- cancellation scheduled or effective, suspended, reinstated: the owner's email, logged in this transaction and
  sent after it commits (`_tell_the_owner`), so each transition sends exactly one whoever applies it.

Items and backorders move through `move_item` and `move_backorder`, which ask their transition tables.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from functools import partial

from sqlalchemy import bindparam, select
from sqlalchemy.orm.exc import StaleDataError

from app.clock import now
from app.domain.billing import ChargeKind
from app.domain.configuration import geography_key
from app.domain.marketplaces import MINIMUM_RETENTION_DAYS
from app.domain.notifications import Event
from app.domain.plan_changes import ScheduledStatus
from app.domain.plan_offers import SERVER_TYPE_KEY, ScheduledPrice, renewal_unit_price
from app.domain.policy import ActorKind, Do
from app.domain.pricing import period_end
from app.domain.subscriptions import (
    Action,
    BackorderStatus,
    ItemStatus,
    SubscriptionStatus,
    Transition,
    TransitionError,
    backorder_transition,
    item_transition,
    plan_transition,
)
from app.extensions import db
from app.models import (
    Backorder,
    Charge,
    Plan,
    PlanPriceChange,
    ScheduledPlanChange,
    Subscription,
    SubscriptionItem,
    Tenant,
    TenantLike,
)
from app.services import events, work
from app.services.actors import Actor
from app.services.errors import Conflict, InvalidInput, NotFound
from app.services.notifications import notify
from app.services.work import Job

log = logging.getLogger(__name__)

RELOAD = "This subscription changed in the meantime. Please reload the page and try again."
MARKETPLACE_MANAGED = ("The {label} bills this subscription, so it is canceled or resumed there: in {store}. We "
                       "follow what it does there.")
_CUSTOMERS = frozenset({ActorKind.CUSTOMER, ActorKind.SUPPORT_AS_CUSTOMER, ActorKind.API_TOKEN})

# Which permission each action needs (app/domain/policy.py).
PERMISSION = {Action.CANCEL: Do.CANCEL, Action.RESUME: Do.RESUME, Action.SUSPEND: Do.SUSPEND,
              Action.REINSTATE: Do.REINSTATE}


def lock(tenant: TenantLike, subscription_id: int) -> Subscription:
    """The tenant's subscription, locked for this transaction (SELECT ... FOR UPDATE on PostgreSQL)."""
    subscription = db.session.scalar(
        select(Subscription).where(Subscription.id == subscription_id, Subscription.tenant_id == tenant.id)
        .with_for_update()
    )
    if subscription is None:
        raise NotFound("There is no such subscription.")
    return subscription


def change(*, tenant: TenantLike, actor: Actor, subscription_id: int, action: Action, version: int | None = None,
           reason: str = "", grace_ends_at: datetime | None = None) -> Subscription:
    """Find the tenant's subscription, check that `actor` may do `action`, apply it and commit.

    `version` is the one the actor saw (a form's hidden field): a subscription changed since answers
    Conflict, so of two racing requests one wins and the other is told to reload.
    """
    try:
        subscription = lock(tenant, subscription_id)
        actor.may(PERMISSION[action], subscription)
        if version is not None and subscription.version != version:
            raise Conflict(RELOAD)
        if subscription.marketplace is not None and actor.kind in _CUSTOMERS:
            raise InvalidInput(MARKETPLACE_MANAGED.format(label=subscription.marketplace.label,
                                                          store=subscription.marketplace.store))
        apply(subscription, action, actor=actor, reason=reason, grace_ends_at=grace_ends_at)
    except StaleDataError:  # the email's flush met a concurrent writer (no row locks on SQLite)
        db.session.rollback()
        raise Conflict(RELOAD) from None
    except Exception:
        db.session.rollback()
        raise
    commit()
    return subscription


def commit() -> None:
    try:
        db.session.commit()
    except StaleDataError:  # a concurrent writer bumped the version first (no row locks on SQLite)
        db.session.rollback()
        raise Conflict(RELOAD) from None


def apply(subscription: Subscription, action: Action, *, actor: Actor, reason: str = "",
          grace_ends_at: datetime | None = None, event: str | None = None, **data: object) -> Transition:
    """Apply `action` to a locked subscription: dates, event, follow-up work. The caller commits.

    Raises InvalidInput with the domain's message when the lifecycle refuses.
    """
    moment = now()
    suspended = subscription.status is SubscriptionStatus.SUSPENDED
    try:
        transition = plan_transition(
            subscription.status, action, now=moment, period_end=subscription.current_period_end,
            cancellation_rule=subscription.plan.cancellation_rule, effective_at=subscription.effective_at,
            grace_ends_at=grace_ends_at or (subscription.effective_at if suspended else None),
        )
    except TransitionError as error:
        raise InvalidInput(error.message) from None
    events.record(subscription, event or action.value, actor=actor, from_status=transition.from_status,
                  to_status=transition.to_status, reason=reason[:500],
                  effective_at=transition.effective_at.isoformat() if transition.effective_at else None, **data)
    _SETTERS[transition.to_status](subscription, transition, moment)  # after: its item events follow this one
    _tell_the_owner(subscription, transition, reason)
    log.info("subscription %s: %s %s -> %s", subscription.id, action.value, transition.from_status,
             transition.to_status)
    return transition


# --- what each target status sets ---------------------------------------------------------------------------

def _to_active(subscription: Subscription, transition: Transition, moment: datetime) -> None:
    subscription.status = SubscriptionStatus.ACTIVE
    subscription.effective_at = None
    if transition.action in (Action.ACTIVATE, Action.PROVISIONED):
        _start_billing(subscription, moment)
    elif transition.action is Action.RENEW:
        _renew(subscription)
    elif transition.action is Action.REINSTATE:
        subscription.suspended_at = None
        _each_delivered_item(subscription, Job.POWER_ON_ITEM)


def _to_pending_cancel(subscription: Subscription, transition: Transition, moment: datetime) -> None:
    subscription.status = SubscriptionStatus.PENDING_CANCEL
    subscription.effective_at = transition.effective_at


def _to_suspended(subscription: Subscription, transition: Transition, moment: datetime) -> None:
    subscription.status = SubscriptionStatus.SUSPENDED
    subscription.suspended_at = moment
    subscription.effective_at = transition.effective_at  # the end of the grace period
    _each_delivered_item(subscription, Job.POWER_OFF_ITEM)


def _to_canceled(subscription: Subscription, transition: Transition, moment: datetime) -> None:
    ended = transition.effective_at or moment
    subscription.status = SubscriptionStatus.CANCELED
    subscription.effective_at = ended
    subscription.canceled_at = ended
    subscription.suspended_at = None
    subscription.servers_delete_at = ended + timedelta(days=_retention_days(subscription))
    _close_backorder(subscription, BackorderStatus.CANCELED)
    if scheduled := scheduled_change(subscription):
        scheduled.status, scheduled.closed_at = ScheduledStatus.CANCELED, moment
    for item in subscription.items:
        _end_item(item)


def _to_pending_backorder(subscription: Subscription, transition: Transition, moment: datetime) -> None:
    subscription.status = SubscriptionStatus.PENDING_BACKORDER


_SETTERS = {
    SubscriptionStatus.ACTIVE: _to_active,
    SubscriptionStatus.PENDING_CANCEL: _to_pending_cancel,
    SubscriptionStatus.SUSPENDED: _to_suspended,
    SubscriptionStatus.CANCELED: _to_canceled,
    SubscriptionStatus.PENDING_BACKORDER: _to_pending_backorder,
}


def _retention_days(subscription: Subscription) -> int:
    """The tenant's retention; for a subscription a marketplace sold, at least the marketplace's minimum (Microsoft:
    the customer's data is kept for recovery for at least seven days after Unsubscribe)."""
    tenant = db.session.get(Tenant, subscription.tenant_id)
    days = tenant.retention_days if tenant is not None else 7
    return max(days, MINIMUM_RETENTION_DAYS) if subscription.marketplace is not None else days


def _start_billing(subscription: Subscription, moment: datetime) -> None:
    """Delivered: the first period starts now and is charged, once."""
    subscription.activated_at = moment
    subscription.current_period_start = moment
    subscription.current_period_end = period_end(moment, subscription.interval)
    if subscription.marketplace is not None:  # the marketplace bills it, from when it is told of the delivery
        work.later(Job.MARKETPLACE_ACTIVATE, subscription.id)
        return
    _charge(subscription, ChargeKind.FIRST_PERIOD, f"{subscription.plan.name}, first {subscription.interval.value}")
    if subscription.price_minor:  # the first invoice is made (and collected) now, not at the next billing run
        work.later(Job.BILL_CUSTOMER, subscription.user_id)


def _renew(subscription: Subscription) -> None:
    """The next period starts where the last one ended (however late the job runs) and is charged, once."""
    start = subscription.current_period_end
    assert start is not None  # plan_transition needs it to renew
    scheduled = scheduled_change(subscription)
    if scheduled is not None and scheduled.effective_at <= start:
        _apply_scheduled(subscription, scheduled)
    subscription.current_period_start = start
    subscription.current_period_end = period_end(start, subscription.interval, anchor=subscription.activated_at)
    _renewal_price(subscription, start)
    _charge(subscription, ChargeKind.RENEWAL, f"{subscription.plan.name}, {subscription.interval.value} from "
                                              f"{start:%-d %b %Y}")


_PRICE_CHANGES = select(PlanPriceChange).where(
    PlanPriceChange.plan_id == bindparam("plan_id"),
    PlanPriceChange.server_type.in_(bindparam("server_types", expanding=True)),
    PlanPriceChange.announced_at > bindparam("since"), PlanPriceChange.effective_at <= bindparam("start"))


def _renewal_price(subscription: Subscription, start: datetime) -> None:
    """The one place a renewal's price is decided: the subscription's own, until a price change announced after
    it was ordered has reached its notice date (app.domain.plan_offers.renewal_unit_price)."""
    if subscription.price_minor == 0:
        return  # a free plan stays free: a free plan is never made paid
    server_type = str(subscription.requested_config.get(SERVER_TYPE_KEY) or "")
    # A plan with one price records its changes for every server type ("").
    changes = db.session.scalars(_PRICE_CHANGES, {"plan_id": subscription.plan_id, "server_types": [server_type, ""],
                                                  "since": subscription.created_at, "start": start}).all()
    if not changes:
        return
    plan = subscription.plan
    where = subscription.requested_config.get(geography_key(plan.service_type.config_schema) or "location")
    offer = plan.offers.location_of(str(where)) if where else None
    quantity = subscription.quantity
    unit = renewal_unit_price(subscription.price_minor // quantity,
                              [ScheduledPrice(c.new_price_minor, c.announced_at, c.effective_at) for c in changes],
                              subscribed_at=subscription.created_at, period_start=start,
                              surcharge_minor=offer.surcharge_minor if offer else 0)
    if unit * quantity != subscription.price_minor:
        events.record(subscription, "price_changed", from_price=subscription.price_minor, to_price=unit * quantity,
                      currency=subscription.currency)
        subscription.price_minor = unit * quantity


def follow_marketplace_term(subscription: Subscription, *, start: datetime, end: datetime, actor: Actor) -> bool:
    """A marketplace renewed a locked active subscription it bills, on its own dates: the portal's period becomes
    the marketplace's term (nothing is charged here). False, and nothing changed, when that term is not a new one
    (a Renew told twice) or the subscription is not active. The caller commits."""
    if (subscription.marketplace is None or subscription.status is not SubscriptionStatus.ACTIVE or end <= start
            or (subscription.current_period_end is not None and end <= subscription.current_period_end)):
        return False
    events.record(subscription, "renewed", actor=actor, from_status=subscription.status,
                  to_status=subscription.status, period_start=start.isoformat(), period_end=end.isoformat())
    subscription.current_period_start, subscription.current_period_end = start, end
    return True


# --- plan changes -----------------------------------------------------------------------------------------------

def scheduled_change(subscription: Subscription) -> ScheduledPlanChange | None:
    """The change waiting for this subscription's period end, if any (at most one: a partial unique index)."""
    return db.session.scalar(select(ScheduledPlanChange).where(
        ScheduledPlanChange.subscription_id == subscription.id,
        ScheduledPlanChange.status == ScheduledStatus.SCHEDULED))


def switch_plan(subscription: Subscription, *, plan: Plan, quantity: int, price_minor: int,
                server_type: str | None) -> None:
    """Move a locked subscription to `plan` and `quantity` at the recurring `price_minor`; the caller records the
    event. A new server type becomes the subscription's chosen one (its renewals' price changes are looked up for
    it), is set as each delivered server's desired type, and each server's resize is queued."""
    subscription.plan, subscription.quantity, subscription.price_minor = plan, quantity, price_minor
    if server_type is None:
        return
    subscription.requested_config = {**(subscription.requested_config or {}), SERVER_TYPE_KEY: server_type}
    for item in subscription.items:
        if item.status is ItemStatus.ACTIVE and item.server_id:
            item.config = {**(item.config or {}), "server_type": server_type}
            work.later(Job.RESIZE_ITEM, item.id)


def _apply_scheduled(subscription: Subscription, scheduled: ScheduledPlanChange) -> None:
    """The renewal's part of a scheduled change: applied once, under the subscription's lock, before the charge."""
    before = subscription.plan.name
    switch_plan(subscription, plan=scheduled.plan, quantity=scheduled.quantity, price_minor=scheduled.price_minor,
                server_type=scheduled.server_type)
    scheduled.status, scheduled.closed_at = ScheduledStatus.APPLIED, now()
    events.record(subscription, "plan_change_applied", from_plan=before, plan=scheduled.plan.name,
                  quantity=scheduled.quantity, price=scheduled.price_minor, currency=subscription.currency,
                  scheduled_change=scheduled.id)
    notify(Event.PLAN_CHANGED, user=subscription.user, subscription=subscription, from_plan=before,
           plan=scheduled.plan.name, quantity=scheduled.quantity, price_minor=scheduled.price_minor,
           effective_at=scheduled.effective_at, due_now=0, resize=scheduled.server_type, scheduled=False)


def _charge(subscription: Subscription, kind: ChargeKind, description: str) -> None:
    if subscription.price_minor == 0 or subscription.marketplace is not None:
        return  # free plans: nothing to charge, ever; a marketplace's subscriptions: the marketplace bills them
    quantity, price = subscription.quantity, subscription.price_minor
    db.session.add(Charge(
        tenant_id=subscription.tenant_id, subscription_id=subscription.id, user_id=subscription.user_id, kind=kind,
        description=description[:200], quantity=quantity,
        unit_amount_minor=price // quantity if price % quantity == 0 else None,  # the invoice line's unit price
        amount_minor=price, currency=subscription.currency,
        period_start=subscription.current_period_start, period_end=subscription.current_period_end,
        created_at=now(),
    ))


def _each_delivered_item(subscription: Subscription, job: Job) -> None:
    for item in subscription.items:
        if item.status is ItemStatus.ACTIVE and item.server_id:
            work.later(job, item.id)


def _end_item(item: SubscriptionItem) -> None:
    """A canceled subscription's item: decommissioned at once if nothing was made, else cleaned up."""
    if item.status in (ItemStatus.DECOMMISSIONING, ItemStatus.DECOMMISSIONED):
        return
    if item.status in (ItemStatus.PENDING, ItemStatus.FAILED) and item.server_id is None:
        move_item(item, ItemStatus.DECOMMISSIONED, "server_not_created",
                  reason="The order was canceled before a server was made.")
        return
    move_item(item, ItemStatus.DECOMMISSIONING, "decommissioning_started")
    work.later(Job.DECOMMISSION_ITEM, item.id)


def _close_backorder(subscription: Subscription, status: BackorderStatus) -> None:
    backorder = db.session.scalar(select(Backorder).where(Backorder.subscription_id == subscription.id,
                                                          Backorder.status == BackorderStatus.WAITING))
    if backorder is not None:
        move_backorder(backorder, status)


# --- the owner's email about the transition -----------------------------------------------------------------

def _tell_the_owner(subscription: Subscription, transition: Transition, reason: str) -> None:
    """The email of this transition, if it has one, in the transaction that applies it (sent after commit)."""
    if not transition.changes_status:
        return  # a renewal: the charge tells
    target, send = transition.to_status, partial(notify, user=subscription.user, subscription=subscription,
                                                 action=transition.action.value)
    if target is SubscriptionStatus.PENDING_CANCEL:
        send(Event.CANCELLATION_SCHEDULED, ends_at=transition.effective_at)
    elif target is SubscriptionStatus.CANCELED:
        kept = [item.hostname or f"Server {item.id}" for item in subscription.items
                if item.status is ItemStatus.DECOMMISSIONING and (item.ready_at or subscription.activated_at)]
        send(Event.CANCELLATION_EFFECTIVE, ended_at=subscription.canceled_at, kept=kept,
             delete_at=subscription.servers_delete_at)
    elif target is SubscriptionStatus.SUSPENDED:
        send(Event.SUSPENDED, reason=reason, grace_ends_at=transition.effective_at)
    elif transition.action is Action.REINSTATE:
        send(Event.REINSTATED)


# --- items and backorders -------------------------------------------------------------------------------------

def move_item(item: SubscriptionItem, target: ItemStatus, kind: str, *, actor: Actor | None = None,
              reason: str = "", **data: object) -> None:
    """Move an item to `target` if its transition table allows it, and record the event."""
    source = item.status
    item.status = item_transition(source, target)
    if target is ItemStatus.ACTIVE:
        item.ready_at = now()
    if target is ItemStatus.DECOMMISSIONED:
        item.deleted_at = item.deleted_at or now()
    events.record(item.subscription, kind, actor=actor, item=item, from_status=source, to_status=target,
                  reason=reason, **data)


def move_backorder(backorder: Backorder, target: BackorderStatus) -> None:
    """Move a backorder to `target` if its transition table allows it."""
    backorder.status = backorder_transition(backorder.status, target)
    backorder.closed_at = None if target is BackorderStatus.WAITING else now()
