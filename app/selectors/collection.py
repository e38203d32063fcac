"""What the tenant admin's payments and overdue pages read: one statement each."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from app.clock import now
from app.domain.billing import InvoiceStatus, PaymentStatus
from app.domain.subscriptions import SubscriptionStatus
from app.extensions import db
from app.models import Charge, Invoice, Payment, PaymentMethod, Plan, Subscription, TenantLike, User
from app.selectors.billing import settings_for
from app.selectors.paging import Page, page_number


@dataclass(frozen=True, slots=True)
class PaymentRow:
    id: int
    created_at: datetime
    settled_at: datetime | None
    status: PaymentStatus
    attempt: int
    trigger: str
    amount_minor: int
    currency: str
    failure_code: str | None
    failure_message: str | None
    invoice_id: int
    invoice_number: str | None
    customer_email: str
    card: str | None


def payments_page(tenant: TenantLike, *, status: PaymentStatus | None = None, page: int = 1,
                  per_page: int = 50) -> Page[PaymentRow]:
    """The tenant's payment attempts, newest first, optionally of one status."""
    page = page_number(page)
    query = (select(Payment.id, Payment.created_at, Payment.settled_at, Payment.status, Payment.attempt,
                    Payment.trigger, Payment.amount_minor, Payment.currency, Payment.failure_code,
                    Payment.failure_message, Payment.invoice_id, Invoice.number, User.email,
                    PaymentMethod.brand, PaymentMethod.last4)
             .join(Invoice, Invoice.id == Payment.invoice_id).join(User, User.id == Payment.user_id)
             .outerjoin(PaymentMethod, PaymentMethod.id == Payment.payment_method_id)
             .where(Payment.tenant_id == tenant.id)
             .order_by(Payment.created_at.desc(), Payment.id.desc())
             .offset((page - 1) * per_page).limit(per_page + 1))
    if status is not None:
        query = query.where(Payment.status == status)
    rows = [PaymentRow(*row[:13], f"{row.brand.capitalize()} ···· {row.last4}" if row.brand else None)
            for row in db.session.execute(query)]
    return Page(rows[:per_page], page, per_page, len(rows) > per_page)


@dataclass(frozen=True, slots=True)
class OverdueRow:
    subscription_id: int
    subscription_version: int
    plan_name: str
    status: SubscriptionStatus
    customer_email: str
    invoice_id: int
    invoice_number: str | None
    amount_due_minor: int
    currency: str
    due_at: datetime | None
    suspends_at: datetime | None  # when dunning suspends it (active), or when it was suspended
    cancels_at: datetime | None  # the end of grace (suspended)


def overdue(tenant: TenantLike, *, limit: int = 200) -> list[OverdueRow]:
    """The subscriptions billed by the tenant's open invoices past their due date, oldest debt first, with the
    day they are (or were) suspended and the day they are canceled unless paid."""
    settings = settings_for(tenant)
    query = (select(Subscription.id, Subscription.version, Plan.name, Subscription.status, User.email, Invoice.id,
                    Invoice.number, Invoice.amount_due_minor, Invoice.currency, Invoice.due_at,
                    Subscription.suspended_at, Subscription.effective_at)
             .select_from(Invoice).join(Charge, Charge.invoice_id == Invoice.id)
             .join(Subscription, Subscription.id == Charge.subscription_id).join(Plan, Plan.id == Subscription.plan_id)
             .join(User, User.id == Invoice.user_id)
             .where(Invoice.tenant_id == tenant.id, Invoice.status == InvoiceStatus.OPEN,
                    Invoice.amount_due_minor > 0, Invoice.due_at < now(),
                    Subscription.status.in_([SubscriptionStatus.ACTIVE, SubscriptionStatus.PENDING_CANCEL,
                                             SubscriptionStatus.SUSPENDED]))
             .distinct().order_by(Invoice.due_at, Invoice.id, Subscription.id).limit(limit))
    rows = []
    for (subscription_id, version, plan_name, status, email, invoice_id, number, due, currency, due_at,
         suspended_at, effective_at) in db.session.execute(query):
        suspended = status is SubscriptionStatus.SUSPENDED
        planned = due_at + timedelta(days=settings.suspend_after_days) if due_at else None
        rows.append(OverdueRow(subscription_id, version, plan_name, status, email, invoice_id, number, due, currency,
                               due_at, suspended_at if suspended else planned, effective_at if suspended else None))
    return rows
