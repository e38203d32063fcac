"""`StripePayments`: the payment protocol through the official `stripe` SDK, one client per merchant account.

Each adapter has its own `stripe.StripeClient` (key, API address, timeout), so tenants never share the SDK's
global settings. The SDK retries nothing itself: a failed request is the caller's to retry with the same
idempotency key. SDK errors become `PaymentError` with a kind; a declined card is an outcome, not an error.
"""

from __future__ import annotations

import json
from typing import Any

import stripe

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

STRIPE_API = "https://api.stripe.com"
SIGNATURE_TOLERANCE_SECONDS = 300  # Stripe's default: an older signature is a replay


def _kind(error: stripe.StripeError) -> PaymentErrorKind:
    if isinstance(error, stripe.AuthenticationError | stripe.PermissionError):
        return PaymentErrorKind.AUTH
    if isinstance(error, stripe.RateLimitError):
        return PaymentErrorKind.RATE_LIMITED
    if isinstance(error, stripe.APIConnectionError):
        return PaymentErrorKind.TRANSIENT
    status = error.http_status or 0
    if status == 404:
        return PaymentErrorKind.NOT_FOUND
    if status == 429:
        return PaymentErrorKind.RATE_LIMITED
    if status >= 500 or isinstance(error, stripe.APIError):
        return PaymentErrorKind.TRANSIENT
    return PaymentErrorKind.INVALID


def _translate(error: stripe.StripeError) -> PaymentError:
    message = error.user_message or str(getattr(error, "_message", None) or error) or type(error).__name__
    return PaymentError(_kind(error), message)


def _get(obj: Any, key: str, default: Any = None) -> Any:
    """A field of an SDK object or a plain dict (the SDK hands back both)."""
    if obj is None:
        return default
    try:
        value = obj[key]
    except (KeyError, TypeError, AttributeError):
        return default
    return default if value is None else value


class StripePayments:
    """One Stripe account (a tenant's, or the sandbox's fake Stripe), as the portal's payment protocol."""

    def __init__(self, api_key: str, *, endpoint: str = STRIPE_API, timeout: float = 20.0,
                 name: str = "stripe") -> None:
        self.name = name  # stored beside every id: a sandbox account's ids are not Stripe's
        self._client = stripe.StripeClient(
            api_key, base_addresses={"api": endpoint.rstrip("/")}, max_network_retries=0,
            http_client=stripe.RequestsClient(timeout=timeout))

    def _call(self, method: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except stripe.StripeError as error:
            raise _translate(error) from None

    def check(self) -> None:
        self._call(self._client.v1.customers.list, {"limit": 1})

    def create_customer(self, *, email: str, name: str, reference: str, idempotency_key: str) -> str:
        customer = self._call(self._client.v1.customers.create,
                              {"email": email, "name": name, "metadata": {"portal_user": reference}},
                              {"idempotency_key": idempotency_key})
        return str(customer.id)

    def start_card_setup(self, *, customer_id: str, success_url: str, cancel_url: str,
                         metadata: dict[str, str]) -> SetupPage:
        session = self._call(self._client.v1.checkout.sessions.create, {
            "mode": "setup", "customer": customer_id, "success_url": success_url, "cancel_url": cancel_url,
            "payment_method_types": ["card"], "metadata": metadata, "setup_intent_data": {"metadata": metadata},
        })
        return SetupPage(str(session.id), str(session.url))

    def setup_result(self, external_id: str) -> SetupResult:
        session = self._call(self._client.v1.checkout.sessions.retrieve, external_id,
                             {"expand": ["setup_intent.payment_method"]})
        method = _get(_get(session, "setup_intent"), "payment_method")
        card = None
        if session.status == "complete" and _get(method, "card") is not None:
            details = method["card"]
            card = Card(str(method["id"]), str(details["brand"]), str(details["last4"]),
                        int(details["exp_month"]), int(details["exp_year"]))
        metadata = _get(session, "metadata")
        metadata = {str(k): str(v) for k, v in (metadata.to_dict() if metadata is not None else {}).items()}
        return SetupResult(str(session.id), str(session.status or "open"), card, metadata)

    def detach(self, card_id: str) -> None:
        self._call(self._client.v1.payment_methods.detach, card_id)

    def charge(self, *, customer_id: str, card_id: str, amount_minor: int, currency: str, description: str,
               idempotency_key: str, metadata: dict[str, str]) -> ChargeOutcome:
        params = {"customer": customer_id, "payment_method": card_id, "amount": amount_minor,
                  "currency": currency.lower(), "off_session": True, "confirm": True,
                  "description": description, "metadata": metadata}
        try:
            intent = self._client.v1.payment_intents.create(params, {"idempotency_key": idempotency_key})
        except stripe.CardError as error:
            return self._declined(error, amount_minor, currency)
        except stripe.StripeError as error:
            raise _translate(error) from None
        status = {"succeeded": ChargeStatus.SUCCEEDED, "processing": ChargeStatus.PROCESSING}.get(
            intent.status, ChargeStatus.FAILED)
        failure = _get(intent, "last_payment_error")
        return ChargeOutcome(str(intent.id), status, int(intent.amount), currency.upper(),
                             _get(failure, "decline_code") or _get(failure, "code") if failure else None,
                             _get(failure, "message") if failure else None)

    @staticmethod
    def _declined(error: stripe.CardError, amount_minor: int, currency: str) -> ChargeOutcome:
        body = _get(error.json_body, "error", {})
        intent = _get(body, "payment_intent")
        return ChargeOutcome(_get(intent, "id"), ChargeStatus.FAILED, amount_minor, currency.upper(),
                             _get(body, "decline_code") or error.code or "card_declined",
                             error.user_message or _get(body, "message") or "Your card was declined.")

    def refund(self, *, payment_id: str, amount_minor: int, idempotency_key: str) -> Refund:
        refund = self._call(self._client.v1.refunds.create, {"payment_intent": payment_id, "amount": amount_minor},
                            {"idempotency_key": idempotency_key})
        return Refund(str(refund.id), str(refund.status), int(refund.amount))

    def parse_event(self, payload: bytes, signature: str, secret: str) -> ProviderEvent:
        try:
            event = self._client.construct_event(payload, signature, secret, tolerance=SIGNATURE_TOLERANCE_SECONDS)
            body = json.loads(payload)
            return ProviderEvent(str(event.id), str(event.type), dict(body["data"]["object"]))
        except stripe.SignatureVerificationError:
            raise PaymentError(PaymentErrorKind.INVALID, "The signature does not match or is too old.") from None
        except (ValueError, KeyError, TypeError, AttributeError):
            raise PaymentError(PaymentErrorKind.INVALID, "This is not an event.") from None
