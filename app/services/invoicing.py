"""The billing run's invoicing step: due charges gathered into invoices, finalized, numbered and taxed.

`invoice_due(as_of)` does two things, each safe to run again, also after a crash half-way:

1. gather: each customer's uninvoiced charges whose period started by `as_of` go, per currency, into that
   customer's draft invoice, in one transaction. There is at most one draft per customer and currency (a
   unique partial index): the missing drafts are inserted in one INSERT ... SELECT that leaves those there
   are (ON CONFLICT DO NOTHING); then, BATCH at a time in id order, the drafts are locked and the charges
   attached with one UPDATE. Only uninvoiced charges are read (ix_charges_uninvoiced), so the work grows
   with what is due, not with all charges, and no list of them is held in memory; a rerun with nothing due
   costs one read.
2. finalize: the drafts, BATCH per transaction in id order, are locked, numbered from their tenant's
   sequence row for the year (locked, the batch's numbers taken at once, so numbers are gapless and never
   given twice), taxed per the tenant's settings and the customer's country and VAT id as they are now, their
   seller and bill-to frozen, the customer balance applied (one APPLIED entry per invoice, a unique index),
   and set open with their amount due (paid when nothing is due). The batch reads its lines, customers
   (locked, the balance's lock), profiles and balances once each. Collection (app/services/collection.py)
   charges the card from `next_attempt_at`. Each customer is emailed their invoice in the same transaction
   (sent after it commits). A batch that fails is finalized again one draft per transaction, so one
   invoice's problem holds up no other; a crash loses at most the batch in flight.

A draft is finalized only while it is still a draft under its row lock, so a rerun finds nothing to do twice.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import exists, func, literal, select, true, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from app.clock import now
from app.domain.accounts import Role
from app.domain.billing import BalanceEntryKind, InvoiceStatus
from app.domain.invoicing import invoice_amounts, invoice_number, tax_treatment
from app.domain.notifications import Event
from app.extensions import db
from app.models import (
    BalanceEntry,
    BillingSettings,
    Charge,
    CustomerProfile,
    Invoice,
    InvoiceSequence,
    Tenant,
    User,
)
from app.selectors.billing import settings_for
from app.services.errors import NotFound
from app.services.notifications import Links, notify

log = logging.getLogger(__name__)

BATCH = 100  # drafts finalized per transaction (and drafts whose charges one UPDATE attaches)


def invoice_due(as_of: datetime, *, user_id: int | None = None) -> str:
    """The billing run's step: gather what is due into drafts, then finalize every draft."""
    gathered = gather(as_of, user_id=user_id)
    finalized, failed = finalize_drafts(user_id=user_id)
    summary = f"invoicing: {gathered} charges gathered, {finalized} invoices finalized"
    return summary + (f", {failed} failed (logged, retried next run)" if failed else "")


def gather(as_of: datetime, *, user_id: int | None = None) -> int:
    """Attach each customer's uninvoiced charges that started by `as_of` to their draft per currency, in one
    transaction. Returns how many charges were attached."""
    due = [Charge.invoice_id.is_(None), Charge.user_id.is_not(None), Charge.period_start <= as_of]
    if user_id is not None:
        due.append(Charge.user_id == user_id)
    if db.session.scalar(select(Charge.id).where(*due).limit(1)) is None:
        db.session.rollback()
        return 0
    columns = Invoice.__table__.c
    due_groups = select(Charge.tenant_id, Charge.user_id, Charge.currency).distinct().where(*due).subquery()
    groups = select(*due_groups.c, literal(InvoiceStatus.DRAFT, columns.status.type),
                    literal(now(), columns.created_at.type), literal({}, columns.seller.type),
                    literal({}, columns.bill_to.type)).where(true())  # SQLite: a WHERE before ON CONFLICT
    db.session.execute(_insert_missing_drafts().from_select(  # a draft there is already (also one just made) is kept
        ["tenant_id", "user_id", "currency", "status", "created_at", "seller", "bill_to"], groups))
    attached, after = 0, 0
    while drafts := _lock_drafts_after(after, due):  # in id order, as finalization locks them
        after = drafts[-1]
        batch = (select(Invoice.id, Invoice.tenant_id, Invoice.user_id, Invoice.currency)
                 .where(Invoice.id.in_(drafts)).subquery())
        attached += db.session.execute(  # UPDATE ... FROM the batch: each draft's charges found by the index
            update(Charge).where(*due, Charge.tenant_id == batch.c.tenant_id, Charge.user_id == batch.c.user_id,
                                 Charge.currency == batch.c.currency).values(invoice_id=batch.c.id)
            .execution_options(synchronize_session=False)).rowcount or 0
    db.session.commit()
    return attached


def _lock_drafts_after(after: int, due: list[Any]) -> list[int]:
    """The next BATCH drafts by id that due charges go to, locked: a finalizer that holds one waits for these
    charges, or they wait and find it finalized (then the next run makes a new draft)."""
    return list(db.session.scalars(
        select(Invoice.id).where(Invoice.status == InvoiceStatus.DRAFT, Invoice.id > after, exists().where(
            Charge.tenant_id == Invoice.tenant_id, Charge.user_id == Invoice.user_id,  # ix_charges_uninvoiced
            Charge.currency == Invoice.currency, *due))
        .order_by(Invoice.id).limit(BATCH).with_for_update(of=Invoice)))


def _insert_missing_drafts() -> Any:
    """INSERT INTO invoices ... ON CONFLICT DO NOTHING (the one-draft index), on SQLite and PostgreSQL alike."""
    insert = postgresql.insert if db.session.get_bind().dialect.name == "postgresql" else sqlite.insert
    return insert(Invoice).on_conflict_do_nothing()


def finalize_drafts(*, user_id: int | None = None) -> tuple[int, int]:
    """Finalize every draft that has lines, BATCH drafts per transaction; when a batch fails, its drafts one per
    transaction, so one invoice's problem holds up no other. Returns (finalized, failed)."""
    finalized = failed = 0
    after = 0
    while ids := _drafts_after(after, user_id):
        after = ids[-1]
        try:
            finalized += len(_finalize_batch(ids))
            continue
        except Exception:  # retried one by one, to find the one that fails
            db.session.rollback()
        for invoice_id in ids:
            try:
                finalized += finalize(invoice_id) is not None
            except Exception:  # one invoice's problem must not hold up the others; it is retried next run
                db.session.rollback()
                log.exception("invoice %s could not be finalized", invoice_id)
                failed += 1
    return finalized, failed


def _drafts_after(after: int, user_id: int | None) -> list[int]:
    """The next BATCH drafts by id (ids only: the run's memory does not grow with the drafts there are)."""
    drafts = (select(Invoice.id).where(Invoice.status == InvoiceStatus.DRAFT, Invoice.id > after)
              .order_by(Invoice.id).limit(BATCH))
    if user_id is not None:
        drafts = drafts.where(Invoice.user_id == user_id)
    ids = list(db.session.scalars(drafts))
    db.session.rollback()
    return ids


def finalize(invoice_id: int) -> Invoice | None:
    """Finalize one draft (see the module's docstring) and commit; None when it is no draft with lines."""
    finalized = _finalize_batch([invoice_id])
    return finalized[0] if finalized else None


def _finalize_batch(ids: list[int]) -> list[Invoice]:
    """Finalize the drafts `ids` that are still drafts with lines, in one transaction, and commit."""
    invoices = db.session.scalars(select(Invoice).where(Invoice.id.in_(ids), Invoice.status == InvoiceStatus.DRAFT)
                                  .order_by(Invoice.id).with_for_update()
                                  .execution_options(populate_existing=True)).all()
    lines: dict[int, list[Charge]] = defaultdict(list)
    for line in db.session.scalars(select(Charge).where(Charge.invoice_id.in_([i.id for i in invoices]))
                                   .order_by(Charge.invoice_id, Charge.id)):
        lines[line.invoice_id].append(line)  # type: ignore[index]
    invoices = [invoice for invoice in invoices if lines[invoice.id]]
    if not invoices:
        db.session.rollback()
        return []
    moment = now()
    tenants = {invoice.tenant_id: db.session.get(Tenant, invoice.tenant_id) for invoice in invoices}
    settings = {tenant_id: settings_for(tenant) for tenant_id, tenant in tenants.items() if tenant is not None}
    numbers = {tenant_id: _next_numbers(tenant_id, moment.year, settings[tenant_id].invoice_prefix,
                                        sum(invoice.tenant_id == tenant_id for invoice in invoices))
               for tenant_id in sorted(tenants)}
    customers = _locked_customers(invoices)
    profiles = {profile.user_id: profile for profile in db.session.scalars(
        select(CustomerProfile).where(CustomerProfile.user_id.in_(list(customers))))}
    balances = _balances(invoices)
    for invoice in invoices:
        _finalize_one(invoice, lines[invoice.id], tenants[invoice.tenant_id], settings[invoice.tenant_id],  # type: ignore[arg-type]
                      number=next(numbers[invoice.tenant_id]), customer=customers[invoice.user_id],
                      profile=profiles.get(invoice.user_id),
                      balance=balances.get((invoice.user_id, invoice.currency), 0), moment=moment)
    db.session.flush()  # the batch's updates at once, before the emails
    links = {tenant_id: Links(tenant) for tenant_id, tenant in tenants.items() if tenant is not None}
    for invoice in invoices:  # each email links into its tenant's portal: the host is looked up once per batch
        notify(Event.INVOICE_ISSUED, user=customers[invoice.user_id], invoice=invoice, link=links[invoice.tenant_id])
    finalized = [{"tenant_id": invoice.tenant_id, "invoice_id": invoice.id, "number": invoice.number,
                  "total": invoice.total_minor, "due": invoice.amount_due_minor} for invoice in invoices]
    db.session.commit()
    for extra in finalized:  # read before the commit, which expires the invoices
        log.info("invoice finalized", extra=extra)
    return invoices


def _finalize_one(invoice: Invoice, lines: list[Charge], tenant: Tenant, settings: BillingSettings, *, number: str,
                  customer: User, profile: CustomerProfile | None, balance: int, moment: datetime) -> None:
    treatment = tax_treatment(settings.seller_country, profile.country if profile else "",
                              profile.vat_id if profile else "", settings.tax_rates or {}, settings.reverse_charge)
    amounts = invoice_amounts([line.amount_minor for line in lines], treatment.rate_bp, balance)
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


def _locked_customers(invoices: list[Invoice]) -> dict[int, User]:
    """The invoices' customers, locked for this transaction (the balance's lock, as `lock_customer` takes it)."""
    wanted = {(invoice.tenant_id, invoice.user_id) for invoice in invoices}
    found = {user.id: user for user in db.session.scalars(
        select(User).where(User.id.in_([user_id for _, user_id in wanted]), User.role == Role.CUSTOMER)
        .order_by(User.id).with_for_update())}
    for tenant_id, user_id in wanted:
        if user_id not in found or found[user_id].tenant_id != tenant_id:
            raise NotFound("There is no such customer.")
    return found


def _balances(invoices: list[Invoice]) -> dict[tuple[int, str], int]:
    """Each customer's balance per currency (0 when they have none), read once for the batch."""
    rows = db.session.execute(
        select(BalanceEntry.user_id, BalanceEntry.currency, func.sum(BalanceEntry.amount_minor))
        .where(BalanceEntry.user_id.in_({invoice.user_id for invoice in invoices}))
        .group_by(BalanceEntry.user_id, BalanceEntry.currency))
    return {(user_id, currency): total or 0 for user_id, currency, total in rows}


def _next_numbers(tenant_id: int, year: int, prefix: str, count: int) -> Iterator[str]:
    """The tenant's next `count` invoice numbers of `year`, taken from its sequence row at once; the row stays
    locked until this transaction ends."""
    first = _next_number_after(tenant_id, year, count)
    return (invoice_number(prefix, year, n) for n in range(first, first + count))


def _next_number_after(tenant_id: int, year: int, count: int) -> int:
    """Take `count` numbers from the tenant's sequence row of `year` (locked): returns the first of them."""
    sequence = _locked_sequence(tenant_id, year)
    if sequence is None:
        try:
            with db.session.begin_nested():
                db.session.add(InvoiceSequence(tenant_id=tenant_id, year=year, last_number=0))
        except IntegrityError:
            pass  # another finalization made it first; its lock orders us after it
        sequence = _locked_sequence(tenant_id, year)
        assert sequence is not None
    sequence.last_number += count
    return sequence.last_number - count + 1


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
