"""Customer-driven lifecycle changes (cancel, resume) and the jobs that move time-based ones (expiry).

Each change locks the subscription row (SELECT ... FOR UPDATE on PostgreSQL), checks the version the
customer saw, asks the state machine in `app.domain.subscriptions`, records an event and commits. Of two
racing requests one wins; the other is told to reload.
"""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.orm.exc import StaleDataError

from app.clock import now
from app.domain.subscriptions import Action, BackorderStatus, SubscriptionStatus, TransitionError, plan_transition
from app.extensions import db
from app.models import Backorder, Subscription, Tenant
from app.services import events
from app.services.actors import Actor
from app.services.errors import Conflict, InvalidInput, NotFound

log = logging.getLogger(__name__)

RELOAD = "This subscription changed in the meantime. Please reload the page and try again."


def _lock_own(tenant: Tenant, actor: Actor, subscription_id: int) -> Subscription:
    subscription = db.session.scalar(
        select(Subscription)
        .where(Subscription.id == subscription_id, Subscription.tenant_id == tenant.id,
               Subscription.user_id == actor.user_id)
        .with_for_update()
    )
    if subscription is None:
        raise NotFound("There is no such subscription.")
    return subscription


def cancel(*, tenant: Tenant, actor: Actor, subscription_id: int, version: int, reason: str = "") -> Subscription:
    """Cancel by the plan's rule: at the period's end (pending_cancel) or now (canceled)."""
    return _change(tenant, actor, subscription_id, version, Action.CANCEL, reason)


def resume(*, tenant: Tenant, actor: Actor, subscription_id: int, version: int) -> Subscription:
    """Take back a pending cancellation before it takes effect."""
    return _change(tenant, actor, subscription_id, version, Action.RESUME, "")


def _change(tenant: Tenant, actor: Actor, subscription_id: int, version: int, action: Action,
            reason: str) -> Subscription:
    subscription = _lock_own(tenant, actor, subscription_id)
    if subscription.version != version:
        db.session.rollback()
        raise Conflict(RELOAD)
    try:
        transition = plan_transition(
            subscription.status, action, now=now(), period_end=subscription.current_period_end,
            cancellation_rule=subscription.plan.cancellation_rule, effective_at=subscription.effective_at,
        )
    except TransitionError as error:
        db.session.rollback()
        raise InvalidInput(error.message) from None
    _apply(subscription, transition.to_status, transition.effective_at)
    events.record(subscription, action.value, actor=actor, from_status=transition.from_status,
                  to_status=transition.to_status, reason=reason[:500],
                  effective_at=transition.effective_at.isoformat() if transition.effective_at else None)
    _commit()
    log.info("subscription %s: %s -> %s", subscription.id, transition.from_status, transition.to_status)
    return subscription


def _apply(subscription: Subscription, status: SubscriptionStatus, effective_at: object) -> None:
    subscription.status = status
    subscription.effective_at = effective_at if status is not SubscriptionStatus.ACTIVE else None  # type: ignore[assignment]
    if status is SubscriptionStatus.CANCELED:
        subscription.canceled_at = now()
        _close_backorder(subscription, BackorderStatus.CANCELED)


def _close_backorder(subscription: Subscription, status: BackorderStatus) -> None:
    backorder = db.session.scalar(select(Backorder).where(Backorder.subscription_id == subscription.id,
                                                          Backorder.status == BackorderStatus.WAITING))
    if backorder is not None:
        backorder.status = status
        backorder.closed_at = now()


def _commit() -> None:
    try:
        db.session.commit()
    except StaleDataError:  # a concurrent writer bumped the version first (no row locks on SQLite)
        db.session.rollback()
        raise Conflict(RELOAD) from None


def expire_due_cancellations(limit: int = 500) -> int:
    """Cancel every pending_cancel subscription whose effective_at has passed. Safe to run concurrently."""
    due = db.session.scalars(
        select(Subscription.id)
        .where(Subscription.status == SubscriptionStatus.PENDING_CANCEL, Subscription.effective_at <= now())
        .order_by(Subscription.effective_at).limit(limit)
    ).all()
    return sum(_expire_one(subscription_id) for subscription_id in due)


def _expire_one(subscription_id: int) -> int:
    subscription = db.session.scalar(
        select(Subscription).where(Subscription.id == subscription_id).with_for_update(skip_locked=True)
    )
    if subscription is None or subscription.status is not SubscriptionStatus.PENDING_CANCEL:
        db.session.rollback()
        return 0
    try:
        transition = plan_transition(subscription.status, Action.EXPIRE, now=now(),
                                     effective_at=subscription.effective_at)
    except TransitionError:
        db.session.rollback()
        return 0
    subscription.status = transition.to_status
    subscription.canceled_at = transition.effective_at
    events.record(subscription, "expired", from_status=transition.from_status, to_status=transition.to_status,
                  reason="The cancellation took effect.")
    try:
        db.session.commit()
    except StaleDataError:
        db.session.rollback()
        return 0
    return 1
