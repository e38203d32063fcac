"""`SandboxPayments`: the payment provider in process, for fast tests (no HTTP at all).

It keeps customers, setup pages, cards and charges in memory per tenant and follows the test cards of
`app.sandbox.cards`. The demo and the browser tests use the fake Stripe API instead (`stripe_api`), through
the real Stripe adapter. Both answer the same test cards the same way.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import threading
from dataclasses import dataclass, field
from typing import Any

from app.providers.payments.base import (
    Card,
    ChargeOutcome,
    ChargeStatus,
    PaymentError,
    PaymentErrorKind,
    ProviderEvent,
    Refund,
    SetupPage,
    SetupResult,
)
from app.sandbox.cards import card as test_card


@dataclass
class _Setup:
    customer_id: str
    metadata: dict[str, str]
    status: str = "open"
    card: Card | None = None


@dataclass
class _Ledger:
    customers: dict[str, str] = field(default_factory=dict)  # idempotency key -> customer id
    setups: dict[str, _Setup] = field(default_factory=dict)
    cards: dict[str, tuple[str, Card]] = field(default_factory=dict)  # card id -> (number, card)
    detached: set[str] = field(default_factory=set)
    charges: dict[str, ChargeOutcome] = field(default_factory=dict)  # idempotency key -> outcome
    refunds: dict[str, Refund] = field(default_factory=dict)
    # Faults a test asks for: the next charges raise this instead of answering (a lost answer, an outage).
    faults: list[PaymentError] = field(default_factory=list)
    lost_answers: int = 0  # the next N charges are made, but their answer is lost (TRANSIENT raised)


_ids = itertools.count(1)
_ledgers: dict[int, _Ledger] = {}
_lock = threading.Lock()


def ledger(tenant_id: int) -> _Ledger:
    with _lock:
        return _ledgers.setdefault(tenant_id, _Ledger())


def reset() -> None:
    """Forget every tenant's payments (between tests)."""
    with _lock:
        _ledgers.clear()


def _new_id(prefix: str) -> str:
    return f"{prefix}_sandbox{next(_ids):08d}"


class SandboxPayments:
    """The protocol of `app.providers.payments.base.PaymentProvider`, in memory, for one tenant."""

    name = "sandbox"

    def __init__(self, tenant_id: int) -> None:
        self.ledger = ledger(tenant_id)

    def check(self) -> None:
        return None

    def create_customer(self, *, email: str, name: str, reference: str, idempotency_key: str) -> str:
        with _lock:
            return self.ledger.customers.setdefault(idempotency_key, _new_id("cus"))

    def start_card_setup(self, *, customer_id: str, success_url: str, cancel_url: str,
                         metadata: dict[str, str]) -> SetupPage:
        session_id = _new_id("cs")
        self.ledger.setups[session_id] = _Setup(customer_id, dict(metadata))
        return SetupPage(session_id, f"{success_url.replace('{CHECKOUT_SESSION_ID}', session_id)}")

    def complete_setup(self, session_id: str, number: str, *, exp_month: int = 12, exp_year: int = 2034) -> bool:
        """What the customer does on the hosted page: type a card. False when the card is refused."""
        setup = self.ledger.setups[session_id]
        behaviour = test_card(number)
        if behaviour is None or not behaviour.saves:
            return False
        saved = Card(_new_id("pm"), behaviour.brand, number[-4:], exp_month, exp_year)
        self.ledger.cards[saved.external_id] = (number.replace(" ", ""), saved)
        setup.status, setup.card = "complete", saved
        return True

    def setup_result(self, external_id: str) -> SetupResult:
        setup = self.ledger.setups.get(external_id)
        if setup is None:
            raise PaymentError(PaymentErrorKind.NOT_FOUND, f"No such checkout session: {external_id}")
        return SetupResult(external_id, setup.status, setup.card, dict(setup.metadata))

    def detach(self, card_id: str) -> None:
        if card_id not in self.ledger.cards:
            raise PaymentError(PaymentErrorKind.NOT_FOUND, f"No such payment method: {card_id}")
        self.ledger.detached.add(card_id)

    def charge(self, *, customer_id: str, card_id: str, amount_minor: int, currency: str, description: str,
               idempotency_key: str, metadata: dict[str, str]) -> ChargeOutcome:
        if self.ledger.faults:
            raise self.ledger.faults.pop(0)
        outcome = self.ledger.charges.get(idempotency_key)
        if outcome is None:
            outcome = self.ledger.charges[idempotency_key] = self._decide(card_id, amount_minor, currency)
        if self.ledger.lost_answers:
            self.ledger.lost_answers -= 1
            raise PaymentError(PaymentErrorKind.TRANSIENT, "The connection was reset before the answer came.")
        return outcome

    def _decide(self, card_id: str, amount_minor: int, currency: str) -> ChargeOutcome:
        stored = self.ledger.cards.get(card_id)
        if stored is None or card_id in self.ledger.detached:
            raise PaymentError(PaymentErrorKind.INVALID, f"No such payment method: {card_id}")
        behaviour = test_card(stored[0])
        if behaviour is not None and behaviour.charges:
            return ChargeOutcome(_new_id("pi"), ChargeStatus.SUCCEEDED, amount_minor, currency)
        return ChargeOutcome(_new_id("pi"), ChargeStatus.FAILED, amount_minor, currency,
                             behaviour.decline_code if behaviour else "card_declined",
                             behaviour.message if behaviour else "Your card was declined.")

    @property
    def succeeded_charges(self) -> list[ChargeOutcome]:
        """Every charge that took money, once each (what a test counts to prove nothing was charged twice)."""
        return [o for o in self.ledger.charges.values() if o.status is ChargeStatus.SUCCEEDED]

    def refund(self, *, payment_id: str, amount_minor: int, idempotency_key: str) -> Refund:
        refund = self.ledger.refunds.get(idempotency_key)
        if refund is None:
            refund = self.ledger.refunds[idempotency_key] = Refund(_new_id("re"), "succeeded", amount_minor)
        return refund

    def parse_event(self, payload: bytes, signature: str, secret: str) -> ProviderEvent:
        expected = hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature):
            raise PaymentError(PaymentErrorKind.INVALID, "The signature does not match.")
        try:
            body: dict[str, Any] = json.loads(payload)
            return ProviderEvent(str(body["id"]), str(body["type"]), dict(body["data"]["object"]))
        except (ValueError, KeyError, TypeError):
            raise PaymentError(PaymentErrorKind.INVALID, "This is not an event.") from None
