"""Collecting open invoices: the billing run's tries on the dunning schedule, the customer's "Pay now", and the
payment provider's webhooks about charges.

Each try is a Payment row (attempt N of its invoice, idempotency key `invoice-<id>-attempt-<N>`) written and
COMMITTED before the provider is asked. A crash, a timeout or a lost answer therefore leaves a pending
attempt, and whoever comes next (the next run, the customer's "Pay now") sends that same attempt again with
the same key: the provider answers with the charge it made, never a second one. An invoice has at most one
pending attempt at a time, so no two cards are charged for it at once.

Outcomes: a success pays the invoice (receipt email) and reinstates the subscriptions its non-payment had
suspended; a decline is recorded with its reason, counted, emailed with the next try's date and a link to pay
with another card, and the next try planned by the tenant's retry days counted from the first try; an outage
or a lost answer leaves the attempt pending (not a decline).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from app.clock import now
from app.domain.billing import InvoiceStatus, PaymentStatus, PaymentTrigger
from app.domain.dunning import NO_PAYMENT_METHOD, next_attempt, suspends_at
from app.domain.notifications import Event
from app.domain.subscriptions import Action, SubscriptionStatus
from app.extensions import db
from app.models import (
    Charge,
    Invoice,
    Payment,
    PaymentCustomer,
    PaymentMethod,
    Subscription,
    Tenant,
    TenantLike,
    User,
)
from app.providers.payments.base import ChargeOutcome, ChargeStatus, PaymentError, PaymentErrorKind, ProviderEvent
from app.selectors.billing import settings_for, suspension_invoice
from app.services import lifecycle
from app.services.actors import Actor
from app.services.errors import Conflict, Forbidden, InvalidInput, NotFound, ServiceError
from app.services.notifications import notify
from app.services.payments import provider_for

log = logging.getLogger(__name__)

BATCH = 500
PROCESSING_RECHECK = timedelta(days=1)  # a charge still processing is asked about again (same key) after this
NO_CARD_MESSAGE = "No payment method on file."
RELOAD = "This invoice changed in the meantime. Please reload the page and try again."


@dataclass(frozen=True)
class _Try:
    """What one try came to, for the run's summary and the customer's message."""

    payment: Payment
    result: str  # paid, failed, pending, skipped


# --- the billing run's step ----------------------------------------------------------------------------------

def collect_due(as_of: datetime, *, user_id: int | None = None) -> str:
    """Try every open invoice whose next try is due by `as_of` (for one customer with `user_id`)."""
    query = (select(Invoice.id).where(Invoice.status == InvoiceStatus.OPEN, Invoice.next_attempt_at <= as_of,
                                      Invoice.amount_due_minor > 0)
             .order_by(Invoice.next_attempt_at, Invoice.id).limit(BATCH))
    if user_id is not None:
        query = query.where(Invoice.user_id == user_id)
    ids = db.session.scalars(query).all()
    db.session.rollback()  # end the read; each invoice is tried in transactions of its own
    counts = {"paid": 0, "failed": 0, "pending": 0, "skipped": 0}
    for invoice_id in ids:
        try:
            outcome = _collect_one(invoice_id, as_of)
        except Exception:  # one invoice's surprise must not stop the others; the next run tries it again
            db.session.rollback()
            log.exception("invoice %s: collection failed", invoice_id)
            outcome = "skipped"
        counts[outcome] += 1
    return (f"collection: {counts['paid']} paid, {counts['failed']} declined, {counts['pending']} pending"
            + (f", {counts['skipped']} skipped" if counts["skipped"] else ""))


def _collect_one(invoice_id: int, as_of: datetime) -> str:
    invoice = db.session.scalar(select(Invoice).where(Invoice.id == invoice_id).with_for_update(skip_locked=True))
    if (invoice is None or invoice.status is not InvoiceStatus.OPEN or invoice.next_attempt_at is None
            or invoice.next_attempt_at > as_of):
        db.session.rollback()  # another worker has it, or it was paid in the meantime
        return "skipped"
    trigger = PaymentTrigger.AUTOMATIC if invoice.attempt_count == 0 else PaymentTrigger.RETRY
    payment = _pending_attempt(invoice) or _new_attempt(invoice, trigger, _default_method(invoice.user_id))
    return _send(payment).result


# --- the customer's "Pay now" ----------------------------------------------------------------------------------

def pay_invoice(*, tenant: TenantLike, actor: Actor, invoice_id: int, payment_method_id: int | None = None) -> Payment:
    """Charge one of the customer's open invoices now, to their default card or to `payment_method_id`.

    Returns the attempt: succeeded (the invoice is paid), failed (with the decline's message) or pending (the
    provider's answer did not come; the next billing run asks again with the same key). While an earlier
    attempt is pending, that attempt is sent again instead (same key, same card), so two requests at once
    charge once. Refused while support acts for the customer.
    """
    user = actor.user
    if user is None or actor.impersonator is not None:
        raise Forbidden("Only the customer, signed in as themselves, can pay an invoice.")
    try:
        invoice = db.session.scalar(select(Invoice).where(Invoice.id == invoice_id, Invoice.tenant_id == tenant.id,
                                                          Invoice.user_id == user.id).with_for_update())
        if invoice is None or invoice.status is InvoiceStatus.DRAFT:
            raise NotFound("There is no such invoice.")
        if invoice.status is InvoiceStatus.PAID or invoice.amount_due_minor <= 0:
            raise Conflict(f"Invoice {invoice.number} is already paid: there is nothing to pay.")
        if invoice.status is not InvoiceStatus.OPEN:
            raise InvalidInput(f"Invoice {invoice.number} is {invoice.status.label.lower()}: it cannot be paid.")
        pending = _pending_attempt(invoice)
        if pending is None:
            method = _chosen_method(user, payment_method_id)
            pending = _new_attempt(invoice, PaymentTrigger.CUSTOMER, method)
    except StaleDataError:
        db.session.rollback()
        raise Conflict(RELOAD) from None
    except Exception:
        db.session.rollback()
        raise
    return _send(pending).payment


def _chosen_method(user: User, payment_method_id: int | None) -> PaymentMethod:
    if payment_method_id is None:
        method = _default_method(user.id)
        if method is None:
            raise InvalidInput("Add a card first: there is no payment method on file.")
        return method
    method = db.session.scalar(select(PaymentMethod).where(
        PaymentMethod.id == payment_method_id, PaymentMethod.user_id == user.id, PaymentMethod.removed_at.is_(None)))
    if method is None:
        raise NotFound("There is no such payment method.")
    return method


# --- the provider's webhooks -----------------------------------------------------------------------------------

def _attempt_named_in(tenant: TenantLike, data: dict[str, object]) -> Payment | None:
    """The pending attempt whose id the charge carries in its metadata (set when it was sent), or None."""
    metadata = data.get("metadata")
    payment_id = str(metadata.get("payment_id", "")) if isinstance(metadata, dict) else ""
    if not payment_id.isdigit() or len(payment_id) > 12:
        return None
    return db.session.scalar(select(Payment).where(Payment.tenant_id == tenant.id, Payment.id == int(payment_id),
                                                   Payment.external_id.is_(None)))


def on_payment_event(tenant: TenantLike, event: ProviderEvent) -> str:
    """Settle the attempt a webhook is about: payment_intent.succeeded, payment_intent.payment_failed or
    charge.refunded, found by the charge's id at the provider. Idempotent: an event about an attempt already
    settled that way changes nothing. Returns what was done, for the webhook log."""
    data = event.data
    if event.type == "charge.refunded":
        external_id = str(data.get("payment_intent") or data.get("id") or "")
    else:
        external_id = str(data.get("id") or "")
    if not external_id:
        return "ignored: the event names no charge"
    payment = db.session.scalar(select(Payment).where(Payment.tenant_id == tenant.id,
                                                      Payment.external_id == external_id))
    if payment is None and event.type != "charge.refunded":  # its answer was lost: the charge names the attempt
        payment = _attempt_named_in(tenant, data)
    if payment is None:
        db.session.rollback()
        return f"ignored: no payment {external_id}"
    amount = int(data.get("amount_received") or data.get("amount") or payment.amount_minor)
    currency = str(data.get("currency") or payment.currency).upper()
    if event.type == "payment_intent.succeeded":
        outcome = ChargeOutcome(external_id, ChargeStatus.SUCCEEDED, amount, currency)
    elif event.type == "payment_intent.payment_failed":
        error = data.get("last_payment_error") or {}
        outcome = ChargeOutcome(external_id, ChargeStatus.FAILED, amount, currency,
                                str(error.get("decline_code") or error.get("code") or "card_declined"),
                                str(error.get("message") or "Your card was declined."))
    elif event.type == "charge.refunded":
        return _refunded(payment)
    else:
        return f"ignored: {event.type}"
    return _settle(payment.id, outcome).result


def _refunded(payment: Payment) -> str:
    invoice = _lock(payment.invoice_id)
    payment = db.session.get(Payment, payment.id, populate_existing=True)
    if payment is None or payment.status is PaymentStatus.REFUNDED:
        db.session.rollback()
        return "already refunded"
    if payment.status is not PaymentStatus.SUCCEEDED:
        db.session.rollback()
        return f"ignored: payment {payment.id} is {payment.status.value}"
    payment.status = PaymentStatus.REFUNDED
    log.info("invoice %s: payment %s refunded at the provider", invoice.id, payment.id)
    _commit()
    return "refunded"


# --- one attempt: written, sent, settled ---------------------------------------------------------------------

def _pending_attempt(invoice: Invoice) -> Payment | None:
    return db.session.scalar(select(Payment).where(Payment.invoice_id == invoice.id,
                                                   Payment.status == PaymentStatus.PENDING)
                             .order_by(Payment.attempt.desc()).limit(1))


def _default_method(user_id: int) -> PaymentMethod | None:
    return db.session.scalar(select(PaymentMethod).where(PaymentMethod.user_id == user_id,
                                                         PaymentMethod.is_default, PaymentMethod.removed_at.is_(None)))


def _new_attempt(invoice: Invoice, trigger: PaymentTrigger, method: PaymentMethod | None) -> Payment:
    """Write attempt N+1 of the locked invoice and commit it, before anyone asks the provider."""
    attempt = (db.session.scalar(select(func.max(Payment.attempt)).where(Payment.invoice_id == invoice.id)) or 0) + 1
    payment = Payment(
        tenant_id=invoice.tenant_id, invoice_id=invoice.id, user_id=invoice.user_id,
        payment_method_id=method.id if method else None, attempt=attempt, trigger=trigger,
        provider=method.provider if method else "", idempotency_key=f"invoice-{invoice.id}-attempt-{attempt}",
        amount_minor=invoice.amount_due_minor, currency=invoice.currency, status=PaymentStatus.PENDING,
        created_at=now(),
    )
    db.session.add(payment)
    try:
        db.session.commit()
    except IntegrityError:  # the same attempt written by a concurrent request first (no row locks on SQLite)
        db.session.rollback()
        raise Conflict(RELOAD) from None
    return payment


def _send(payment: Payment) -> _Try:
    """Ask the provider to make the pending attempt's charge (again, with its key) and settle what it says."""
    payment_id, invoice_id = payment.id, payment.invoice_id
    method = db.session.get(PaymentMethod, payment.payment_method_id) if payment.payment_method_id else None
    if method is None:
        outcome = ChargeOutcome(None, ChargeStatus.FAILED, payment.amount_minor, payment.currency,
                                NO_PAYMENT_METHOD, NO_CARD_MESSAGE)
        return _settle(payment_id, outcome)
    customer = db.session.scalar(select(PaymentCustomer.external_id).where(
        PaymentCustomer.user_id == payment.user_id, PaymentCustomer.provider == method.provider))
    invoice = db.session.get(Invoice, invoice_id)
    assert invoice is not None
    request = {"customer_id": customer or "", "card_id": method.external_id, "amount_minor": payment.amount_minor,
               "currency": payment.currency, "description": f"Invoice {invoice.number}",
               "idempotency_key": payment.idempotency_key,
               "metadata": {"invoice_id": str(invoice_id), "payment_id": str(payment_id)}}
    tenant_id = payment.tenant_id
    db.session.rollback()  # no transaction (and no lock) is held while the provider is asked
    try:
        provider = provider_for(_tenant(tenant_id))
        outcome = provider.charge(**request)  # type: ignore[arg-type]
    except PaymentError as error:
        if error.retryable or error.kind is PaymentErrorKind.AUTH:
            # Not a decline: the charge may or may not be made. The attempt stays pending and is sent again,
            # with the same key, by the next run or the customer's next "Pay now".
            log.warning("invoice %s: attempt %s left pending: %s", invoice_id, payment_id, error)
            _due_at_the_next_run(invoice_id)
            pending = db.session.get(Payment, payment_id)
            assert pending is not None
            return _Try(pending, "pending")
        outcome = ChargeOutcome(None, ChargeStatus.FAILED, request["amount_minor"], request["currency"],  # type: ignore[arg-type]
                                error.kind.value, error.message[:300])
    return _settle(payment_id, outcome)


def _due_at_the_next_run(invoice_id: int) -> None:
    """A pending attempt is sent again by the next run, also when no scheduled try was due (a "Pay now")."""
    moment = now()
    db.session.execute(update(Invoice).where(
        Invoice.id == invoice_id, Invoice.status == InvoiceStatus.OPEN,
        or_(Invoice.next_attempt_at.is_(None), Invoice.next_attempt_at > moment),
    ).values(next_attempt_at=moment, version=Invoice.version + 1))
    db.session.commit()


def _tenant(tenant_id: int) -> Tenant:
    tenant = db.session.get(Tenant, tenant_id)
    assert tenant is not None
    return tenant


def _lock(invoice_id: int) -> Invoice:
    invoice = db.session.scalar(select(Invoice).where(Invoice.id == invoice_id).with_for_update()
                                .execution_options(populate_existing=True))
    assert invoice is not None
    return invoice


def _settle(payment_id: int, outcome: ChargeOutcome) -> _Try:
    """Record the provider's answer on a pending attempt, under the invoice's lock; once only."""
    payment = db.session.get(Payment, payment_id)
    assert payment is not None
    invoice = _lock(payment.invoice_id)
    db.session.refresh(payment)
    if payment.status is not PaymentStatus.PENDING:  # settled already (a webhook, a racing request)
        db.session.rollback()
        return _Try(payment, "skipped")
    payment.external_id = outcome.external_id or payment.external_id
    if outcome.status is ChargeStatus.SUCCEEDED:
        _paid(invoice, payment)
        result = "paid"
    elif outcome.status is ChargeStatus.FAILED:
        _declined(invoice, payment, outcome)
        result = "failed"
    else:  # processing: a webhook settles it; until then it is asked about again, with its key, now and then
        if invoice.status is InvoiceStatus.OPEN:
            invoice.next_attempt_at = now() + PROCESSING_RECHECK
        result = "pending"
    _commit()
    return _Try(payment, result)


def _commit() -> None:
    try:
        db.session.commit()
    except StaleDataError:  # a concurrent writer bumped the invoice's version first (no row locks on SQLite)
        db.session.rollback()
        raise Conflict(RELOAD) from None


def _paid(invoice: Invoice, payment: Payment) -> None:
    moment = now()
    payment.status, payment.settled_at = PaymentStatus.SUCCEEDED, moment
    payment.failure_code = payment.failure_message = None
    if invoice.status is not InvoiceStatus.OPEN:  # paid twice (two cards, a late webhook): kept, for a refund
        log.error("invoice %s: payment %s succeeded on an invoice that is %s", invoice.id, payment.id,
                  invoice.status.value)
        return
    invoice.amount_paid_minor += payment.amount_minor
    invoice.amount_due_minor = max(0, invoice.amount_due_minor - payment.amount_minor)
    if invoice.amount_due_minor == 0:
        invoice.status, invoice.paid_at, invoice.next_attempt_at = InvoiceStatus.PAID, moment, None
    reinstated = _reinstate_for(invoice) if invoice.status is InvoiceStatus.PAID else []
    user = db.session.get(User, invoice.user_id)
    method = db.session.get(PaymentMethod, payment.payment_method_id) if payment.payment_method_id else None
    if user is not None:
        notify(Event.PAYMENT_RECEIVED, user=user, invoice=invoice, payment=payment, method=method,
               reinstated=reinstated)
    log.info("invoice %s: paid by payment %s (attempt %s)", invoice.id, payment.id, payment.attempt)


def _declined(invoice: Invoice, payment: Payment, outcome: ChargeOutcome) -> None:
    payment.status, payment.settled_at = PaymentStatus.FAILED, now()
    payment.failure_code = (outcome.failure_code or "card_declined")[:60]
    payment.failure_message = (outcome.failure_message or "The card was declined.")[:300]
    if invoice.status is not InvoiceStatus.OPEN:
        return
    if payment.trigger is not PaymentTrigger.CUSTOMER:  # the customer's own tries do not move the schedule
        settings = settings_for(_tenant(invoice.tenant_id))
        invoice.attempt_count += 1
        invoice.next_attempt_at = next_attempt(_first_try(invoice, payment), settings.retry_days,
                                               invoice.attempt_count)
        user = db.session.get(User, invoice.user_id)
        method = db.session.get(PaymentMethod, payment.payment_method_id) if payment.payment_method_id else None
        suspension = suspends_at(invoice.due_at, settings.suspend_after_days) if invoice.due_at else None
        if user is not None:
            notify(Event.PAYMENT_FAILED, user=user, invoice=invoice, payment=payment, method=method,
                   next_attempt_at=invoice.next_attempt_at, invoice_path=_path("billing.invoice", invoice.id),
                   suspends_at=suspension if suspension and suspension > now() else None)
    log.info("invoice %s: attempt %s failed: %s", invoice.id, payment.attempt, payment.failure_code)


def _first_try(invoice: Invoice, payment: Payment) -> datetime:
    """When the schedule started: the invoice's first scheduled try."""
    first = db.session.scalar(select(func.min(Payment.created_at)).where(
        Payment.invoice_id == invoice.id, Payment.trigger != PaymentTrigger.CUSTOMER))
    return first or payment.created_at


def _path(endpoint: str, invoice_id: int) -> str:
    return current_app.url_map.bind("localhost").build(endpoint, {"invoice_id": invoice_id})


# --- reinstating what non-payment suspended ---------------------------------------------------------------

def billed_subscription_ids(invoice_id: int) -> list[int]:
    """The subscriptions an invoice bills (its lines name them)."""
    return list(db.session.scalars(select(Charge.subscription_id).where(Charge.invoice_id == invoice_id)
                                   .distinct().order_by(Charge.subscription_id)))


def _reinstate_for(invoice: Invoice) -> list[str]:
    """Reinstate, in the paying transaction, the subscriptions this invoice's non-payment suspended, unless
    another invoice of theirs is still overdue. Returns their names for the receipt."""
    settings = settings_for(_tenant(invoice.tenant_id))
    done = []
    for subscription_id in billed_subscription_ids(invoice.id):
        subscription = db.session.scalar(select(Subscription).where(Subscription.id == subscription_id)
                                         .with_for_update())
        if subscription is None or subscription.status is not SubscriptionStatus.SUSPENDED \
                or suspension_invoice(subscription.id) is None:
            continue
        if _still_overdue(subscription_id, invoice.id, settings.suspend_after_days):
            continue
        try:
            lifecycle.apply(subscription, Action.REINSTATE, actor=Actor.system("collection"),
                            reason=f"Invoice {invoice.number} was paid.", invoice=invoice.id)
        except ServiceError as error:  # the grace ended in this very moment: it stays as it is
            log.info("subscription %s not reinstated: %s", subscription_id, error.message)
            continue
        done.append(f"#{subscription.id} {subscription.plan.name}")
    return done


def _still_overdue(subscription_id: int, paid_invoice_id: int, suspend_after_days: int) -> bool:
    limit = now() - timedelta(days=suspend_after_days)
    return db.session.scalar(select(func.count(Invoice.id)).join(Charge, Charge.invoice_id == Invoice.id).where(
        Charge.subscription_id == subscription_id, Invoice.id != paid_invoice_id,
        Invoice.status == InvoiceStatus.OPEN, Invoice.due_at <= limit)) > 0
