"""The Microsoft commercial marketplace behind `MarketplaceAdapter`: the SaaS Fulfillment API v2, over `requests`.

Choices worth knowing (the API has traps):

- Every call carries `api-version=2018-08-31` (the only version) and a bearer token from Entra's v1 token
  endpoint (`{login_url}/{tenant}/oauth2/token`, client credentials, resource
  `20e940b3-4c77-4b0b-9a53-9e16a1b010a7`). The token is kept (for every adapter of the same app and secret) until
  a minute before it expires, and fetched again once after a 401 or 403, for one call.
- The landing page's `?token=` is URL-decoded by the web framework before it gets here; resolve sends it as it is
  in `x-ms-marketplace-token`. A token that went through one decoding too many has its `+` turned into spaces
  (`ab+cd` -> `ab cd`): a token never contains a space, so spaces are turned back into `+`.
- Errors: 400 on resolve is a token that expired, was forged or mangled (INVALID, with a message for the
  customer); 401/403 are the publisher's credentials (AUTH: "the client secret expired, or the offer was
  published with another app"); 404 NOT_FOUND; 409 CONFLICT; 429, 5xx, timeouts and refused connections
  TRANSIENT.
- Answers are read leniently: Microsoft adds fields without notice, so unknown ones are ignored and missing
  optional ones are None.
- Change plan, change quantity and delete answer 202 with an `Operation-Location` header; the operation id is
  the last segment of its path.
"""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any, NoReturn
from urllib.parse import parse_qs, urlsplit

import requests

from app.domain.marketplaces import Marketplace, UnknownState, external_state
from app.providers.marketplaces.base import (
    ExternalOperation,
    ExternalSubscription,
    MarketplaceError,
    MarketplaceErrorKind,
    SubscriptionPage,
)

API_VERSION = "2018-08-31"
RESOURCE = "20e940b3-4c77-4b0b-9a53-9e16a1b010a7"  # the marketplace fulfilment API, as an Entra resource
TOKEN_MARGIN_SECONDS = 60  # a cached token is fetched again this long before it expires

INVALID_LANDING = ("This sign-up link has expired or is not valid. Please open your subscription in the Azure portal "
                   "(or the Microsoft 365 admin center) and choose \"Configure account\" again.")
AUTH_FAILED = ("Microsoft refused the publisher's credentials: the client secret expired or is wrong, or the offer "
               "is published with another app (check the tenant id, client id and secret).")

Json = dict[str, Any]
_K = MarketplaceErrorKind

MAX_KEPT_TOKENS = 256
_tokens: dict[tuple[str, str, str], tuple[str, float]] = {}  # (token URL, client id, secret's hash) -> token, until
_tokens_lock = threading.Lock()


class MicrosoftMarketplace:
    """One publisher's app registration at the Microsoft commercial marketplace."""

    marketplace = Marketplace.MICROSOFT

    def __init__(self, *, api_url: str, login_url: str, entra_tenant_id: str, client_id: str, client_secret: str,
                 timeout: float = 15.0) -> None:
        self.api_url = api_url.rstrip("/")
        self.token_url = f"{login_url.rstrip('/')}/{entra_tenant_id}/oauth2/token"
        self.client_id, self._secret, self.timeout = client_id, client_secret, timeout
        # Tokens are shared by every adapter of the same app registration (one per request is the usual life of
        # an adapter): Entra throttles an app that asks for a token per call.
        self._token_key = (self.token_url, client_id, hashlib.sha256(client_secret.encode()).hexdigest())
        self._http = requests.Session()

    def __repr__(self) -> str:  # never the secret
        return f"MicrosoftMarketplace(api_url={self.api_url!r}, client_id={self.client_id!r})"

    # --- the protocol ----------------------------------------------------------------------------------------

    def resolve(self, token: str) -> ExternalSubscription:
        token = token.strip("\r\n\t").replace(" ", "+")  # a "+" read as a space (even the last one) is a "+"
        if not token or len(token) > 4096:
            raise MarketplaceError(_K.INVALID, INVALID_LANDING, status=400)
        answer = self._call("POST", "/saas/subscriptions/resolve", headers={"x-ms-marketplace-token": token},
                            resolving=True)
        body = _object(answer)
        inner = body.get("subscription") if isinstance(body.get("subscription"), dict) else {}
        merged = {**inner, "id": body.get("id") or inner.get("id"),
                  "offerId": body.get("offerId") or inner.get("offerId"),
                  "planId": body.get("planId") or inner.get("planId"),
                  "name": inner.get("name") or body.get("subscriptionName") or "",
                  "quantity": body.get("quantity", inner.get("quantity"))}
        return subscription_from(merged)

    def activate(self, subscription: ExternalSubscription, *, instance_url: str) -> None:
        body: Json = {"planId": subscription.plan_id}
        if subscription.quantity is not None:
            body["quantity"] = subscription.quantity
        self._call("POST", f"/saas/subscriptions/{_segment(subscription.external_id)}/activate", json=body)

    def get_subscription(self, external_id: str) -> ExternalSubscription:
        return subscription_from(_object(self._call("GET", f"/saas/subscriptions/{_segment(external_id)}")))

    def list_subscriptions(self, cursor: str | None = None) -> SubscriptionPage:
        params = {"continuationToken": cursor} if cursor else None
        body = _object(self._call("GET", "/saas/subscriptions/", params=params))
        items = tuple(subscription_from(raw) for raw in body.get("subscriptions") or [] if isinstance(raw, dict))
        return SubscriptionPage(items, _continuation(body.get("@nextLink")))

    def get_operation(self, external_id: str, operation_id: str) -> ExternalOperation:
        path = f"/saas/subscriptions/{_segment(external_id)}/operations/{_segment(operation_id)}"
        return operation_from(_object(self._call("GET", path)))

    def report_operation(self, external_id: str, operation_id: str, *, success: bool) -> None:
        path = f"/saas/subscriptions/{_segment(external_id)}/operations/{_segment(operation_id)}"
        self._call("PATCH", path, json={"status": "Success" if success else "Failure"})

    # --- Microsoft's own calls -------------------------------------------------------------------------------

    def list_available_plans(self, external_id: str) -> list[Json]:
        """The plans this subscription may move to (Microsoft's Plan objects, as sent)."""
        body = _object(self._call("GET", f"/saas/subscriptions/{_segment(external_id)}/listAvailablePlans"))
        return [plan for plan in body.get("plans") or [] if isinstance(plan, dict)]

    def list_operations(self, external_id: str) -> list[ExternalOperation]:
        """The subscription's outstanding operations."""
        body = _object(self._call("GET", f"/saas/subscriptions/{_segment(external_id)}/operations"))
        return [operation_from(raw) for raw in body.get("operations") or [] if isinstance(raw, dict)]

    def change_plan(self, external_id: str, plan_id: str) -> str:
        """Ask Microsoft to move the subscription to `plan_id`; the operation id. Microsoft then sends the webhook
        that confirms it, and only then does the portal change anything."""
        return self._started(self._call("PATCH", f"/saas/subscriptions/{_segment(external_id)}",
                                        json={"planId": plan_id}))

    def change_quantity(self, external_id: str, quantity: int) -> str:
        """Ask Microsoft for another number of seats; the operation id."""
        return self._started(self._call("PATCH", f"/saas/subscriptions/{_segment(external_id)}",
                                        json={"quantity": int(quantity)}))

    def unsubscribe(self, external_id: str) -> str:
        """Cancel the subscription at Microsoft (access ends at once); the operation id."""
        return self._started(self._call("DELETE", f"/saas/subscriptions/{_segment(external_id)}"))

    # --- HTTP -----------------------------------------------------------------------------------------------

    def _started(self, answer: requests.Response) -> str:
        location = answer.headers.get("Operation-Location", "")
        operation_id = urlsplit(location).path.rstrip("/").rsplit("/", 1)[-1]
        if answer.status_code != 202 or not operation_id:
            raise MarketplaceError(_K.TRANSIENT, "Microsoft accepted the change without naming its operation.",
                                   status=answer.status_code)
        return operation_id

    def _call(self, method: str, path: str, *, headers: dict[str, str] | None = None, json: Json | None = None,
              params: dict[str, str] | None = None, resolving: bool = False) -> requests.Response:
        for attempt in (1, 2):
            answer = self._send(method, path, headers=headers, json=json, params=params,
                                fresh=attempt == 2)
            if answer.status_code in (401, 403) and attempt == 1:
                continue  # a token revoked or expired before its time: fetch one more, once
            if answer.status_code < 400:
                return answer
            _raise(answer, resolving=resolving)
        raise AssertionError("unreachable")

    def _send(self, method: str, path: str, *, headers: dict[str, str] | None, json: Json | None,
              params: dict[str, str] | None, fresh: bool) -> requests.Response:
        sent = {"authorization": f"Bearer {self._access_token(fresh)}", "x-ms-requestid": str(uuid.uuid4()),
                "x-ms-correlationid": str(uuid.uuid4()), "Accept": "application/json", **(headers or {})}
        try:
            return self._http.request(method, self.api_url + path, headers=sent, json=json,
                                      params={"api-version": API_VERSION, **(params or {})}, timeout=self.timeout,
                                      allow_redirects=False)
        except requests.RequestException as error:
            raise MarketplaceError(_K.TRANSIENT, f"Microsoft's marketplace API did not answer ({type(error).__name__})."
                                   ) from None

    def _access_token(self, fresh: bool = False) -> str:
        with _tokens_lock:
            kept = _tokens.get(self._token_key)
            if kept is not None and not fresh and time.monotonic() < kept[1]:
                return kept[0]
            form = {"grant_type": "client_credentials", "client_id": self.client_id, "client_secret": self._secret,
                    "resource": RESOURCE}
            try:
                answer = self._http.post(self.token_url, data=form, timeout=self.timeout, allow_redirects=False)
            except requests.RequestException as error:
                raise MarketplaceError(_K.TRANSIENT, f"Microsoft's sign-in service did not answer "
                                                     f"({type(error).__name__}).") from None
            if answer.status_code in (400, 401, 403):
                raise MarketplaceError(_K.AUTH, AUTH_FAILED + f" ({_entra_error(answer)})", status=answer.status_code)
            if answer.status_code != 200:
                raise MarketplaceError(_K.TRANSIENT, f"Microsoft's sign-in service answered {answer.status_code}.",
                                       status=answer.status_code)
            body = _object(answer)
            token = body.get("access_token")
            if not isinstance(token, str) or not token:
                raise MarketplaceError(_K.TRANSIENT, "Microsoft's sign-in service answered without a token.")
            lifetime = _int(body.get("expires_in")) or 3599
            if len(_tokens) >= MAX_KEPT_TOKENS:
                _tokens.clear()
            _tokens[self._token_key] = token, time.monotonic() + max(lifetime - TOKEN_MARGIN_SECONDS, 0)
            return token


def _raise(answer: requests.Response, *, resolving: bool) -> NoReturn:
    status, said = answer.status_code, _message(answer)
    if resolving and status in (400, 404):
        raise MarketplaceError(_K.INVALID, INVALID_LANDING, status=status)
    if status in (401, 403):
        raise MarketplaceError(_K.AUTH, AUTH_FAILED, status=status)
    if status == 404:
        raise MarketplaceError(_K.NOT_FOUND, f"Microsoft does not know it{': ' + said if said else ''}.", status=status)
    if status == 409:
        raise MarketplaceError(_K.CONFLICT, f"Microsoft refused: a newer update was fulfilled already"
                                            f"{' (' + said + ')' if said else ''}.", status=status)
    if status == 429 or status >= 500:
        raise MarketplaceError(_K.TRANSIENT, f"Microsoft's marketplace API answered {status}; try again later.",
                               status=status)
    raise MarketplaceError(_K.INVALID, f"Microsoft refused the request ({status}){': ' + said if said else ''}.",
                           status=status)


# --- reading Microsoft's JSON, leniently ------------------------------------------------------------------------

def subscription_from(raw: Json) -> ExternalSubscription:
    """A Subscription object (or the merge of a ResolvedSubscription and its subscription) as the portal keeps it."""
    raw_state = str(raw.get("saasSubscriptionStatus") or "")
    try:
        state = external_state(Marketplace.MICROSOFT, raw_state)
    except UnknownState:
        raise MarketplaceError(_K.TRANSIENT, f"Microsoft reported an unknown state {raw_state[:40]!r}.") from None
    external_id = str(raw.get("id") or "")
    if not external_id:
        raise MarketplaceError(_K.TRANSIENT, "Microsoft answered a subscription without its id.")
    purchaser = raw.get("purchaser") if isinstance(raw.get("purchaser"), dict) else {}
    beneficiary = raw.get("beneficiary") if isinstance(raw.get("beneficiary"), dict) else {}
    term = raw.get("term") if isinstance(raw.get("term"), dict) else {}
    return ExternalSubscription(
        marketplace=Marketplace.MICROSOFT, external_id=external_id[:64], offer_id=str(raw.get("offerId") or "")[:100],
        plan_id=str(raw.get("planId") or "")[:100], quantity=_int(raw.get("quantity")), state=state,
        raw_state=raw_state, name=str(raw.get("name") or "")[:200],
        purchaser_email=_str(beneficiary.get("emailId")) or _str(purchaser.get("emailId")),
        customer_ref=str(beneficiary.get("tenantId") or purchaser.get("tenantId") or "")[:100],
        term_start=_when(term.get("startDate")), term_end=_when(term.get("endDate")), is_test=raw.get("isTest") is True)


def operation_from(raw: Json) -> ExternalOperation:
    return ExternalOperation(
        id=str(raw.get("id") or ""), subscription_id=str(raw.get("subscriptionId") or ""),
        action=str(raw.get("action") or ""), status=str(raw.get("status") or ""), plan_id=_str(raw.get("planId")),
        quantity=_int(raw.get("quantity")), source=str(raw.get("operationRequestSource") or ""),
        timestamp=_when(raw.get("timeStamp")))


def _object(answer: requests.Response) -> Json:
    try:
        body = answer.json()
    except ValueError:
        raise MarketplaceError(_K.TRANSIENT, f"Microsoft answered {answer.status_code} with no JSON.",
                               status=answer.status_code) from None
    if not isinstance(body, dict):
        raise MarketplaceError(_K.TRANSIENT, "Microsoft answered JSON of an unexpected shape.")
    return body


def _message(answer: requests.Response) -> str:
    try:
        body = answer.json()
    except ValueError:
        return answer.text[:200].strip()
    if isinstance(body, dict):
        error = body.get("error") if isinstance(body.get("error"), dict) else body
        return str(error.get("message") or error.get("code") or "")[:200]
    return ""


def _entra_error(answer: requests.Response) -> str:
    try:
        body = answer.json()
    except ValueError:
        return f"HTTP {answer.status_code}"
    return str(body.get("error") or answer.status_code)[:80] if isinstance(body, dict) else str(answer.status_code)


def _continuation(next_link: object) -> str | None:
    """The continuationToken of an `@nextLink` (a full URL), or None on the last page."""
    if not isinstance(next_link, str) or not next_link:
        return None
    values = parse_qs(urlsplit(next_link).query).get("continuationToken")
    return values[0] if values else None


def _segment(value: str) -> str:
    """A path segment the caller passed: ids are GUIDs, so anything else is refused rather than sent."""
    if not value or not all(char.isalnum() or char in "-_" for char in value) or len(value) > 64:
        raise MarketplaceError(_K.INVALID, f"Not a Microsoft id: {value[:40]!r}.")
    return value


def _int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _str(value: object) -> str | None:
    return str(value) if value not in (None, "") else None


def _when(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    text = value.strip().replace("Z", "+00:00")
    if "." in text:  # .NET sends seven digits of fractions; Python reads six
        head, _, rest = text.partition(".")
        digits = "".join(c for c in rest if c.isdigit())
        text = f"{head}.{digits[:6]}{rest[len(digits):]}"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment
