"""Subscription lifecycle actions for every actor, and the jobs that move time-based ones.

Each action finds the subscription in the tenant, asks the permission table whether this actor may, and
applies the transition through `app.services.lifecycle` (which locks the row, checks the version the
actor saw, records the event and commits). Of two racing requests one wins; the other is told to reload.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import and_, or_, select
from sqlalchemy.orm.exc import StaleDataError

from app.clock import now
from app.domain.dunning import UNPAID_INVOICE
from app.domain.marketplaces import Marketplace
from app.domain.policy import Do
from app.domain.subscriptions import LONGEST_AHEAD, Action, SubscriptionStatus
from app.extensions import db
from app.models import Invoice, Subscription, TenantLike
from app.selectors.billing import suspension_invoice
from app.services import events, lifecycle
from app.services.actors import Actor
from app.services.errors import Conflict, InvalidInput, ServiceError

log = logging.getLogger(__name__)

RELOAD = lifecycle.RELOAD
REASON_MAX_LENGTH = 500
MAX_PERIODS_AT_ONCE = 24


def cancel(*, tenant: TenantLike, actor: Actor, subscription_id: int, version: int | None = None,
           reason: str = "") -> Subscription:
    """Cancel by the plan's rule: at the period's end (pending_cancel) or now (canceled, then end of life)."""
    return lifecycle.change(tenant=tenant, actor=actor, subscription_id=subscription_id, action=Action.CANCEL,
                            version=version, reason=reason)


def resume(*, tenant: TenantLike, actor: Actor, subscription_id: int, version: int | None = None) -> Subscription:
    """Take back a pending cancellation before it takes effect."""
    return lifecycle.change(tenant=tenant, actor=actor, subscription_id=subscription_id, action=Action.RESUME,
                            version=version)


def suspend(*, tenant: TenantLike, actor: Actor, subscription_id: int, reason: str, version: int | None = None,
            grace_ends_at: datetime | None = None) -> Subscription:
    """Suspend an active subscription: its servers are powered off (kept, with their data) and their controls
    disabled until it is reinstated; at the end of the grace period (default 30 days) it is canceled.

    For billing (payment failed), marketplaces and tenant admins (abuse, a customer's request), with a reason.
    """
    return lifecycle.change(tenant=tenant, actor=actor, subscription_id=subscription_id, action=Action.SUSPEND,
                            version=version, reason=_required(reason), grace_ends_at=grace_ends_at)


def reinstate(*, tenant: TenantLike, actor: Actor, subscription_id: int, reason: str,
              version: int | None = None) -> Subscription:
    """Reinstate a suspended subscription within its grace period: its servers are powered back on."""
    return lifecycle.change(tenant=tenant, actor=actor, subscription_id=subscription_id, action=Action.REINSTATE,
                            version=version, reason=_required(reason))


def extend_retention(*, tenant: TenantLike, actor: Actor, subscription_id: int, until: datetime,
                     reason: str, version: int | None = None) -> Subscription:
    """Keep a canceled subscription's servers and data longer (a tenant admin, with a reason)."""
    reason = _required(reason)
    try:
        subscription = lifecycle.lock(tenant, subscription_id)
        actor.may(Do.EXTEND_RETENTION, subscription)
        if version is not None and subscription.version != version:
            raise Conflict(RELOAD)
        if subscription.status is not SubscriptionStatus.CANCELED or subscription.purged_at is not None:
            raise InvalidInput("Only a canceled subscription whose servers are not deleted yet can be kept longer.")
        current = subscription.servers_delete_at
        if until <= now() or (current is not None and until <= current):
            raise InvalidInput("Choose a date after the current deletion date.", field="until")
        if until > now() + LONGEST_AHEAD:
            raise InvalidInput("Choose a date within ten years.", field="until")
        subscription.servers_delete_at = until
        events.record(subscription, "retention_extended", actor=actor, reason=reason,
                      previous=current.isoformat() if current else None, until=until.isoformat())
    except Exception:
        db.session.rollback()
        raise
    lifecycle.commit()
    return subscription


def _required(reason: str) -> str:
    reason = (reason or "").strip()
    if not 3 <= len(reason) <= REASON_MAX_LENGTH:
        raise InvalidInput(f"Give a reason (3 to {REASON_MAX_LENGTH} characters).", field="reason")
    return reason


# --- the clock's own work: jobs run by the queue, or by hand with `flask jobs run NAME --as-of TIME` ---------

def expire_due_cancellations(limit: int = 500) -> int:
    """Cancel every pending_cancel subscription whose effective_at has passed. Safe to run concurrently."""
    return _run_due(Subscription.status == SubscriptionStatus.PENDING_CANCEL, Subscription.effective_at,
                    Action.EXPIRE, "expiry", "expired", "The cancellation took effect.", limit)


def renew_due(limit: int = 500) -> int:
    """Move every active subscription whose period has ended to its next period, with its charge; once per
    period, however often it runs. A subscription that does not renew by itself ends instead. Microsoft renews what
    it sells itself (its Renew webhook: app/services/marketplace_microsoft.py), so those are left to it."""
    active = and_(Subscription.status == SubscriptionStatus.ACTIVE,
                  or_(Subscription.marketplace.is_(None), Subscription.marketplace != Marketplace.MICROSOFT))
    done = _run_due(active, Subscription.current_period_end, Action.CANCEL, "renewal", "ended",
                    "The subscription does not renew by itself.", limit, extra=~Subscription.auto_renew)
    for _ in range(MAX_PERIODS_AT_ONCE):  # a job that was down for several periods catches up, one at a time
        renewed = _run_due(active, Subscription.current_period_end, Action.RENEW, "renewal", "renewed", "", limit,
                           extra=Subscription.auto_renew)
        done += renewed
        if not renewed:
            break
    return done


def end_grace_periods(limit: int = 500) -> int:
    """Cancel every suspended subscription whose grace period has ended (then the end of life follows)."""
    return _run_due(Subscription.status == SubscriptionStatus.SUSPENDED, Subscription.effective_at,
                    Action.GRACE_END, "grace-end", "grace_ended", "The grace period ended unpaid.", limit)


def _run_due(where: object, due_at: object, action: Action, job: str, event: str, reason: str, limit: int,
             extra: object = True) -> int:
    ids = db.session.scalars(
        select(Subscription.id).where(where, extra, due_at <= now())  # type: ignore[arg-type, operator]
        .order_by(due_at).limit(limit)  # type: ignore[arg-type]
    ).all()
    db.session.rollback()  # end the read; each subscription is changed in a transaction of its own
    return sum(_apply_one(subscription_id, action, Actor.system(job), event, reason) for subscription_id in ids)


def _apply_one(subscription_id: int, action: Action, actor: Actor, event: str, reason: str) -> int:
    subscription = db.session.scalar(
        select(Subscription).where(Subscription.id == subscription_id).with_for_update(skip_locked=True)
    )
    if subscription is None:  # another worker has it
        db.session.rollback()
        return 0
    data: dict[str, object] = {}
    if action is Action.GRACE_END and (unpaid := suspension_invoice(subscription.id)) is not None:
        invoice = db.session.get(Invoice, unpaid)
        number = invoice.number if invoice is not None else f"#{unpaid}"
        reason, data = f"Canceled for non-payment: invoice {number} was unpaid when the grace period ended.", {
            "non_payment": True, UNPAID_INVOICE: unpaid}
    try:
        lifecycle.apply(subscription, action, actor=actor, reason=reason, event=event, **data)
        lifecycle.commit()
    except ServiceError as error:  # no longer due: changed by someone else in the meantime
        db.session.rollback()
        log.info("subscription %s: %s skipped: %s", subscription_id, action.value, error.message)
        return 0
    except StaleDataError:  # changed under us before the commit (SQLite has no row locks): the next run sees it
        db.session.rollback()
        return 0
    return 1

