"""The billing run's invoicing step: due charges gathered into invoices, finalized, numbered and taxed.

`invoice_due(as_of)` does two things, each safe to run again, also after a crash half-way:

1. gather: each customer's uninvoiced charges whose period started by `as_of` go, per currency, into that
   customer's draft invoice. There is at most one draft per customer and currency (a unique partial index):
   the draft is inserted and a duplicate's IntegrityError means it is there already; the charges are
   attached with one UPDATE. Only uninvoiced charges are read (ix_charges_uninvoiced), so the work grows
   with what is due, not with all charges.
2. finalize: each draft, in its own short transaction, is locked, numbered from its tenant's sequence row
   for the year (locked, so numbers are gapless and never given twice), taxed per the tenant's settings and
   the customer's country and VAT id as they are now, its seller and bill-to frozen, the customer balance
   applied (one APPLIED entry per invoice, a unique index), and set open with its amount due (paid when
   nothing is due). Collection (app/services/collection.py) charges the card from `next_attempt_at`. The
   customer is emailed the invoice in the same transaction (sent after it commits).

A draft is finalized only while it is still a draft under its row lock, so a rerun finds nothing to do twice.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from app.clock import now
from app.domain.billing import BalanceEntryKind, InvoiceStatus
from app.domain.invoicing import invoice_amounts, invoice_number, tax_treatment
from app.domain.notifications import Event
from app.extensions import db
from app.models import BalanceEntry, Charge, CustomerProfile, Invoice, InvoiceSequence, Tenant, User
from app.selectors.billing import settings_for
from app.services.balance import balance_of, lock_customer
from app.services.notifications import notify

log = logging.getLogger(__name__)


def invoice_due(as_of: datetime, *, user_id: int | None = None) -> str:
    """The billing run's step: gather what is due into drafts, then finalize every draft."""
    gathered = gather(as_of, user_id=user_id)
    finalized, failed = finalize_drafts(user_id=user_id)
    summary = f"invoicing: {gathered} charges gathered, {finalized} invoices finalized"
    return summary + (f", {failed} failed (logged, retried next run)" if failed else "")


def gather(as_of: datetime, *, user_id: int | None = None) -> int:
    """Attach each customer's uninvoiced charges that started by `as_of` to their draft per currency.
    Returns how many charges were attached."""
    due = (select(Charge.tenant_id, Charge.user_id, Charge.currency).distinct()
           .where(Charge.invoice_id.is_(None), Charge.user_id.is_not(None), Charge.period_start <= as_of))
    if user_id is not None:
        due = due.where(Charge.user_id == user_id)
    groups = db.session.execute(due).all()
    db.session.rollback()
    attached = 0
    for tenant_id, customer_id, currency in groups:
        attached += _gather_one(tenant_id, customer_id, currency, as_of)
    return attached


def _gather_one(tenant_id: int, user_id: int, currency: str, as_of: datetime) -> int:
    draft = _draft_for(tenant_id, user_id, currency)
    # Locked: a finalizer that holds the draft waits for these charges, or they wait and find it finalized.
    locked = db.session.scalar(select(Invoice.id).where(Invoice.id == draft, Invoice.status == InvoiceStatus.DRAFT)
                               .with_for_update())
    if locked is None:  # finalized between the two statements: the next run makes a new draft
        db.session.rollback()
        return 0
    count = db.session.execute(
        update(Charge)
        .where(Charge.tenant_id == tenant_id, Charge.user_id == user_id, Charge.currency == currency,
               Charge.invoice_id.is_(None), Charge.period_start <= as_of)
        .values(invoice_id=draft)
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.commit()
    return count or 0


def _draft_for(tenant_id: int, user_id: int, currency: str) -> int:
    """The id of the customer's draft in `currency`, inserted unless it exists (the unique index decides)."""
    try:
        with db.session.begin_nested():
            db.session.add(Invoice(tenant_id=tenant_id, user_id=user_id, currency=currency,
                                   status=InvoiceStatus.DRAFT, created_at=now()))
    except IntegrityError:
        pass  # there is one already (also one another run inserted a moment ago)
    draft = db.session.scalar(select(Invoice.id).where(Invoice.user_id == user_id, Invoice.currency == currency,
                                                       Invoice.status == InvoiceStatus.DRAFT))
    assert draft is not None
    return draft


def finalize_drafts(*, user_id: int | None = None) -> tuple[int, int]:
    """Finalize every draft that has lines, each in its own transaction. Returns (finalized, failed)."""
    drafts = select(Invoice.id).where(Invoice.status == InvoiceStatus.DRAFT).order_by(Invoice.id)
    if user_id is not None:
        drafts = drafts.where(Invoice.user_id == user_id)
    ids = db.session.scalars(drafts).all()
    db.session.rollback()
    finalized = failed = 0
    for invoice_id in ids:
        try:
            finalized += finalize(invoice_id) is not None
        except Exception:  # one invoice's problem must not hold up the others; it is retried next run
            db.session.rollback()
            log.exception("invoice %s could not be finalized", invoice_id)
            failed += 1
    return finalized, failed


def finalize(invoice_id: int) -> Invoice | None:
    """Finalize one draft (see the module's docstring) and commit; None when it is no draft with lines."""
    invoice = db.session.scalar(select(Invoice).where(Invoice.id == invoice_id, Invoice.status == InvoiceStatus.DRAFT)
                                .with_for_update().execution_options(populate_existing=True))
    lines = db.session.scalars(select(Charge).where(Charge.invoice_id == invoice_id).order_by(Charge.id)).all()
    if invoice is None or not lines:
        db.session.rollback()
        return None
    tenant = db.session.get(Tenant, invoice.tenant_id)
    assert tenant is not None
    settings = settings_for(tenant)
    moment = now()
    number = _next_number(tenant.id, moment.year, settings.invoice_prefix)
    customer = lock_customer(tenant, invoice.user_id)
    profile = db.session.scalar(select(CustomerProfile).where(CustomerProfile.user_id == customer.id))
    treatment = tax_treatment(settings.seller_country, profile.country if profile else "",
                              profile.vat_id if profile else "", settings.tax_rates or {}, settings.reverse_charge)
    amounts = invoice_amounts([line.amount_minor for line in lines], treatment.rate_bp,
                              balance_of(tenant, customer.id, invoice.currency))
    for line, tax in zip(lines, amounts.line_taxes, strict=True):
        line.tax_minor = tax
    invoice.number, invoice.finalized_at = number, moment
    invoice.subtotal_minor, invoice.tax_minor, invoice.total_minor = amounts.subtotal, amounts.tax, amounts.total
    invoice.balance_applied_minor, invoice.amount_due_minor = amounts.balance_applied, amounts.amount_due
    invoice.tax_rate_bp, invoice.tax_country = treatment.rate_bp, treatment.country
    invoice.reverse_charge, invoice.tax_note = treatment.reverse_charge, treatment.note
    invoice.seller = {"name": settings.seller_name or tenant.name, "address": settings.seller_address,
                      "vat_id": settings.seller_vat_id, "country": settings.seller_country}
    invoice.bill_to = bill_to(customer, profile)
    invoice.due_at = moment + timedelta(days=settings.payment_terms_days)
    _apply_balance(invoice, amounts.balance_applied, amounts.excess_credit, moment)
    if amounts.amount_due > 0:
        invoice.status, invoice.next_attempt_at = InvoiceStatus.OPEN, moment
    else:
        invoice.status, invoice.paid_at, invoice.next_attempt_at = InvoiceStatus.PAID, moment, None
    invoice.emailed_at = moment
    notify(Event.INVOICE_ISSUED, user=customer, invoice=invoice)
    db.session.commit()
    log.info("invoice finalized", extra={"tenant_id": tenant.id, "invoice_id": invoice.id, "number": number,
                                         "total": amounts.total, "due": amounts.amount_due})
    return invoice


def _next_number(tenant_id: int, year: int, prefix: str) -> str:
    """The tenant's next invoice number of `year`, from its sequence row, locked until this transaction ends."""
    sequence = _locked_sequence(tenant_id, year)
    if sequence is None:
        try:
            with db.session.begin_nested():
                db.session.add(InvoiceSequence(tenant_id=tenant_id, year=year, last_number=0))
        except IntegrityError:
            pass  # another finalization made it first; its lock orders us after it
        sequence = _locked_sequence(tenant_id, year)
        assert sequence is not None
    sequence.last_number += 1
    return invoice_number(prefix, year, sequence.last_number)


def _locked_sequence(tenant_id: int, year: int) -> InvoiceSequence | None:
    return db.session.scalar(select(InvoiceSequence)
                             .where(InvoiceSequence.tenant_id == tenant_id, InvoiceSequence.year == year)
                             .with_for_update().execution_options(populate_existing=True))


def _apply_balance(invoice: Invoice, applied: int, excess: int, moment: datetime) -> None:
    if applied:
        db.session.add(BalanceEntry(tenant_id=invoice.tenant_id, user_id=invoice.user_id,
                                    kind=BalanceEntryKind.APPLIED, amount_minor=-applied, currency=invoice.currency,
                                    description=f"Applied to invoice {invoice.number}", invoice_id=invoice.id,
                                    created_at=moment))
    if excess:  # credits above debits (a downgrade applied now): owed to the customer, never paid out as cash
        db.session.add(BalanceEntry(tenant_id=invoice.tenant_id, user_id=invoice.user_id,
                                    kind=BalanceEntryKind.DOWNGRADE, amount_minor=excess, currency=invoice.currency,
                                    description=f"Credit from invoice {invoice.number}", invoice_id=invoice.id,
                                    created_at=moment))


def bill_to(customer: User, profile: CustomerProfile | None) -> dict[str, Any]:
    """Whom an invoice bills, as it is printed: the customer's billing profile, frozen on the invoice."""
    if profile is None:
        return {"name": customer.name, "company": "", "email": customer.email, "address": "", "postal_code": "",
                "city": "", "country": "", "vat_id": ""}
    return {"name": profile.full_name or customer.name, "company": profile.company,
            "email": profile.billing_email or customer.email, "address": profile.address,
            "postal_code": profile.postal_code, "city": profile.city, "country": profile.country,
            "vat_id": profile.vat_id}
