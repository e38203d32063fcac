"""Collecting open invoices: the billing run's tries on the retry schedule, "Pay now", lost answers, crashes,
and the provider's webhooks. Nothing is ever charged twice (the sandbox counts the charges that took money)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from app.domain.billing import InvoiceStatus, PaymentStatus, PaymentTrigger
from app.domain.dunning import next_attempt
from app.extensions import db
from app.models import BillingSettings, EmailMessage, Invoice, Payment
from app.providers.payments.base import PaymentError, PaymentErrorKind, ProviderEvent
from app.sandbox.payments import SandboxPayments, ledger
from app.services import billing_run, collection
from app.services.actors import Actor
from app.services.errors import Conflict, Forbidden, InvalidInput, NotFound
from tests import factories
from tests.services.cards import FAILS_EVERY_CHARGE, save_card


@pytest.fixture
def subscription(tenant, customer, plan):  # type: ignore[no-untyped-def]
    return factories.subscription(tenant, customer, plan)


@pytest.fixture
def invoice(subscription, clock):  # type: ignore[no-untyped-def]
    return factories.invoice(subscription, next_attempt_at=clock.now())


def payments_of(invoice: Invoice) -> list[Payment]:
    db.session.expire_all()
    return list(db.session.scalars(select(Payment).where(Payment.invoice_id == invoice.id).order_by(Payment.attempt)))


def emails(event: str) -> list[EmailMessage]:
    return list(db.session.scalars(select(EmailMessage).where(EmailMessage.event == event).order_by(EmailMessage.id)))


def fresh(invoice: Invoice) -> Invoice:
    db.session.expire_all()
    return db.session.get(Invoice, invoice.id)


def collect(clock) -> str:  # type: ignore[no-untyped-def]
    return collection.collect_due(clock.now())


def test_next_attempt_counts_from_the_first_try(clock):
    first = clock.now()
    assert [next_attempt(first, [3, 5, 7], n) for n in (1, 2, 3, 4)] == [
        first + timedelta(days=3), first + timedelta(days=5), first + timedelta(days=7), None]


def test_the_default_card_pays_the_invoice_with_a_receipt(tenant, customer, invoice, clock):
    save_card(tenant, customer)
    assert collect(clock) == "collection: 1 paid, 0 declined, 0 pending"
    paid = fresh(invoice)
    assert paid.status is InvoiceStatus.PAID and paid.amount_due_minor == 0 and paid.amount_paid_minor == 990
    assert paid.paid_at == clock.now() and paid.next_attempt_at is None
    [payment] = payments_of(invoice)
    assert payment.status is PaymentStatus.SUCCEEDED and payment.trigger is PaymentTrigger.AUTOMATIC
    assert payment.idempotency_key == f"invoice-{invoice.id}-attempt-1" and payment.external_id
    assert len(SandboxPayments(tenant.id).succeeded_charges) == 1
    [receipt] = emails("payment_received")
    assert invoice.number in receipt.subject and "€9.90" in receipt.text_body
    assert collect(clock) == "collection: 0 paid, 0 declined, 0 pending"  # nothing due any more


def test_the_step_runs_in_the_billing_run(tenant, customer, invoice, clock):
    save_card(tenant, customer)
    assert "collection: 1 paid" in billing_run.run()


def test_a_declined_card_is_retried_on_day_3_5_and_7_then_no_more(tenant, customer, invoice, clock):
    save_card(tenant, customer, FAILS_EVERY_CHARGE)
    start = clock.now()
    assert collect(clock) == "collection: 0 paid, 1 declined, 0 pending"
    assert fresh(invoice).next_attempt_at == start + timedelta(days=3)
    [failed] = emails("payment_failed")
    assert "Reason: " in failed.text_body and "try again on" in failed.text_body
    assert f"/billing/payment-methods?invoice={invoice.id}&next=/billing/invoices/{invoice.id}" \
        in failed.text_body

    clock.advance(days=2)
    assert collect(clock) == "collection: 0 paid, 0 declined, 0 pending"  # not due yet
    for day, following in ((3, 5), (5, 7)):
        clock.set(start + timedelta(days=day, hours=1))  # the hourly run, a little after the due moment
        assert collect(clock) == "collection: 0 paid, 1 declined, 0 pending"
        assert fresh(invoice).next_attempt_at == start + timedelta(days=following)  # from the first try
    clock.set(start + timedelta(days=7))
    collect(clock)
    done = fresh(invoice)
    assert done.attempt_count == 4 and done.next_attempt_at is None and done.status is InvoiceStatus.OPEN
    payments = payments_of(invoice)
    assert [p.attempt for p in payments] == [1, 2, 3, 4]
    assert [p.trigger for p in payments] == [PaymentTrigger.AUTOMATIC] + [PaymentTrigger.RETRY] * 3
    assert {p.status for p in payments} == {PaymentStatus.FAILED}
    assert payments[0].failure_code == "card_declined" and payments[0].failure_message
    assert len(emails("payment_failed")) == 4
    assert "will not try again" in emails("payment_failed")[-1].text_body
    clock.advance(days=30)
    assert collect(clock) == "collection: 0 paid, 0 declined, 0 pending"


def test_the_tenants_retry_days_decide(tenant, customer, invoice, clock):
    db.session.add(BillingSettings(tenant_id=tenant.id, retry_days=[1, 2]))
    db.session.commit()
    save_card(tenant, customer, FAILS_EVERY_CHARGE)
    collect(clock)
    assert fresh(invoice).next_attempt_at == clock.now() + timedelta(days=1)


def test_no_card_on_file_is_a_failed_try_with_that_reason(tenant, customer, invoice, clock):
    collect(clock)
    [payment] = payments_of(invoice)
    assert payment.status is PaymentStatus.FAILED and payment.failure_code == "no_payment_method"
    assert payment.failure_message == "No payment method on file."
    assert fresh(invoice).next_attempt_at == clock.now() + timedelta(days=3)
    [failed] = emails("payment_failed")
    assert "No payment method on file." in failed.text_body


def test_a_lost_answer_is_sent_again_with_the_same_key_and_charges_once(tenant, customer, invoice, clock):
    save_card(tenant, customer)
    ledger(tenant.id).lost_answers = 1
    assert collect(clock) == "collection: 0 paid, 0 declined, 1 pending"
    [pending] = payments_of(invoice)
    assert pending.status is PaymentStatus.PENDING and fresh(invoice).attempt_count == 0  # not a decline
    assert not emails("payment_failed")
    assert collect(clock) == "collection: 1 paid, 0 declined, 0 pending"
    [payment] = payments_of(invoice)
    assert payment.id == pending.id and payment.status is PaymentStatus.SUCCEEDED
    assert list(ledger(tenant.id).charges) == [f"invoice-{invoice.id}-attempt-1"]
    assert len(SandboxPayments(tenant.id).succeeded_charges) == 1


def test_an_outage_leaves_the_try_pending(tenant, customer, invoice, clock):
    save_card(tenant, customer)
    ledger(tenant.id).faults.append(PaymentError(PaymentErrorKind.TRANSIENT, "503"))
    assert collect(clock) == "collection: 0 paid, 0 declined, 1 pending"
    assert collect(clock) == "collection: 1 paid, 0 declined, 0 pending"
    assert len(payments_of(invoice)) == 1


def test_a_crash_after_the_pending_row_resends_the_same_key(tenant, customer, invoice, clock, monkeypatch):
    save_card(tenant, customer)
    real = collection.provider_for

    class DiesAfterCharging:
        def __init__(self, tenant):  # type: ignore[no-untyped-def]
            self.inner = real(tenant)

        def charge(self, **request):  # type: ignore[no-untyped-def]
            self.inner.charge(**request)
            raise RuntimeError("the worker died before it wrote the answer")

    monkeypatch.setattr(collection, "provider_for", DiesAfterCharging)
    assert "1 skipped" in collect(clock)
    [pending] = payments_of(invoice)
    assert pending.status is PaymentStatus.PENDING
    monkeypatch.setattr(collection, "provider_for", real)
    collect(clock)
    [payment] = payments_of(invoice)
    assert payment.status is PaymentStatus.SUCCEEDED and fresh(invoice).status is InvoiceStatus.PAID
    assert list(ledger(tenant.id).charges) == [f"invoice-{invoice.id}-attempt-1"]
    assert len(SandboxPayments(tenant.id).succeeded_charges) == 1


# --- Pay now ---------------------------------------------------------------------------------------------------

def pay(tenant, customer, invoice, **kwargs):  # type: ignore[no-untyped-def]
    return collection.pay_invoice(tenant=tenant, actor=Actor(customer), invoice_id=invoice.id, **kwargs)


def test_pay_now_with_another_card_after_a_decline(tenant, customer, invoice, clock):
    save_card(tenant, customer, FAILS_EVERY_CHARGE)
    collect(clock)
    good = save_card(tenant, customer, default=False)
    payment = pay(tenant, customer, invoice, payment_method_id=good.id)
    assert payment.status is PaymentStatus.SUCCEEDED and payment.trigger is PaymentTrigger.CUSTOMER
    assert payment.attempt == 2 and payment.payment_method_id == good.id
    assert fresh(invoice).status is InvoiceStatus.PAID
    with pytest.raises(Conflict, match="already paid"):
        pay(tenant, customer, invoice)
    assert len(SandboxPayments(tenant.id).succeeded_charges) == 1


def test_a_customers_own_decline_does_not_move_the_schedule(tenant, customer, invoice, clock):
    save_card(tenant, customer, FAILS_EVERY_CHARGE)
    collect(clock)
    planned = fresh(invoice).next_attempt_at
    payment = pay(tenant, customer, invoice)
    assert payment.status is PaymentStatus.FAILED and payment.failure_message
    assert fresh(invoice).next_attempt_at == planned and fresh(invoice).attempt_count == 1


def test_racing_pay_now_requests_charge_once(tenant, customer, invoice, clock):
    """The second request comes while the first one's answer is lost: it sends the same attempt again."""
    save_card(tenant, customer)
    ledger(tenant.id).lost_answers = 1
    first = pay(tenant, customer, invoice)
    assert first.status is PaymentStatus.PENDING
    second = pay(tenant, customer, invoice)
    assert second.id == first.id and second.status is PaymentStatus.SUCCEEDED
    assert collect(clock) == "collection: 0 paid, 0 declined, 0 pending"
    assert len(payments_of(invoice)) == 1 and len(SandboxPayments(tenant.id).succeeded_charges) == 1


def test_a_lost_answer_to_pay_now_is_sent_again_by_the_next_run(tenant, customer, invoice, clock):
    save_card(tenant, customer)
    row = fresh(invoice)
    row.next_attempt_at = None  # no scheduled try planned (retries used up)
    db.session.commit()
    ledger(tenant.id).lost_answers = 1
    assert pay(tenant, customer, invoice).status is PaymentStatus.PENDING
    assert fresh(invoice).next_attempt_at == clock.now()
    assert collect(clock) == "collection: 1 paid, 0 declined, 0 pending"
    assert len(payments_of(invoice)) == 1 and len(SandboxPayments(tenant.id).succeeded_charges) == 1


def test_pay_now_refusals(tenant, customer, plan, invoice, clock, support, other_tenant):
    with pytest.raises(InvalidInput, match="Add a card"):
        pay(tenant, customer, invoice)
    save_card(tenant, customer)
    with pytest.raises(Forbidden):
        collection.pay_invoice(tenant=tenant, actor=Actor(customer, impersonator=support), invoice_id=invoice.id)
    with pytest.raises(NotFound):
        collection.pay_invoice(tenant=other_tenant, actor=Actor(customer), invoice_id=invoice.id)
    stranger = factories.user(tenant, email="stranger@example.com")
    with pytest.raises(NotFound):
        pay(tenant, stranger, invoice)
    with pytest.raises(NotFound):
        pay(tenant, customer, invoice, payment_method_id=999999)
    void = factories.invoice(factories.subscription(tenant, customer, plan), status=InvoiceStatus.VOID)
    with pytest.raises(InvalidInput, match="void"):
        pay(tenant, customer, void)
    assert not payments_of(invoice) and not SandboxPayments(tenant.id).succeeded_charges


# --- webhooks ---------------------------------------------------------------------------------------------------

def test_a_processing_charge_settles_by_webhook_once(tenant, customer, invoice, clock, monkeypatch):
    save_card(tenant, customer)
    ledger(tenant.id).lost_answers = 1
    collect(clock)
    # The lost answer was a charge the provider made; its id arrives with the webhook.
    [outcome] = ledger(tenant.id).charges.values()
    db.session.get(Payment, payments_of(invoice)[0].id).external_id = outcome.external_id
    db.session.commit()
    event = ProviderEvent("evt_1", "payment_intent.succeeded", {"id": outcome.external_id, "amount_received": 990,
                                                                 "currency": "eur"})
    assert collection.on_payment_event(tenant, event) == "paid"
    assert collection.on_payment_event(tenant, event) == "skipped"  # the same event again changes nothing
    assert fresh(invoice).status is InvoiceStatus.PAID and len(emails("payment_received")) == 1
    refunded = ProviderEvent("evt_2", "charge.refunded", {"id": "ch_1", "payment_intent": outcome.external_id})
    assert collection.on_payment_event(tenant, refunded) == "refunded"
    assert collection.on_payment_event(tenant, refunded) == "already refunded"
    assert collection.on_payment_event(tenant, ProviderEvent("evt_3", "payment_intent.succeeded",
                                                             {"id": "pi_unknown"})).startswith("ignored")
    assert collection.on_payment_event(other_tenant_like(tenant), event).startswith("ignored")


def other_tenant_like(tenant):  # type: ignore[no-untyped-def]
    return factories.tenant(slug="elsewhere", name="Elsewhere", hosts=["elsewhere.test"])


def test_a_failed_webhook_counts_as_a_decline(tenant, customer, invoice, clock):
    save_card(tenant, customer)
    ledger(tenant.id).lost_answers = 1
    collect(clock)
    payment = payments_of(invoice)[0]
    payment.external_id = "pi_webhook"
    db.session.commit()
    event = ProviderEvent("evt_1", "payment_intent.payment_failed", {
        "id": "pi_webhook", "last_payment_error": {"decline_code": "insufficient_funds",
                                                   "message": "Your card has insufficient funds."}})
    assert collection.on_payment_event(tenant, event) == "failed"
    [failed] = payments_of(invoice)
    assert failed.failure_code == "insufficient_funds" and fresh(invoice).attempt_count == 1
    assert "insufficient funds" in emails("payment_failed")[0].text_body
