"""A tenant's invoices as the admin's pages read them: the filtered list, and one invoice with its lines,
payments and credit notes. Every read takes the tenant; an invoice of another tenant is not found."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Row, func, select

from app.domain.billing import CreditNoteMethod, CreditNoteReason, InvoiceStatus, PaymentStatus
from app.domain.invoicing import line_taxes
from app.extensions import db
from app.models import Charge, CreditNote, Invoice, Payment, TenantLike, User
from app.selectors.paging import Page, one_page_and_a_peek, page_number


@dataclass(frozen=True, slots=True)
class InvoiceRow:
    """One invoice as the list shows it: plain values."""

    id: int
    number: str | None
    status: InvoiceStatus
    customer_name: str
    customer_email: str
    currency: str
    total_minor: int
    amount_due_minor: int
    created_at: datetime
    finalized_at: datetime | None
    due_at: datetime | None


@dataclass(frozen=True, slots=True)
class LineRow:
    id: int
    description: str
    period_start: datetime
    period_end: datetime
    quantity: int
    amount_minor: int
    tax_minor: int | None

    @property
    def gross_minor(self) -> int:
        return self.amount_minor + (self.tax_minor or 0)


@dataclass(frozen=True, slots=True)
class PaymentRow:
    id: int
    attempt: int
    created_at: datetime
    amount_minor: int
    currency: str
    status: PaymentStatus
    failure_message: str | None
    external_id: str | None


@dataclass(frozen=True, slots=True)
class CreditNoteRow:
    id: int
    number: str
    created_at: datetime
    reason: CreditNoteReason
    memo: str
    method: CreditNoteMethod
    subtotal_minor: int
    tax_minor: int
    total_minor: int
    refund_external_id: str | None


@dataclass(frozen=True, slots=True)
class InvoiceDetail:
    invoice: Invoice
    customer_name: str
    customer_email: str
    lines: list[LineRow]
    payments: list[PaymentRow]
    credit_notes: list[CreditNoteRow]

    @property
    def creditable_minor(self) -> int:
        if self.invoice.status not in (InvoiceStatus.OPEN, InvoiceStatus.PAID):
            return 0
        return max(self.invoice.total_minor - self.invoice.credited_minor, 0)


_ROW = (Invoice.id, Invoice.number, Invoice.status, User.name.label("customer_name"),
        User.email.label("customer_email"), Invoice.currency, Invoice.total_minor, Invoice.amount_due_minor,
        Invoice.created_at, Invoice.finalized_at, Invoice.due_at)


def tenant_invoices(tenant: TenantLike, *, status: InvoiceStatus | None = None, email: str = "", number: str = "",
                    month: tuple[int, int] | None = None, page: int = 1, per_page: int = 25) -> Page[InvoiceRow]:
    """The tenant's invoices, newest first, one page plus a peek: one statement.

    `email` keeps those whose customer's email contains it; `number` those whose number contains it (any
    case); `month` (year, month) those finalized in it (drafts have no month yet)."""
    page = page_number(page)
    statement = (select(*_ROW).join(User, User.id == Invoice.user_id).where(Invoice.tenant_id == tenant.id))
    if status is not None:
        statement = statement.where(Invoice.status == status)
    if email:
        statement = statement.where(User.email.like(_like(email.lower()), escape="\\"))
    if number:
        statement = statement.where(func.upper(Invoice.number).like(_like(number.upper()), escape="\\"))
    if month is not None:
        start, end = _month(*month)
        statement = statement.where(Invoice.finalized_at >= start, Invoice.finalized_at < end)
    rows = db.session.execute(one_page_and_a_peek(
        statement.order_by(Invoice.created_at.desc(), Invoice.id.desc()), page, per_page)).all()
    return Page([InvoiceRow(*row) for row in rows[:per_page]], page, per_page, len(rows) > per_page)


def tenant_invoice(tenant: TenantLike, invoice_id: int) -> InvoiceDetail | None:
    """One of the tenant's invoices with its customer, lines, payments and credit notes (None: not the tenant's)."""
    found = db.session.execute(select(Invoice, User.name, User.email).join(User, User.id == Invoice.user_id)
                               .where(Invoice.id == invoice_id, Invoice.tenant_id == tenant.id)).first()
    if found is None:
        return None
    invoice, name, email = found
    lines = db.session.execute(select(Charge.id, Charge.description, Charge.period_start, Charge.period_end,
                                      Charge.quantity, Charge.amount_minor)
                               .where(Charge.invoice_id == invoice.id).order_by(Charge.id)).all()
    taxes = (line_taxes(invoice.tax_minor, [line.amount_minor for line in lines])
             if invoice.finalized_at is not None else [None] * len(lines))  # a draft's tax is not set yet
    payments = db.session.execute(select(Payment.id, Payment.attempt, Payment.created_at, Payment.amount_minor,
                                         Payment.currency, Payment.status, Payment.failure_message,
                                         Payment.external_id)
                                  .where(Payment.invoice_id == invoice.id).order_by(Payment.id)).all()
    notes = db.session.execute(select(CreditNote.id, CreditNote.number, CreditNote.created_at, CreditNote.reason,
                                      CreditNote.memo, CreditNote.method, CreditNote.subtotal_minor,
                                      CreditNote.tax_minor, CreditNote.total_minor, CreditNote.refund_external_id)
                               .where(CreditNote.invoice_id == invoice.id).order_by(CreditNote.sequence)).all()
    return InvoiceDetail(invoice, name, email, [LineRow(*line, tax) for line, tax in zip(lines, taxes, strict=True)],
                         _rows(PaymentRow, payments), _rows(CreditNoteRow, notes))


def _rows(kind: Any, rows: list[Row[Any]]) -> list[Any]:
    return [kind(*row) for row in rows]


def _month(year: int, month: int) -> tuple[datetime, datetime]:
    start = datetime(year, month, 1, tzinfo=UTC)
    end = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=UTC)
    return start, end


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


