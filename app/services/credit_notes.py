"""Credit notes: the only way a finalized invoice's amount changes.

A tenant admin credits part or all of what is left of an invoice (its total less earlier credit notes),
gross, with a reason. As Stripe does, the credit first reduces what is still due on an open invoice; the
rest is money already received (by card or from the customer balance), which goes back as the admin
chooses: to the customer balance (used before the card on their next invoice), or refunded to the card
that paid the invoice (for an invoice with nothing due, up to what the card paid less earlier refunds).
An open invoice credited until nothing is due is void when nothing was paid on it, else paid.

The note, its balance entry and the invoice's new amounts commit together; the refund is then asked of the
payment provider with the idempotency key `credit-note-<id>`, so asking again (`retry_refund`) after a lost
answer or a crash never refunds twice. A note whose refund is not confirmed has no `refund_external_id`.
"""

from __future__ import annotations

import logging

from sqlalchemy import func, select

from app.clock import now
from app.domain.billing import (
    BalanceEntryKind,
    CreditNoteMethod,
    CreditNoteReason,
    InvoiceStatus,
    PaymentStatus,
)
from app.domain.invoicing import allocate, credit_note_number
from app.domain.notifications import Event
from app.domain.policy import ActorKind
from app.extensions import db
from app.models import BalanceEntry, CreditNote, Invoice, Payment, TenantLike, User
from app.providers.payments.base import PaymentError
from app.services.actors import Actor
from app.services.balance import lock_customer
from app.services.errors import Conflict, Forbidden, InvalidInput, NotFound
from app.services.notifications import notify
from app.services.payments import provider_for

log = logging.getLogger(__name__)

MEMO_MAX = 500


class RefundFailed(Conflict):
    """The credit note is issued, but the provider did not confirm its refund: `retry_refund` asks again."""
CREDITABLE = (InvoiceStatus.OPEN, InvoiceStatus.PAID)


def creditable(invoice: Invoice) -> int:
    """What may still be credited on `invoice`, gross: its total less earlier credit notes (0 unless finalized)."""
    if invoice.status not in CREDITABLE:
        return 0
    return max(invoice.total_minor - invoice.credited_minor, 0)


def issue(*, tenant: TenantLike, actor: Actor, invoice_id: int, amount_minor: int, reason: CreditNoteReason | str,
          memo: str = "", method: CreditNoteMethod | str) -> CreditNote:
    """Credit `amount_minor` (gross) of the tenant's finalized invoice and commit; then refund, if so chosen.

    Raises Forbidden (not a tenant admin, or impersonating), NotFound (not the tenant's invoice), InvalidInput
    (amount, reason, method, or a refund with nothing paid by card to refund) and RefundFailed (the provider
    did not confirm the refund: the note stands and `retry_refund` asks again)."""
    _check_actor(actor)
    reason, method, memo = _reason(reason), _method(method), " ".join(memo.split())
    if len(memo) > MEMO_MAX:
        raise InvalidInput(f"Keep the memo under {MEMO_MAX} characters.", field="memo")
    invoice = db.session.scalar(select(Invoice).where(Invoice.id == invoice_id, Invoice.tenant_id == tenant.id)
                                .with_for_update().execution_options(populate_existing=True))
    if invoice is None or invoice.status is InvoiceStatus.DRAFT:
        raise NotFound("There is no such invoice.")
    _check_amount(invoice, amount_minor)
    before_due = invoice.amount_due_minor if invoice.status is InvoiceStatus.OPEN else 0
    pre_payment = min(amount_minor, before_due)
    post_payment = amount_minor - pre_payment
    if method is CreditNoteMethod.REFUND and pre_payment:
        raise InvalidInput("This invoice still has an amount due: a credit note reduces it, and there is nothing "
                           "to refund. Choose the balance.", field="method")
    if method is CreditNoteMethod.REFUND and post_payment > _refundable(invoice):
        raise InvalidInput("Only what was paid by card can be refunded; credit the rest to the balance.",
                           field="amount")
    lock_customer(tenant, invoice.user_id)
    note = _note(invoice, actor, amount_minor, reason, memo, method)
    if post_payment and method is CreditNoteMethod.BALANCE:
        db.session.add(BalanceEntry(tenant_id=tenant.id, user_id=invoice.user_id, kind=BalanceEntryKind.CREDIT_NOTE,
                                    amount_minor=post_payment, currency=invoice.currency, invoice_id=invoice.id,
                                    credit_note_id=note.id, description=f"Credit note {note.number}",
                                    created_at=note.created_at, created_by_id=actor.user_id))
    _reduce(invoice, amount_minor, pre_payment)
    customer = db.session.get(User, invoice.user_id)
    assert customer is not None
    notify(Event.CREDIT_NOTE_ISSUED, user=customer, invoice=invoice, note=note, reduced_minor=pre_payment,
           to_balance_minor=post_payment if method is CreditNoteMethod.BALANCE else 0,
           refunded_minor=post_payment if method is CreditNoteMethod.REFUND else 0)
    db.session.commit()
    log.info("credit note issued", extra={"tenant_id": tenant.id, "invoice_id": invoice.id, "number": note.number,
                                          "amount": amount_minor, "method": method.value, "actor_id": actor.user_id})
    if post_payment and method is CreditNoteMethod.REFUND:
        _refund(tenant, note, invoice.id, post_payment)
    return note


def retry_refund(*, tenant: TenantLike, actor: Actor, credit_note_id: int) -> CreditNote:
    """Ask the provider again for a refund note's refund that is not confirmed (same idempotency key)."""
    _check_actor(actor)
    note = db.session.scalar(select(CreditNote).where(CreditNote.id == credit_note_id,
                                                      CreditNote.tenant_id == tenant.id))
    if note is None:
        raise NotFound("There is no such credit note.")
    if note.method is not CreditNoteMethod.REFUND or note.refund_external_id:
        return note
    _refund(tenant, note, note.invoice_id, note.total_minor)
    return note


def _check_actor(actor: Actor) -> None:
    if actor.kind is not ActorKind.TENANT_ADMIN or actor.impersonator is not None:
        raise Forbidden("Only the tenant's admins issue credit notes.")


def _reason(value: CreditNoteReason | str) -> CreditNoteReason:
    try:
        return CreditNoteReason(value)
    except ValueError:
        raise InvalidInput("Choose a reason.", field="reason") from None


def _method(value: CreditNoteMethod | str) -> CreditNoteMethod:
    try:
        return CreditNoteMethod(value)
    except ValueError:
        raise InvalidInput("Choose where the money goes.", field="method") from None


def _check_amount(invoice: Invoice, amount_minor: int) -> None:
    if isinstance(amount_minor, bool) or not isinstance(amount_minor, int) or amount_minor <= 0:
        raise InvalidInput("Enter an amount above zero.", field="amount")
    left = creditable(invoice)
    if not left:
        raise InvalidInput("Nothing is left to credit on this invoice.", field="amount")
    if amount_minor > left:
        raise InvalidInput("This is more than is left to credit on this invoice.", field="amount")


def _refundable(invoice: Invoice) -> int:
    paid = db.session.scalar(select(func.coalesce(func.sum(Payment.amount_minor), 0)).where(
        Payment.invoice_id == invoice.id, Payment.status.in_((PaymentStatus.SUCCEEDED, PaymentStatus.REFUNDED)))) or 0
    refunded = db.session.scalar(select(func.coalesce(func.sum(CreditNote.total_minor), 0)).where(
        CreditNote.invoice_id == invoice.id, CreditNote.method == CreditNoteMethod.REFUND)) or 0
    return max(paid - refunded, 0)


def _note(invoice: Invoice, actor: Actor, amount: int, reason: CreditNoteReason, memo: str,
          method: CreditNoteMethod) -> CreditNote:
    sequence = (db.session.scalar(select(func.max(CreditNote.sequence))
                                  .where(CreditNote.invoice_id == invoice.id)) or 0) + 1
    net, tax = allocate(amount, [invoice.subtotal_minor, invoice.tax_minor])
    note = CreditNote(tenant_id=invoice.tenant_id, invoice_id=invoice.id, user_id=invoice.user_id, sequence=sequence,
                      number=credit_note_number(invoice.number or "", sequence), reason=reason, memo=memo,
                      method=method, subtotal_minor=net, tax_minor=tax, total_minor=amount, currency=invoice.currency,
                      created_at=now(), created_by_id=actor.user_id)
    db.session.add(note)
    db.session.flush()
    return note


def _reduce(invoice: Invoice, amount: int, pre_payment: int) -> None:
    invoice.credited_minor += amount
    if invoice.status is not InvoiceStatus.OPEN or not pre_payment:
        return
    invoice.amount_due_minor -= pre_payment
    if invoice.amount_due_minor == 0:
        invoice.next_attempt_at = None
        if invoice.amount_paid_minor or invoice.balance_applied_minor:
            invoice.status, invoice.paid_at = InvoiceStatus.PAID, now()
        else:  # nothing was ever paid on it: it is void, as Stripe voids a fully credited open invoice
            invoice.status, invoice.voided_at = InvoiceStatus.VOID, now()


def _refund(tenant: TenantLike, note: CreditNote, invoice_id: int, amount: int) -> None:
    payment = db.session.scalar(select(Payment).where(Payment.invoice_id == invoice_id,
                                                      Payment.status.in_((PaymentStatus.SUCCEEDED,
                                                                          PaymentStatus.REFUNDED)),
                                                      Payment.external_id.is_not(None))
                                .order_by(Payment.id.desc()).limit(1))
    if payment is None or payment.external_id is None:
        raise Conflict("No card payment of this invoice was found to refund.")
    try:
        refund = provider_for(tenant).refund(payment_id=payment.external_id, amount_minor=amount,
                                             idempotency_key=f"credit-note-{note.id}")
    except PaymentError as error:
        log.warning("refund failed", extra={"credit_note_id": note.id, "kind": str(error.kind)})
        raise RefundFailed(f"The credit note {note.number} is issued, but the refund failed: {error.message} "
                           "Try the refund again later.") from None
    note.refund_external_id = refund.external_id
    db.session.commit()
