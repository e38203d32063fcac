"""Money: charges, invoices, payments, payment methods, credit notes, the customer balance, usage, settings.

Every amount is an integer in the currency's minor unit, with the currency beside it. Each row a job
creates has a unique key, so a rerun (also after a crash half-way) creates nothing twice.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint, text, true
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.domain.billing import (
    BalanceEntryKind,
    ChargeKind,
    CreditNoteMethod,
    CreditNoteReason,
    InvoiceStatus,
    PaymentStatus,
    PaymentTrigger,
    SetupStatus,
    UsageSource,
)
from app.domain.invoicing import line_taxes
from app.extensions import db
from app.models.base import UTCDateTime, enum_type

_UNINVOICED = text("invoice_id IS NULL")
_INVOICED = text("invoice_id IS NOT NULL")


class Charge(db.Model):
    """One amount owed for one subscription and one span of time; a line of the invoice that bills it.

    Unique per (subscription, kind, period start, usage metric): a job that runs twice bills once. A line's
    share of its invoice's tax is derived from the finalized invoice (`Invoice.line_taxes`), not stored.
    """

    __tablename__ = "charges"
    __table_args__ = (
        UniqueConstraint("subscription_id", "kind", "period_start", "usage_metric"),
        # The billing run reads only what is not invoiced yet.
        Index("ix_charges_uninvoiced", "tenant_id", "user_id", "currency",
              sqlite_where=_UNINVOICED, postgresql_where=_UNINVOICED),
        # An invoice's lines; a charge not invoiced yet is not in it (ix_charges_uninvoiced finds those). A
        # subscription's charges are found by the unique constraint, which starts with subscription_id.
        Index("ix_charges_invoice_id", "invoice_id", sqlite_where=_INVOICED, postgresql_where=_INVOICED),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    subscription_id: Mapped[int] = mapped_column(ForeignKey("subscriptions.id", ondelete="CASCADE"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    invoice_id: Mapped[int | None] = mapped_column(ForeignKey("invoices.id", ondelete="SET NULL"))
    kind: Mapped[ChargeKind] = mapped_column(enum_type(ChargeKind, "charge_kind"))
    description: Mapped[str] = mapped_column(String(200))
    # Usage lines: the metric ("" for every other kind), the units and the price of one unit.
    usage_metric: Mapped[str] = mapped_column(String(63), default="", server_default="")
    quantity: Mapped[int] = mapped_column(BigInteger, default=1, server_default="1")
    unit_amount_minor: Mapped[int | None] = mapped_column(BigInteger)
    amount_minor: Mapped[int] = mapped_column()
    currency: Mapped[str] = mapped_column(String(3))
    period_start: Mapped[datetime] = mapped_column(UTCDateTime)
    period_end: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class BillingSettings(db.Model):
    """A tenant's billing: seller, tax, invoice numbering, dunning, and its Stripe keys (sealed)."""

    __tablename__ = "billing_settings"
    __table_args__ = (
        CheckConstraint("suspend_after_days >= 0", name="suspend_after_days_not_negative"),
        CheckConstraint("grace_days >= 0", name="grace_days_not_negative"),
        CheckConstraint("payment_terms_days >= 0", name="payment_terms_days_not_negative"),
    )

    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    # The seller on the invoice: legal name, address lines, VAT id, country.
    seller_name: Mapped[str] = mapped_column(String(200), default="", server_default="")
    seller_address: Mapped[str] = mapped_column(Text, default="", server_default="")
    seller_vat_id: Mapped[str] = mapped_column(String(20), default="", server_default="")
    seller_country: Mapped[str] = mapped_column(String(2), default="DE", server_default="DE")
    invoice_prefix: Mapped[str] = mapped_column(String(12), default="INV", server_default="INV")
    # Tax rate per customer country in basis points (1900 is 19 %); "*" for every other country.
    tax_rates: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    reverse_charge: Mapped[bool] = mapped_column(default=True, server_default=true())
    payment_terms_days: Mapped[int] = mapped_column(default=0, server_default="0")
    retry_days: Mapped[list[int]] = mapped_column(JSON, default=lambda: [3, 5, 7])
    suspend_after_days: Mapped[int] = mapped_column(default=14, server_default="14")
    grace_days: Mapped[int] = mapped_column(default=30, server_default="30")
    stripe_secret_ciphertext: Mapped[str | None] = mapped_column(Text)
    stripe_secret_hint: Mapped[str | None] = mapped_column(String(8))
    stripe_webhook_secret_ciphertext: Mapped[str | None] = mapped_column(Text)
    stripe_webhook_secret_hint: Mapped[str | None] = mapped_column(String(8))
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class InvoiceSequence(db.Model):
    """The last invoice number given per tenant and year: locked and bumped at finalization, never counted."""

    __tablename__ = "invoice_sequences"

    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    year: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    last_number: Mapped[int] = mapped_column(default=0)


_DRAFT = text("status = 'draft'")


class Invoice(db.Model):
    """The charges of one customer in one currency that fall due together; frozen once finalized."""

    __tablename__ = "invoices"
    __table_args__ = (
        UniqueConstraint("tenant_id", "number"),
        # At most one draft per customer and currency: the billing run adds to it, never makes a second.
        Index("uq_invoices_one_draft", "user_id", "currency", unique=True,
              sqlite_where=_DRAFT, postgresql_where=_DRAFT),
        Index("ix_invoices_tenant_status_due", "tenant_id", "status", "due_at"),
        Index("ix_invoices_user_created", "user_id", "created_at"),
        Index("ix_invoices_status_next_attempt", "status", "next_attempt_at"),
        # The drafts in id order, as the billing run finalizes them: a walk of the drafts, not of every invoice.
        Index("ix_invoices_drafts", "id", sqlite_where=_DRAFT, postgresql_where=_DRAFT),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    status: Mapped[InvoiceStatus] = mapped_column(enum_type(InvoiceStatus, "invoice_status"))
    number: Mapped[str | None] = mapped_column(String(40))
    currency: Mapped[str] = mapped_column(String(3))
    subtotal_minor: Mapped[int] = mapped_column(default=0)  # net
    tax_minor: Mapped[int] = mapped_column(default=0)
    total_minor: Mapped[int] = mapped_column(default=0)  # gross
    balance_applied_minor: Mapped[int] = mapped_column(default=0)  # the customer balance used on it
    amount_paid_minor: Mapped[int] = mapped_column(default=0)
    amount_due_minor: Mapped[int] = mapped_column(default=0)  # total - balance applied - paid - credited
    credited_minor: Mapped[int] = mapped_column(default=0)  # credit notes against it
    tax_rate_bp: Mapped[int] = mapped_column(default=0)
    tax_country: Mapped[str] = mapped_column(String(2), default="")
    reverse_charge: Mapped[bool] = mapped_column(default=False)
    tax_note: Mapped[str] = mapped_column(String(300), default="")
    # Who bills whom, frozen at finalization: names, addresses, VAT ids.
    seller: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    bill_to: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finalized_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    voided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Collection: how many tries so far and when the next one is due (None: none planned).
    attempt_count: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    emailed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    version: Mapped[int] = mapped_column(default=1)

    lines: Mapped[list[Charge]] = relationship(order_by="Charge.id", viewonly=True)

    __mapper_args__ = {"version_id_col": version}

    @property
    def line_taxes(self) -> dict[int, int]:
        """Each line's share of the tax by charge id, as finalized (none while a draft: no tax is set yet)."""
        if self.finalized_at is None:
            return {}
        return dict(zip([line.id for line in self.lines],
                        line_taxes(self.tax_minor, [line.amount_minor for line in self.lines]), strict=True))


class CreditNote(db.Model):
    """A correction of a finalized invoice: to the customer balance or refunded to the card."""

    __tablename__ = "credit_notes"
    __table_args__ = (
        UniqueConstraint("invoice_id", "sequence"),
        UniqueConstraint("tenant_id", "number"),
        CheckConstraint("total_minor > 0", name="total_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    sequence: Mapped[int] = mapped_column()
    number: Mapped[str] = mapped_column(String(48))  # <invoice number>-CN01
    reason: Mapped[CreditNoteReason] = mapped_column(enum_type(CreditNoteReason, "credit_note_reason"))
    memo: Mapped[str] = mapped_column(String(500), default="")
    method: Mapped[CreditNoteMethod] = mapped_column(enum_type(CreditNoteMethod, "credit_note_method"))
    subtotal_minor: Mapped[int] = mapped_column()
    tax_minor: Mapped[int] = mapped_column()
    total_minor: Mapped[int] = mapped_column()
    currency: Mapped[str] = mapped_column(String(3))
    refund_external_id: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


_APPLIED = text("kind = 'applied'")


class BalanceEntry(db.Model):
    """One movement of a customer's balance; the balance is their sum (positive: in the customer's favour)."""

    __tablename__ = "balance_entries"
    __table_args__ = (
        Index("ix_balance_entries_user_currency", "user_id", "currency"),
        # A finalized invoice takes from the balance once, however often finalization is retried.
        Index("uq_balance_entries_applied_invoice", "invoice_id", unique=True,
              sqlite_where=_APPLIED, postgresql_where=_APPLIED),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[BalanceEntryKind] = mapped_column(enum_type(BalanceEntryKind, "balance_entry_kind"))
    amount_minor: Mapped[int] = mapped_column()
    currency: Mapped[str] = mapped_column(String(3))
    description: Mapped[str] = mapped_column(String(300), default="")
    invoice_id: Mapped[int | None] = mapped_column(ForeignKey("invoices.id", ondelete="SET NULL"))
    credit_note_id: Mapped[int | None] = mapped_column(ForeignKey("credit_notes.id", ondelete="SET NULL"),
                                                       unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class PaymentCustomer(db.Model):
    """The customer's id at the payment provider (a Stripe Customer), made once."""

    __tablename__ = "payment_customers"
    __table_args__ = (UniqueConstraint("user_id", "provider"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    provider: Mapped[str] = mapped_column(String(20))
    external_id: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


_DEFAULT_METHOD = text("is_default AND removed_at IS NULL")


class PaymentMethod(db.Model):
    """A card saved at the payment provider: only its ids, brand, last four digits and expiry are kept."""

    __tablename__ = "payment_methods"
    __table_args__ = (
        UniqueConstraint("provider", "external_id"),
        Index("ix_payment_methods_user", "user_id", "removed_at"),
        Index("uq_payment_methods_one_default", "user_id", unique=True,
              sqlite_where=_DEFAULT_METHOD, postgresql_where=_DEFAULT_METHOD),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    provider: Mapped[str] = mapped_column(String(20))
    external_id: Mapped[str] = mapped_column(String(100))
    brand: Mapped[str] = mapped_column(String(20))
    last4: Mapped[str] = mapped_column(String(4))
    exp_month: Mapped[int] = mapped_column()
    exp_year: Mapped[int] = mapped_column()
    is_default: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class PaymentSetup(db.Model):
    """A hosted card-setup page (a Checkout Session in setup mode) and where to send the customer after."""

    __tablename__ = "payment_setups"
    __table_args__ = (UniqueConstraint("provider", "external_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    provider: Mapped[str] = mapped_column(String(20))
    external_id: Mapped[str] = mapped_column(String(100))
    status: Mapped[SetupStatus] = mapped_column(enum_type(SetupStatus, "payment_setup_status"))
    next_url: Mapped[str] = mapped_column(String(500), default="")
    # Pay this invoice with the new card once it is saved ("pay with another card").
    invoice_id: Mapped[int | None] = mapped_column(ForeignKey("invoices.id", ondelete="SET NULL"))
    payment_method_id: Mapped[int | None] = mapped_column(ForeignKey("payment_methods.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Payment(db.Model):
    """One attempt to collect an invoice; its idempotency key makes a retried request the same charge."""

    __tablename__ = "payments"
    __table_args__ = (
        UniqueConstraint("invoice_id", "attempt"),
        UniqueConstraint("idempotency_key"),
        Index("ix_payments_tenant_created", "tenant_id", "created_at"),
        Index("ix_payments_external", "provider", "external_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    payment_method_id: Mapped[int | None] = mapped_column(ForeignKey("payment_methods.id", ondelete="SET NULL"))
    attempt: Mapped[int] = mapped_column()
    trigger: Mapped[PaymentTrigger] = mapped_column(enum_type(PaymentTrigger, "payment_trigger"))
    provider: Mapped[str] = mapped_column(String(20))
    external_id: Mapped[str | None] = mapped_column(String(100))
    idempotency_key: Mapped[str] = mapped_column(String(100))
    amount_minor: Mapped[int] = mapped_column()
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[PaymentStatus] = mapped_column(enum_type(PaymentStatus, "payment_status"))
    failure_code: Mapped[str | None] = mapped_column(String(60))
    failure_message: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class WebhookEvent(db.Model):
    """A provider's webhook event, kept by its id so each is handled once however often it arrives."""

    __tablename__ = "webhook_events"
    __table_args__ = (UniqueConstraint("provider", "external_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    provider: Mapped[str] = mapped_column(String(20))
    external_id: Mapped[str] = mapped_column(String(100))
    type: Mapped[str] = mapped_column(String(100))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    outcome: Mapped[str] = mapped_column(String(300), default="")


_UNBILLED = text("billed_at IS NULL")


class UsageRecord(db.Model):
    """A quantity of a metric used by a subscription at a time; its key is unique per subscription.

    `period_start`/`period_end` are the subscription's billing period that contains `recorded_at` (set when
    it is recorded); `billed_at` is set when the billing run turned that period's usage into charges.
    """

    __tablename__ = "usage_records"
    __table_args__ = (
        UniqueConstraint("subscription_id", "idempotency_key"),
        Index("ix_usage_records_subscription_metric_time", "subscription_id", "metric", "recorded_at"),
        Index("ix_usage_records_subscription_period", "subscription_id", "period_start"),
        # The billing run reads only the usage of closed periods not billed yet.
        Index("ix_usage_records_unbilled", "period_end", sqlite_where=_UNBILLED, postgresql_where=_UNBILLED),
        CheckConstraint("quantity >= 0", name="quantity_not_negative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    subscription_id: Mapped[int] = mapped_column(ForeignKey("subscriptions.id", ondelete="CASCADE"))
    metric: Mapped[str] = mapped_column(String(63))
    quantity: Mapped[int] = mapped_column(BigInteger)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)
    idempotency_key: Mapped[str] = mapped_column(String(100))
    source: Mapped[UsageSource] = mapped_column(enum_type(UsageSource, "usage_source"))
    period_start: Mapped[datetime] = mapped_column(UTCDateTime)
    period_end: Mapped[datetime] = mapped_column(UTCDateTime)
    billed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
