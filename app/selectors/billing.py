"""Reads of billing: a tenant's setup, and a customer's invoices, balance, card and spend; every read takes the
tenant (and the customer where it is theirs)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, and_, bindparam, func, literal, or_, select, union_all
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import selectinload
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from app.domain.billing import InvoiceStatus
from app.domain.dunning import UNPAID_INVOICE
from app.domain.marketplaces import Marketplace
from app.domain.subscriptions import SubscriptionStatus
from app.extensions import db
from app.models import (
    BalanceEntry,
    BillingSettings,
    CreditNote,
    Invoice,
    PaymentMethod,
    Plan,
    Subscription,
    SubscriptionEvent,
    TenantLike,
    User,
)


def settings_for(tenant: TenantLike) -> BillingSettings:
    """The tenant's billing settings; the defaults (not stored) for a tenant that never changed them."""
    row = db.session.get(BillingSettings, tenant.id)
    if row is None:
        row = BillingSettings(tenant_id=tenant.id, seller_name=tenant.name, seller_address="", seller_vat_id="",
                              seller_country="DE", invoice_prefix="INV", tax_rates={}, reverse_charge=True,
                              payment_terms_days=0, retry_days=[3, 5, 7], suspend_after_days=14, grace_days=30)
    return row


# --- what the customer sees: the Billing overview and their invoices ---------------------------------------


@dataclass(frozen=True, slots=True)
class InvoiceRow:
    """One line of the customer's invoice list: plain values, no entity behind it."""

    id: int
    number: str
    status: InvoiceStatus
    currency: str
    total_minor: int
    amount_due_minor: int
    issued_at: datetime | None  # finalized
    due_at: datetime | None

    @property
    def payable(self) -> bool:
        """Open with something left to pay: the list offers "Pay now"."""
        return self.status is InvoiceStatus.OPEN and self.amount_due_minor > 0


@dataclass(frozen=True, slots=True)
class CardSummary:
    brand: str
    last4: str
    exp_month: int
    exp_year: int


@dataclass(frozen=True)
class AccountSummary:
    """Beside the invoice list: the balance per currency (non-zero only), the default card, and what was
    billed per month and currency since a date (month as year * 100 + month, e.g. 202701)."""

    balances: tuple[tuple[str, int], ...]
    card: CardSummary | None
    spend: dict[str, dict[int, int]]
    # (subscription id, plan name, marketplace) of the running subscriptions a marketplace bills, newest first
    billed_elsewhere: tuple[tuple[int, str, Marketplace], ...] = ()


# Invoices the customer sees: finalized ones (a draft still gathers charges and is not theirs to see yet).
SHOWN_STATUSES = (InvoiceStatus.OPEN, InvoiceStatus.PAID, InvoiceStatus.VOID, InvoiceStatus.UNCOLLECTIBLE)
# What counts as spend in the chart: invoices billed and not voided or written off.
SPEND_STATUSES = (InvoiceStatus.OPEN, InvoiceStatus.PAID)

_INVOICES = (
    select(Invoice.id, Invoice.number, Invoice.status, Invoice.currency, Invoice.total_minor,
           Invoice.amount_due_minor, Invoice.finalized_at, Invoice.due_at)
    .where(Invoice.user_id == bindparam("user_id"), Invoice.tenant_id == bindparam("tenant_id"),
           Invoice.status.in_(SHOWN_STATUSES))
    .order_by(Invoice.created_at.desc(), Invoice.id.desc())
    .limit(bindparam("limit"))
)

class utc_month(FunctionElement[int]):
    """The UTC month of a timestamp as year * 100 + month (202701), whatever the session's time zone."""

    type = Integer()
    inherit_cache = True


@compiles(utc_month)
def _utc_month_sqlite(element: utc_month, compiler: SQLCompiler, **kw: Any) -> str:  # stored as UTC text
    return f"CAST(strftime('%Y%m', {compiler.process(element.clauses, **kw)}) AS INTEGER)"


@compiles(utc_month, "postgresql")
def _utc_month_postgresql(element: utc_month, compiler: SQLCompiler, **kw: Any) -> str:
    return f"CAST(to_char({compiler.process(element.clauses, **kw)} AT TIME ZONE 'UTC', 'YYYYMM') AS INTEGER)"


_MONTH = utc_month(Invoice.finalized_at)
# Three kinds of row in one statement, so the page stays at three statements with the session check and the list:
# (kind, currency or card brand, text, key, amount).
_SUMMARY = union_all(
    select(literal("spend").label("kind"), Invoice.currency.label("code"), literal("").label("text"),
           _MONTH.label("key"), func.sum(Invoice.total_minor).label("amount"))
    .where(Invoice.user_id == bindparam("user_id"), Invoice.tenant_id == bindparam("tenant_id"),
           Invoice.status.in_(SPEND_STATUSES), Invoice.finalized_at >= bindparam("since"))
    .group_by(Invoice.currency, _MONTH),
    select(literal("balance"), BalanceEntry.currency, literal(""), literal(0), func.sum(BalanceEntry.amount_minor))
    .where(BalanceEntry.user_id == bindparam("user_id"), BalanceEntry.tenant_id == bindparam("tenant_id"))
    .group_by(BalanceEntry.currency),
    select(literal("card"), PaymentMethod.brand, PaymentMethod.last4,
           PaymentMethod.exp_year * 100 + PaymentMethod.exp_month, literal(0))
    .where(PaymentMethod.user_id == bindparam("user_id"), PaymentMethod.tenant_id == bindparam("tenant_id"),
           PaymentMethod.is_default.is_(True), PaymentMethod.removed_at.is_(None)),
    # Running subscriptions a marketplace bills: the page says who bills them (the portal invoices none).
    select(literal("marketplace"), Subscription.marketplace, Plan.name, Subscription.id, literal(0))
    .join(Plan, Plan.id == Subscription.plan_id)
    .where(Subscription.user_id == bindparam("user_id"), Subscription.tenant_id == bindparam("tenant_id"),
           Subscription.marketplace.is_not(None), Subscription.status != SubscriptionStatus.CANCELED),
)


def customer_invoices(tenant: TenantLike, customer: User, *, limit: int = 100) -> list[InvoiceRow]:
    """The customer's invoices, newest first, drafts left out: one statement, plain rows."""
    return [InvoiceRow(row.id, row.number or "", row.status, row.currency, row.total_minor, row.amount_due_minor,
                       row.finalized_at, row.due_at)
            for row in db.session.execute(_INVOICES, {"tenant_id": tenant.id, "user_id": customer.id,
                                                      "limit": limit})]


@dataclass(frozen=True, slots=True)
class InvoiceListing:
    """One invoice in a page of the customer's invoices, with its totals: plain values, no entity behind it."""

    id: int
    number: str
    status: InvoiceStatus
    currency: str
    subtotal_minor: int
    tax_minor: int
    total_minor: int
    amount_due_minor: int
    created_at: datetime
    issued_at: datetime | None  # finalized
    due_at: datetime | None
    paid_at: datetime | None


def customer_invoice_page(tenant: TenantLike, customer: User, *, after: tuple[datetime, int] | None,
                          limit: int) -> list[InvoiceListing]:
    """Up to `limit` of the customer's invoices, newest first as the Billing page lists them (drafts left out),
    starting after the invoice with (created_at, id) `after`: one statement, a keyset page."""
    query = (select(Invoice.id, Invoice.number, Invoice.status, Invoice.currency, Invoice.subtotal_minor,
                    Invoice.tax_minor, Invoice.total_minor, Invoice.amount_due_minor, Invoice.created_at,
                    Invoice.finalized_at, Invoice.due_at, Invoice.paid_at)
             .where(Invoice.user_id == customer.id, Invoice.tenant_id == tenant.id,
                    Invoice.status.in_(SHOWN_STATUSES))
             .order_by(Invoice.created_at.desc(), Invoice.id.desc()).limit(limit))
    if after is not None:
        created, last_id = after
        query = query.where(or_(Invoice.created_at < created,
                                and_(Invoice.created_at == created, Invoice.id < last_id)))
    return [InvoiceListing(row.id, row.number or "", *row[2:]) for row in db.session.execute(query)]


def account_summary(tenant: TenantLike, customer: User, *, since: datetime) -> AccountSummary:
    """Balance, default card, spend per month since `since` (by finalization date) and the subscriptions a
    marketplace bills: one statement."""
    balances: list[tuple[str, int]] = []
    card: CardSummary | None = None
    spend: dict[str, dict[int, int]] = {}
    elsewhere: list[tuple[int, str, Marketplace]] = []
    for row in db.session.execute(_SUMMARY, {"tenant_id": tenant.id, "user_id": customer.id, "since": since}):
        if row.kind == "spend":
            spend.setdefault(row.code, {})[int(row.key)] = int(row.amount)
        elif row.kind == "balance" and row.amount:
            balances.append((row.code, int(row.amount)))
        elif row.kind == "card":
            card = CardSummary(row.code, row.text, int(row.key) % 100, int(row.key) // 100)
        elif row.kind == "marketplace":
            elsewhere.append((int(row.key), row.text, Marketplace(row.code)))
    return AccountSummary(tuple(sorted(balances)), card, spend, tuple(sorted(elsewhere, reverse=True)))


_CUSTOMER_INVOICE = (
    select(Invoice)
    .where(Invoice.id == bindparam("invoice_id"), Invoice.tenant_id == bindparam("tenant_id"),
           Invoice.user_id == bindparam("user_id"), Invoice.status.in_(SHOWN_STATUSES))
    .options(selectinload(Invoice.lines))
)


def customer_invoice(tenant: TenantLike, customer: User, invoice_id: int) -> Invoice | None:
    """One of the customer's finalized invoices with its lines (two statements); None for a draft or another's."""
    return db.session.scalar(_CUSTOMER_INVOICE, {"invoice_id": invoice_id, "tenant_id": tenant.id,
                                                 "user_id": customer.id})


def credit_notes_of(invoice: Invoice) -> list[CreditNote]:
    """The credit notes against an invoice, oldest first."""
    return list(db.session.scalars(select(CreditNote).where(CreditNote.invoice_id == invoice.id,
                                                            CreditNote.tenant_id == invoice.tenant_id)
                                   .order_by(CreditNote.sequence)))
def suspension_invoice(subscription_id: int) -> int | None:
    """The invoice whose non-payment suspended the subscription the last time it was suspended (None when that
    suspension was someone's decision, not dunning's, or it was never suspended)."""
    data = db.session.scalar(select(SubscriptionEvent.data).where(
        SubscriptionEvent.subscription_id == subscription_id, SubscriptionEvent.kind == "suspend")
        .order_by(SubscriptionEvent.created_at.desc(), SubscriptionEvent.id.desc()).limit(1))
    value = (data or {}).get(UNPAID_INVOICE)
    return int(value) if isinstance(value, int) else None


def suspended_once_for(subscription_id: int, invoice_id: int) -> bool:
    """Whether this invoice's non-payment has suspended the subscription before (dunning suspends once)."""
    rows = db.session.scalars(select(SubscriptionEvent.data).where(
        SubscriptionEvent.subscription_id == subscription_id, SubscriptionEvent.kind == "suspend"))
    return any((data or {}).get(UNPAID_INVOICE) == invoice_id for data in rows)
