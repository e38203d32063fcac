"""Dunning: an invoice still unpaid `suspend_after_days` after it fell due suspends the subscriptions it bills
(servers powered off, nothing deleted), once; a payment during the grace period reinstates them
(app/services/collection.py); when the grace ends unpaid the `grace-end` job cancels them for non-payment and
the end of life follows. A tenant admin may move one subscription's grace end later, with a reason.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm.exc import StaleDataError

from app.clock import now
from app.domain.accounts import Role
from app.domain.billing import InvoiceStatus
from app.domain.dunning import UNPAID_INVOICE
from app.domain.subscriptions import Action, SubscriptionStatus, format_day
from app.extensions import db
from app.models import Charge, Invoice, Subscription, Tenant, TenantLike
from app.selectors.billing import settings_for, suspended_once_for
from app.services import events, lifecycle
from app.services.actors import Actor
from app.services.errors import Forbidden, InvalidInput, ServiceError

log = logging.getLogger(__name__)

BATCH = 500
LONGEST_EXTENSION = timedelta(days=365)
_OPEN = InvoiceStatus.OPEN
REASON_MAX_LENGTH = 500


def advance(as_of: datetime, *, user_id: int | None = None) -> str:
    """Suspend the active subscriptions billed by invoices unpaid `suspend_after_days` after their due date."""
    tenants = select(Invoice.tenant_id).where(Invoice.status == _OPEN, Invoice.due_at <= as_of).distinct()
    if user_id is not None:
        tenants = tenants.where(Invoice.user_id == user_id)
    tenant_ids = db.session.scalars(tenants).all()
    suspended = 0
    for tenant_id in tenant_ids:
        tenant = db.session.get(Tenant, tenant_id)
        if tenant is None:
            continue
        settings = settings_for(tenant)
        limit = as_of - timedelta(days=settings.suspend_after_days)
        query = (select(Invoice.id, Charge.subscription_id).join(Charge, Charge.invoice_id == Invoice.id)
                 .join(Subscription, Subscription.id == Charge.subscription_id)
                 .where(Invoice.tenant_id == tenant_id, Invoice.status == _OPEN, Invoice.due_at <= limit,
                        Invoice.amount_due_minor > 0, Subscription.status == SubscriptionStatus.ACTIVE)
                 .distinct().order_by(Invoice.id, Charge.subscription_id).limit(BATCH))
        if user_id is not None:
            query = query.where(Invoice.user_id == user_id)
        pairs = db.session.execute(query).all()
        grace_days = settings.grace_days
        db.session.rollback()  # end the read; each subscription is suspended in a transaction of its own
        suspended += sum(_suspend(invoice_id, subscription_id, grace_days) for invoice_id, subscription_id in pairs)
    db.session.rollback()
    return f"dunning: {suspended} suspended for non-payment"


def _suspend(invoice_id: int, subscription_id: int, grace_days: int) -> int:
    subscription = db.session.scalar(select(Subscription).where(Subscription.id == subscription_id)
                                     .with_for_update(skip_locked=True))
    invoice = db.session.get(Invoice, invoice_id)
    if (subscription is None or invoice is None or subscription.status is not SubscriptionStatus.ACTIVE
            or invoice.status is not _OPEN or suspended_once_for(subscription_id, invoice_id)):
        db.session.rollback()  # another worker has it, it changed, or this invoice suspended it before (once)
        return 0
    since = invoice.due_at or now()
    try:
        lifecycle.apply(subscription, Action.SUSPEND, actor=Actor.system("dunning"),
                        reason=f"Invoice {invoice.number} unpaid since {format_day(since)}.",
                        grace_ends_at=now() + timedelta(days=grace_days), **{UNPAID_INVOICE: invoice_id})
        lifecycle.commit()
    except (ServiceError, StaleDataError) as error:
        db.session.rollback()
        log.info("subscription %s not suspended: %s", subscription_id, error)
        return 0
    log.info("subscription %s suspended: invoice %s unpaid", subscription_id, invoice_id)
    return 1


def extend_grace(*, tenant: TenantLike, actor: Actor, subscription_id: int, until: datetime,
                 reason: str) -> Subscription:
    """Move a suspended subscription's grace end (when it is canceled unless paid) later, with a reason.
    Tenant admins only, as themselves; the new date lies in the future, within a year, after the current one."""
    user = actor.user
    if user is None or user.role is not Role.TENANT_ADMIN or user.tenant_id != tenant.id or actor.impersonator:
        raise Forbidden("Only the tenant's admins can extend a grace period.")
    reason = (reason or "").strip()
    if not 3 <= len(reason) <= REASON_MAX_LENGTH:
        raise InvalidInput(f"Give a reason (3 to {REASON_MAX_LENGTH} characters).", field="reason")
    try:
        subscription = lifecycle.lock(tenant, subscription_id)
        if subscription.status is not SubscriptionStatus.SUSPENDED:
            raise InvalidInput("Only a suspended subscription has a grace period to extend.")
        moment, current = now(), subscription.effective_at
        if until <= moment:
            raise InvalidInput("Choose a date in the future.", field="until")
        if until > moment + LONGEST_EXTENSION:
            raise InvalidInput("Choose a date within a year.", field="until")
        if current is not None and until <= current:
            raise InvalidInput(f"Choose a date after the current end of grace, {format_day(current)}.",
                               field="until")
        subscription.effective_at = until
        events.record(subscription, "grace_extended", actor=actor, reason=reason,
                      previous=current.isoformat() if current else None, until=until.isoformat())
    except Exception:
        db.session.rollback()
        raise
    lifecycle.commit()
    log.info("subscription %s: grace extended to %s by user %s", subscription_id, until.isoformat(), user.id,
             extra={"tenant_id": tenant.id, "user_id": user.id})
    return subscription
