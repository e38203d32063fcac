"""Vocabulary of money owed and collected: charges, invoices, payments, credit notes, the customer balance.

Pure: no Flask, no database. The rules (tax, numbering, dunning dates) live beside these names in
`app.domain.invoicing`, `app.domain.dunning` and `app.domain.usage`.
"""

from __future__ import annotations

from enum import StrEnum


class ChargeKind(StrEnum):
    FIRST_PERIOD = "first_period"
    RENEWAL = "renewal"
    PRORATION_CREDIT = "proration_credit"
    PRORATION_DEBIT = "proration_debit"
    USAGE = "usage"
    ONE_OFF = "one_off"


class InvoiceStatus(StrEnum):
    """Stripe's invoice states: a draft gathers charges; finalized it is open until paid or voided."""

    DRAFT = "draft"
    OPEN = "open"
    PAID = "paid"
    VOID = "void"
    UNCOLLECTIBLE = "uncollectible"

    @property
    def label(self) -> str:
        return {"draft": "Draft", "open": "Open", "paid": "Paid", "void": "Void",
                "uncollectible": "Uncollectible"}[self.value]


class PaymentStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REFUNDED = "refunded"

    @property
    def label(self) -> str:
        return self.value.capitalize()


class PaymentTrigger(StrEnum):
    """Who started a payment attempt."""

    AUTOMATIC = "automatic"  # at finalization
    RETRY = "retry"  # the dunning schedule
    CUSTOMER = "customer"  # "Pay now"


class CreditNoteReason(StrEnum):
    DUPLICATE = "duplicate"
    PRODUCT_UNSATISFACTORY = "product_unsatisfactory"
    ORDER_CHANGE = "order_change"
    FRAUDULENT = "fraudulent"
    OTHER = "other"

    @property
    def label(self) -> str:
        return {"duplicate": "Duplicate charge", "product_unsatisfactory": "Service not satisfactory",
                "order_change": "Order changed", "fraudulent": "Fraudulent charge", "other": "Other"}[self.value]


class CreditNoteMethod(StrEnum):
    """Where a credit note's money goes: the customer balance, or back to the card."""

    BALANCE = "balance"
    REFUND = "refund"


class BalanceEntryKind(StrEnum):
    CREDIT_NOTE = "credit_note"  # + credit in the customer's favour
    DOWNGRADE = "downgrade"  # + unused time of a downgrade applied now
    ADJUSTMENT = "adjustment"  # +/- by a tenant admin, with a reason
    APPLIED = "applied"  # - used to pay (part of) an invoice at finalization


class SetupStatus(StrEnum):
    """A hosted card-setup page the customer was sent to."""

    OPEN = "open"
    COMPLETE = "complete"
    EXPIRED = "expired"


class UsageSource(StrEnum):
    API = "api"
    CSV = "csv"
    CLI = "cli"
    DEMO = "demo"
