"""The protocol every payment adapter implements, the values it returns and the errors it raises.

Card numbers never reach the portal: a customer types them on the provider's hosted page
(`start_card_setup`), and the portal keeps only the ids, brand, last four digits and expiry it gets back.
Amounts are integers in the currency's minor unit; currencies are upper case, as everywhere in the portal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol


class PaymentErrorKind(StrEnum):
    AUTH = "auth"  # the key is wrong or revoked: fail fast, tell the operator
    INVALID = "invalid"  # the request can never succeed as sent
    NOT_FOUND = "not_found"
    RATE_LIMITED = "rate_limited"
    TRANSIENT = "transient"  # timeouts, 5xx, a lost answer: retry with the same idempotency key


RETRYABLE = frozenset({PaymentErrorKind.RATE_LIMITED, PaymentErrorKind.TRANSIENT})


class PaymentError(Exception):
    """The provider could not be asked, or refused the request (a declined card is not an error: see
    `ChargeOutcome`). `message` is fit for the operator's log and, for INVALID, for the customer."""

    def __init__(self, kind: PaymentErrorKind, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message

    @property
    def retryable(self) -> bool:
        return self.kind in RETRYABLE


@dataclass(frozen=True)
class Card:
    """A saved card as the portal keeps it."""

    external_id: str
    brand: str
    last4: str
    exp_month: int
    exp_year: int


@dataclass(frozen=True)
class SetupPage:
    """A hosted page where the customer types a card; `url` is where to send their browser."""

    external_id: str
    url: str


@dataclass(frozen=True)
class SetupResult:
    """What became of a hosted setup page: `complete` with the card saved, still `open`, or `expired`."""

    external_id: str
    status: str
    card: Card | None = None
    metadata: dict[str, str] = field(default_factory=dict)


class ChargeStatus(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # declined: the card said no (not retried at once; the dunning schedule decides)
    PROCESSING = "processing"  # settles later; a webhook tells


@dataclass(frozen=True)
class ChargeOutcome:
    """The answer to one charge: its id at the provider, and for a failure the decline's code and message."""

    external_id: str | None
    status: ChargeStatus
    amount_minor: int
    currency: str
    failure_code: str | None = None
    failure_message: str | None = None


@dataclass(frozen=True)
class Refund:
    external_id: str
    status: str  # succeeded, pending, failed
    amount_minor: int


@dataclass(frozen=True)
class ProviderEvent:
    """A verified webhook event: its id (handled once), type and the object it is about."""

    external_id: str
    type: str
    data: dict[str, Any]


class PaymentProvider(Protocol):
    """One merchant account at a payment provider (a tenant's Stripe account, or the sandbox's)."""

    name: str  # "stripe" or "sandbox": stored beside every external id

    def check(self) -> None:
        """Raise PaymentError(AUTH) unless the provider accepts these credentials (one cheap read)."""

    def create_customer(self, *, email: str, name: str, reference: str, idempotency_key: str) -> str:
        """A customer at the provider for the portal's user `reference`; returns its id."""

    def start_card_setup(self, *, customer_id: str, success_url: str, cancel_url: str,
                         metadata: dict[str, str]) -> SetupPage:
        """A hosted page (Checkout in setup mode) where the customer saves a card."""

    def setup_result(self, external_id: str) -> SetupResult:
        """What became of a setup page: read back when the customer returns and when its webhook arrives."""

    def detach(self, card_id: str) -> None:
        """Forget a saved card at the provider (it can never be charged again)."""

    def charge(self, *, customer_id: str, card_id: str, amount_minor: int, currency: str, description: str,
               idempotency_key: str, metadata: dict[str, str]) -> ChargeOutcome:
        """Charge a saved card off-session, now. The same idempotency key is the same charge, however often
        it is sent: a request whose answer was lost is sent again with its key, never as a new charge."""

    def refund(self, *, payment_id: str, amount_minor: int, idempotency_key: str) -> Refund:
        """Give back (part of) a succeeded charge."""

    def parse_event(self, payload: bytes, signature: str, secret: str) -> ProviderEvent:
        """The webhook event in `payload`, after checking its signature with the endpoint `secret`;
        PaymentError(INVALID) for a bad or stale signature or a payload that is not an event."""
