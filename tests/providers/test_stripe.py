"""The Stripe adapter against the fake Stripe API, over real HTTP on loopback, through the real `stripe` SDK."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import requests

from app.providers.payments.base import ChargeStatus, PaymentError, PaymentErrorKind
from app.providers.payments.stripe_payments import StripePayments
from app.sandbox import FakeServer, serve
from app.sandbox.stripe_api import StripeFake, sandbox_key, sign

RETURN = "http://127.0.0.1:9/billing/payment-methods/added?session_id={CHECKOUT_SESSION_ID}"
SECRET = "whsec_test_secret"


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[StripeFake, FakeServer]]:
    fake = StripeFake()
    server = serve(fake)
    yield fake, server
    server.shutdown()


@pytest.fixture
def fake(served: tuple[StripeFake, FakeServer]) -> StripeFake:
    served[0].reset()
    return served[0]


@pytest.fixture
def stripe(served: tuple[StripeFake, FakeServer], fake: StripeFake) -> StripePayments:
    return StripePayments(sandbox_key("acme"), endpoint=served[1].url, timeout=2)


def _save_card(stripe: StripePayments, number: str) -> tuple[str, requests.Response, str]:
    customer = stripe.create_customer(email="ada@example.test", name="Ada", reference="1", idempotency_key="u1")
    page = stripe.start_card_setup(customer_id=customer, success_url=RETURN, cancel_url="http://127.0.0.1:9/c",
                                   metadata={"setup": "1"})
    answer = requests.post(page.url, data={"number": number, "expiry": "12 / 34", "cvc": "123"},
                           allow_redirects=False, timeout=5)
    return customer, answer, page.external_id


def _charge(stripe: StripePayments, customer: str, card: str, key: str, amount: int = 1999):
    return stripe.charge(customer_id=customer, card_id=card, amount_minor=amount, currency="EUR",
                         description="INV-1", idempotency_key=key, metadata={"invoice": "1"})


def test_a_saved_card_is_read_back_and_charged(stripe: StripePayments, fake: StripeFake) -> None:
    stripe.check()
    customer, answer, session_id = _save_card(stripe, "4242 4242 4242 4242")
    assert answer.status_code == 303
    assert answer.headers["Location"].endswith(f"session_id={session_id}")
    result = stripe.setup_result(session_id)
    assert result.status == "complete" and result.metadata == {"setup": "1"}
    assert (result.card.brand, result.card.last4, result.card.exp_month, result.card.exp_year) == (
        "visa", "4242", 12, 2034)
    outcome = _charge(stripe, customer, result.card.external_id, "pay-1")
    assert outcome.status is ChargeStatus.SUCCEEDED and outcome.external_id.startswith("pi_")
    assert fake.succeeded_charges("acme")[0]["currency"] == "eur"
    refund = stripe.refund(payment_id=outcome.external_id, amount_minor=500, idempotency_key="refund-1")
    assert (refund.status, refund.amount_minor) == ("succeeded", 500)
    stripe.detach(result.card.external_id)
    assert [e["type"] for e in fake.events] == ["setup_intent.succeeded", "checkout.session.completed",
                                                "payment_intent.succeeded", "charge.refunded"]


def test_the_same_idempotency_key_makes_one_customer(stripe: StripePayments) -> None:
    first = stripe.create_customer(email="a@example.test", name="A", reference="1", idempotency_key="k")
    assert stripe.create_customer(email="a@example.test", name="A", reference="1", idempotency_key="k") == first


@pytest.mark.parametrize(("number", "message"), [("4000 0000 0000 0002", "Your card was declined."),
                                                 ("4000000000009995", "Your card has insufficient funds."),
                                                 ("1234 5678 9012 3456", "Your card number is invalid")])
def test_refused_cards_are_not_saved(stripe: StripePayments, number: str, message: str) -> None:
    _, answer, session_id = _save_card(stripe, number)
    assert answer.status_code == 402 and message in answer.text
    assert stripe.setup_result(session_id).status == "open"


def test_the_0341_card_saves_then_every_charge_fails(stripe: StripePayments, fake: StripeFake) -> None:
    customer, _, session_id = _save_card(stripe, "4000 0000 0000 0341")
    card = stripe.setup_result(session_id).card
    outcome = _charge(stripe, customer, card.external_id, "pay-1")
    assert outcome.status is ChargeStatus.FAILED and outcome.failure_code == "card_declined"
    assert outcome.external_id.startswith("pi_") and outcome.failure_message == "Your card was declined."
    assert fake.events[-1]["type"] == "payment_intent.payment_failed"


def test_a_declined_charge_is_an_outcome_with_the_decline_code(stripe: StripePayments, fake: StripeFake) -> None:
    customer, _, session_id = _save_card(stripe, "4242424242424242")
    fake.decline_next(1, "insufficient_funds")
    outcome = _charge(stripe, customer, stripe.setup_result(session_id).card.external_id, "pay-1")
    assert (outcome.status, outcome.failure_code) == (ChargeStatus.FAILED, "insufficient_funds")


def test_a_lost_answer_retried_with_its_key_charges_once(stripe: StripePayments, fake: StripeFake) -> None:
    customer, _, session_id = _save_card(stripe, "4242424242424242")
    card = stripe.setup_result(session_id).card.external_id
    fake.lose_next(1)
    with pytest.raises(PaymentError) as lost:
        _charge(stripe, customer, card, "pay-1")
    assert lost.value.kind is PaymentErrorKind.TRANSIENT and lost.value.retryable
    again = _charge(stripe, customer, card, "pay-1")
    assert again.status is ChargeStatus.SUCCEEDED
    assert len(fake.succeeded_charges("acme")) == 1


def test_a_slow_answer_times_out_as_transient(stripe: StripePayments, fake: StripeFake) -> None:
    fake.delay_next(3)
    with pytest.raises(PaymentError) as slow:
        stripe.check()
    assert slow.value.kind is PaymentErrorKind.TRANSIENT


def test_a_bad_key_is_an_auth_error(served: tuple[StripeFake, FakeServer], fake: StripeFake) -> None:
    with pytest.raises(PaymentError) as refused:
        StripePayments("sk_live_not_here", endpoint=served[1].url, timeout=2).check()
    assert refused.value.kind is PaymentErrorKind.AUTH


def test_unknown_ids_are_not_found(stripe: StripePayments) -> None:
    with pytest.raises(PaymentError) as missing:
        stripe.setup_result("cs_missing")
    assert missing.value.kind is PaymentErrorKind.NOT_FOUND


def test_accounts_do_not_see_each_other(served: tuple[StripeFake, FakeServer], stripe: StripePayments) -> None:
    _, _, session_id = _save_card(stripe, "4242424242424242")
    other = StripePayments(sandbox_key("other"), endpoint=served[1].url, timeout=2)
    with pytest.raises(PaymentError):
        other.setup_result(session_id)


PAYLOAD = b'{"id": "evt_1", "object": "event", "type": "checkout.session.completed", "data": {"object": {"id": "cs_1"}}}'


def test_a_signed_event_is_read(stripe: StripePayments) -> None:
    event = stripe.parse_event(PAYLOAD, sign(PAYLOAD, SECRET, int(time.time())), SECRET)
    assert (event.external_id, event.type, event.data) == ("evt_1", "checkout.session.completed", {"id": "cs_1"})


@pytest.mark.parametrize("signature", [sign(PAYLOAD, "whsec_other", int(time.time())),
                                       sign(PAYLOAD, SECRET, int(time.time()) - 3600), "", "t=1,v1=00"])
def test_a_bad_or_stale_signature_is_invalid(stripe: StripePayments, signature: str) -> None:
    with pytest.raises(PaymentError) as refused:
        stripe.parse_event(PAYLOAD, signature, SECRET)
    assert refused.value.kind is PaymentErrorKind.INVALID


def test_a_signed_payload_that_is_no_event_is_invalid(stripe: StripePayments) -> None:
    with pytest.raises(PaymentError):
        stripe.parse_event(b"[1]", sign(b"[1]", SECRET, int(time.time())), SECRET)
