"""The billing run's invoicing step: due charges gathered into invoices, finalized, numbered and taxed.

`invoice_due(as_of)` does two things, each safe to run again, also after a crash half-way:

1. gather: each customer's uninvoiced charges whose period started by `as_of` go, per currency, into that
   customer's draft invoice, in one transaction. There is at most one draft per customer and currency (a
   unique partial index): the missing drafts are inserted in one INSERT ... SELECT that leaves those there
   are (ON CONFLICT DO NOTHING); the drafts the charges go to are locked in id order, and one UPDATE
   attaches every due charge to its draft. Only uninvoiced charges are read (ix_charges_uninvoiced), so the
   work grows with what is due, not with all charges, and no list of them is held in memory; a rerun with
   nothing due costs one read.
2. finalize: the drafts, BATCH per transaction in id order, are locked, numbered from their tenant's
   sequence row for the year (locked, the batch's numbers taken at once, so numbers are gapless and never
   given twice), taxed per the tenant's settings and the customer's country and VAT id as they are now (tax
   on the invoice's net; its split over the lines is derived when shown), their seller and bill-to frozen,
   the customer balance applied (one APPLIED entry per invoice, a unique index), and set open with their
   amount due (paid when nothing is due). A batch is read as plain rows in a few statements (drafts, nets,
   customers locked as the balance's lock, profiles, balances) and written with one UPDATE run over its
   invoices. Collection (app/services/collection.py) charges the card from `next_attempt_at`. Each
   customer's "invoice issued" email is logged in the same transaction, in one statement, and rendered and
   sent by the worker after it commits. A batch that fails is finalized again one draft per transaction, so
   one invoice's problem holds up no other; a crash loses at most the batch in flight.

A draft is finalized only while it is still a draft under its row lock, so a rerun finds nothing to do twice.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import Row, bindparam, exists, func, insert, literal, literal_column, select, true, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from app.clock import now
from app.domain.accounts import Role
from app.domain.billing import BalanceEntryKind, InvoiceStatus
from app.domain.invoicing import InvoiceTotals, TaxTreatment, invoice_number, invoice_totals, tax_treatment
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
from app.models.base import json_object
from app.selectors.billing import settings_for
from app.services.errors import NotFound
from app.services.notifications import notify_later

log = logging.getLogger(__name__)

BATCH = 1000  # drafts finalized per transaction


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
    _lock_drafts(due)
    draft = (select(Invoice.id).where(Invoice.user_id == Charge.user_id, Invoice.currency == Charge.currency,
                                      Invoice.status == _DRAFT, Invoice.tenant_id == Charge.tenant_id)
             .scalar_subquery())  # uq_invoices_one_draft
    # Each due charge to its customer's draft in its currency, in one statement. Every one has a draft (made
    # above), unless a finalizer took that draft meanwhile (PostgreSQL): such a charge stays uninvoiced for the
    # next run, which makes a new draft, and is counted here all the same.
    attached = db.session.execute(
        update(Charge).where(*due).values(invoice_id=draft)
        .execution_options(synchronize_session=False)).rowcount or 0
    db.session.commit()
    return attached


_DRAFT = literal_column(f"'{InvoiceStatus.DRAFT.value}'")  # written out, so the partial indexes on drafts apply


def _lock_drafts(due: list[Any]) -> None:
    """Lock, in id order (as finalization locks them), the drafts that due charges go to: a finalizer that holds
    one waits for these charges, or they wait and find it finalized (then the next run makes a new draft). The
    rows stay in the database: only their count comes back, so the run's memory does not grow with them."""
    if db.session.get_bind().dialect.name != "postgresql":
        return  # SQLite: one writer at a time already
    drafts = (select(Invoice.id).where(Invoice.status == _DRAFT, exists().where(
        Charge.tenant_id == Invoice.tenant_id, Charge.user_id == Invoice.user_id,  # ix_charges_uninvoiced
        Charge.currency == Invoice.currency, *due)).order_by(Invoice.id).with_for_update(of=Invoice))
    db.session.scalar(select(func.count()).select_from(drafts.subquery()))


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
            finalized += _finalize_batch(ids)
            continue
        except Exception:  # retried one by one, to find the one that fails
            db.session.rollback()
        for invoice_id in ids:
            try:
                finalized += _finalize_batch([invoice_id])
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
    return db.session.get(Invoice, invoice_id) if _finalize_batch([invoice_id]) else None


class _Draft(NamedTuple):
    id: int
    tenant_id: int
    user_id: int
    currency: str


def _finalize_batch(ids: list[int]) -> int:
    """Finalize the drafts `ids` that are still drafts with lines, in one transaction, and commit. Returns how
    many. The batch is read in a few statements of plain rows, its amounts worked out by the domain's rules,
    and written with one UPDATE run for every invoice, one INSERT of the balance entries and one of the
    emails."""
    drafts = [_Draft(*row) for row in db.session.execute(_LOCKED_DRAFTS, {"ids": ids})]
    nets = dict(db.session.execute(_NETS, {"ids": [draft.id for draft in drafts]}).all())  # type: ignore[arg-type]
    drafts = [draft for draft in drafts if draft.id in nets]
    if not drafts:
        db.session.rollback()
        return 0
    moment = now()
    tenants = {tenant_id: db.session.get(Tenant, tenant_id) for tenant_id in {draft.tenant_id for draft in drafts}}
    settings = {tenant_id: settings_for(tenant) for tenant_id, tenant in tenants.items() if tenant is not None}
    numbers = {tenant_id: _next_numbers(tenant_id, moment.year, settings[tenant_id].invoice_prefix,
                                        sum(draft.tenant_id == tenant_id for draft in drafts))
               for tenant_id in sorted(tenants)}
    customers = _locked_customers(drafts)
    profiles = {row.user_id: row for row in db.session.execute(_PROFILES, {"ids": list(customers)})}
    balances = _balances(drafts)
    treatments: dict[tuple[int, str, str], TaxTreatment] = {}
    shared = {tenant_id: _shared(tenant, settings[tenant_id], moment) for tenant_id, tenant in tenants.items()}  # type: ignore[arg-type]
    updates, entries = [], []
    for draft in drafts:
        tenant_settings, profile = settings[draft.tenant_id], profiles.get(draft.user_id)
        country, vat_id = (profile.country, profile.vat_id) if profile else ("", "")
        key = (draft.tenant_id, country, vat_id)
        if key not in treatments:
            treatments[key] = tax_treatment(tenant_settings.seller_country, country, vat_id,
                                            tenant_settings.tax_rates or {}, tenant_settings.reverse_charge)
        number = next(numbers[draft.tenant_id])
        totals = invoice_totals(nets[draft.id], treatments[key].rate_bp,
                                balances.get((draft.user_id, draft.currency), 0))
        updates.append({**shared[draft.tenant_id], **_finalized(draft, number, totals, treatments[key],
                                                                customers[draft.user_id], profile, moment)})
        entries += _balance_entries(draft, number, totals, moment)
    table = Invoice.__table__
    db.session.execute(update(table).where(table.c.id == bindparam("b_id")).values(version=table.c.version + 1),
                       updates)
    if entries:
        db.session.execute(insert(BalanceEntry.__table__), entries)
    for tenant_id, tenant in tenants.items():  # each email rendered when it is sent, by the worker
        notify_later(Event.INVOICE_ISSUED, tenant, select(  # type: ignore[arg-type]
            Invoice.user_id, User.email.label("to_address"), User.purged_at,
            json_object("invoice_id", Invoice.id).label("render_context"))
            .join(User, User.id == Invoice.user_id)
            .where(Invoice.id.in_(_IDS)), {"ids": [draft.id for draft in drafts if draft.tenant_id == tenant_id]})
    db.session.commit()
    log.info("%s invoices finalized", len(drafts), extra={"first_number": updates[0]["number"],
                                                           "last_number": updates[-1]["number"]})
    return len(drafts)


def _finalized(draft: _Draft, number: str, totals: InvoiceTotals, treatment: TaxTreatment, customer: Row[Any],
               profile: Row[Any] | None, moment: datetime) -> dict[str, Any]:
    """What finalization writes on one draft: its number, amounts, tax, whom it bills and its status."""
    paid = totals.amount_due <= 0
    return {"b_id": draft.id, "number": number, "subtotal_minor": totals.subtotal, "tax_minor": totals.tax,
            "total_minor": totals.total, "balance_applied_minor": totals.balance_applied,
            "amount_due_minor": totals.amount_due, "tax_rate_bp": treatment.rate_bp,
            "tax_country": treatment.country, "reverse_charge": treatment.reverse_charge, "tax_note": treatment.note,
            "bill_to": bill_to(customer, profile), "status": InvoiceStatus.PAID if paid else InvoiceStatus.OPEN,
            "paid_at": moment if paid else None, "next_attempt_at": None if paid else moment}


def _shared(tenant: Tenant, settings: BillingSettings, moment: datetime) -> dict[str, Any]:
    """What finalization writes on every invoice of a tenant alike: the seller, the dates (worked out once per
    batch, written with each invoice's own values in the one UPDATE run)."""
    return {"seller": {"name": settings.seller_name or tenant.name, "address": settings.seller_address,
                       "vat_id": settings.seller_vat_id, "country": settings.seller_country},
            "finalized_at": moment, "emailed_at": moment,
            "due_at": moment + timedelta(days=settings.payment_terms_days)}


# A batch's reads, each one statement over the batch's ids (compiled once: an expanding parameter).
_IDS = bindparam("ids", expanding=True)
_LOCKED_DRAFTS = (select(Invoice.id, Invoice.tenant_id, Invoice.user_id, Invoice.currency)
                  .where(Invoice.id.in_(_IDS), Invoice.status == InvoiceStatus.DRAFT).order_by(Invoice.id)
                  .with_for_update())
_NETS = (select(Charge.invoice_id, func.sum(Charge.amount_minor)).where(Charge.invoice_id.in_(_IDS))
         .group_by(Charge.invoice_id))
_CUSTOMERS = (select(User.id, User.tenant_id, User.name, User.email)  # locked: the balance's lock
              .where(User.id.in_(_IDS), User.role == Role.CUSTOMER).order_by(User.id).with_for_update())
_PROFILES = select(CustomerProfile.user_id, CustomerProfile.full_name, CustomerProfile.company,
                   CustomerProfile.billing_email, CustomerProfile.address, CustomerProfile.postal_code,
                   CustomerProfile.city, CustomerProfile.country, CustomerProfile.vat_id
                   ).where(CustomerProfile.user_id.in_(_IDS))
_BALANCES = (select(BalanceEntry.user_id, BalanceEntry.currency, func.sum(BalanceEntry.amount_minor))
             .where(BalanceEntry.user_id.in_(_IDS)).group_by(BalanceEntry.user_id, BalanceEntry.currency))


def _locked_customers(drafts: list[_Draft]) -> dict[int, Row[Any]]:
    """The drafts' customers, locked for this transaction (the balance's lock, as `lock_customer` takes it)."""
    wanted = {(draft.tenant_id, draft.user_id) for draft in drafts}
    found = {row.id: row for row in db.session.execute(_CUSTOMERS, {"ids": [user_id for _, user_id in wanted]})}
    for tenant_id, user_id in wanted:
        if user_id not in found or found[user_id].tenant_id != tenant_id:
            raise NotFound("There is no such customer.")
    return found


def _balances(drafts: list[_Draft]) -> dict[tuple[int, str], int]:
    """Each customer's balance per currency (0 when they have none), read once for the batch."""
    rows = db.session.execute(_BALANCES, {"ids": list({draft.user_id for draft in drafts})})
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
    db.session.flush()
    return sequence.last_number - count + 1


def _locked_sequence(tenant_id: int, year: int) -> InvoiceSequence | None:
    return db.session.scalar(select(InvoiceSequence)
                             .where(InvoiceSequence.tenant_id == tenant_id, InvoiceSequence.year == year)
                             .with_for_update().execution_options(populate_existing=True))


def _balance_entries(draft: _Draft, number: str, totals: InvoiceTotals, moment: datetime) -> list[dict[str, Any]]:
    """The balance entries finalization writes: what the balance paid (one per invoice: a unique index), and
    credits above debits (a downgrade applied now), owed to the customer and never paid out as cash."""
    entries = []
    common = {"tenant_id": draft.tenant_id, "user_id": draft.user_id, "currency": draft.currency,
              "invoice_id": draft.id, "created_at": moment}
    if totals.balance_applied:
        entries.append({**common, "kind": BalanceEntryKind.APPLIED, "amount_minor": -totals.balance_applied,
                        "description": f"Applied to invoice {number}"})
    if totals.excess_credit:
        entries.append({**common, "kind": BalanceEntryKind.DOWNGRADE, "amount_minor": totals.excess_credit,
                        "description": f"Credit from invoice {number}"})
    return entries


def bill_to(customer: Row[Any] | User, profile: Row[Any] | CustomerProfile | None) -> dict[str, Any]:
    """Whom an invoice bills, as it is printed: the customer's billing profile, frozen on the invoice."""
    if profile is None:
        return {"name": customer.name, "company": "", "email": customer.email, "address": "", "postal_code": "",
                "city": "", "country": "", "vat_id": ""}
    return {"name": profile.full_name or customer.name, "company": profile.company,
            "email": profile.billing_email or customer.email, "address": profile.address,
            "postal_code": profile.postal_code, "city": profile.city, "country": profile.country,
            "vat_id": profile.vat_id}
