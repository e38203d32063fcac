"""The STACKIT Marketplace vendor API (https://stackit-marketplace.api.stackit.cloud), as a MarketplaceAdapter.

A vendor's account is its STACKIT project (`project_id`); every call is
`/v1/vendors/projects/{project_id}/...` with a bearer access token:

- resolve: POST .../resolve-customer {"token"} -> the VendorSubscription the redirect token stands for;
- activate: POST .../subscriptions/{id}/approve {"instanceTarget"} -> 204 (STACKIT's billing starts);
- get / list: GET .../subscriptions/{id}, GET .../subscriptions?cursor=&limit= (at most 100 a page).

STACKIT has no operations (no webhooks: the portal polls), so get_operation and report_operation refuse.

`service_account_key` is what the STACKIT Portal hands out for a service account: its key JSON
({"credentials": {"kid", "iss", "sub", "aud", "privateKey"}, ...}); the adapter runs the key flow itself (an
RS512 assertion signed with the private key, exchanged at `token_url` for an access token, kept until shortly
before it expires). A value that is not JSON is taken as a service account access token (the token flow).

Plain `requests` rather than the `stackit-stackitmarketplace` SDK: the SDK pulls in pydantic models that the
adapter would convert anyway, and its key flow refreshes tokens in a background thread of its own; the three
calls and the key flow are short, and this way timeouts and errors map to MarketplaceError in one place.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from typing import Any

import jwt
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from app.domain.marketplaces import Marketplace, UnknownState, external_state
from app.providers.marketplaces.base import (
    ExternalOperation,
    ExternalSubscription,
    MarketplaceError,
    MarketplaceErrorKind,
    SubscriptionPage,
)

TOKEN_URL = "https://service-account.api.stackit.cloud/token"  # noqa: S105  (an address)
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
PAGE_LIMIT = 100  # the most the API gives in one page
INSTANCE_TARGET_LENGTH = 512
_EARLY = 60.0  # seconds before its expiry an access token is renewed

_K = MarketplaceErrorKind


class StackitMarketplace:
    """One vendor project at the STACKIT Marketplace."""

    marketplace = Marketplace.STACKIT

    def __init__(self, *, api_url: str, project_id: str, service_account_key: str, token_url: str | None = None,
                 timeout: float = 15.0) -> None:
        self._base = f"{api_url.rstrip('/')}/v1/vendors/projects/{project_id}"
        self._project_id = project_id
        self._token_url = token_url or TOKEN_URL
        self._timeout = timeout
        self._key = _parse_key(service_account_key)
        self._static = service_account_key.strip() if self._key is None else None
        self._access: tuple[str, float] | None = None
        self._lock = threading.Lock()
        self._http = requests.Session()

    # --- the protocol ----------------------------------------------------------------------------------------

    def resolve(self, token: str) -> ExternalSubscription:
        try:
            return _subscription(self._call("POST", "/resolve-customer", json={"token": token}))
        except MarketplaceError as error:
            if error.kind in (_K.INVALID, _K.NOT_FOUND, _K.CONFLICT):
                raise MarketplaceError(_K.INVALID, "The STACKIT Marketplace did not accept this sign-up link: it "
                                       f"has expired or was used already ({error.message}).",
                                       status=error.status) from None
            raise

    def activate(self, subscription: ExternalSubscription, *, instance_url: str) -> None:
        if len(instance_url) > INSTANCE_TARGET_LENGTH:
            raise MarketplaceError(_K.INVALID, f"The instance URL is longer than {INSTANCE_TARGET_LENGTH} characters.")
        try:
            self._call("POST", f"/subscriptions/{subscription.external_id}/approve",
                       json={"instanceTarget": instance_url})
        except MarketplaceError as error:
            if error.kind is not _K.CONFLICT:
                raise
            now = self.get_subscription(subscription.external_id)  # a retry after a lost answer is approved already
            if now.raw_state != "SUBSCRIPTION_ACTIVE":
                raise MarketplaceError(_K.CONFLICT, f"STACKIT refused the approval: the subscription is "
                                       f"{now.raw_state} ({error.message})", status=error.status) from None

    def get_subscription(self, external_id: str) -> ExternalSubscription:
        return _subscription(self._call("GET", f"/subscriptions/{external_id}"))

    def list_subscriptions(self, cursor: str | None = None) -> SubscriptionPage:
        params: dict[str, Any] = {"limit": PAGE_LIMIT}
        if cursor:
            params["cursor"] = cursor
        body = self._call("GET", "/subscriptions", params=params)
        items: list[ExternalSubscription] = []
        for item in body.get("items") or ():
            try:
                items.append(_subscription(item))
            except MarketplaceError:
                continue  # a state added after this code was written: never acted on (see the domain)
        more = bool(body.get("items")) and body.get("cursor")
        return SubscriptionPage(tuple(items), str(more) if more else None)

    def get_operation(self, external_id: str, operation_id: str) -> ExternalOperation:
        raise MarketplaceError(_K.NOT_FOUND, "The STACKIT Marketplace has no operations: its state is polled.")

    def report_operation(self, external_id: str, operation_id: str, *, success: bool) -> None:
        raise MarketplaceError(_K.INVALID, "The STACKIT Marketplace has no operations to answer.")

    # --- HTTP ------------------------------------------------------------------------------------------------

    def _call(self, method: str, path: str, *, json: dict[str, Any] | None = None,
              params: dict[str, Any] | None = None) -> dict[str, Any]:
        response = self._send(method, path, json, params)
        if response.status_code == 401 and self._key is not None:
            self._access = None  # expired early or revoked: the key flow once more, then ask again
            response = self._send(method, path, json, params)
        if response.status_code >= 400:
            raise _error(response)
        if response.status_code == 204 or not response.content:
            return {}
        try:
            body = response.json()
        except ValueError:
            raise MarketplaceError(_K.TRANSIENT, "STACKIT answered something that is not JSON.",
                                   status=response.status_code) from None
        if not isinstance(body, dict):
            raise MarketplaceError(_K.TRANSIENT, "STACKIT answered an unexpected shape.", status=response.status_code)
        return body

    def _send(self, method: str, path: str, json: dict[str, Any] | None,
              params: dict[str, Any] | None) -> requests.Response:
        headers = {"Authorization": f"Bearer {self._token()}", "Accept": "application/json"}
        try:
            return self._http.request(method, self._base + path, json=json, params=params, headers=headers,
                                      timeout=self._timeout)
        except requests.RequestException as error:
            raise MarketplaceError(_K.TRANSIENT, f"STACKIT could not be reached: {type(error).__name__}") from None

    def _token(self) -> str:
        if self._static is not None:
            return self._static
        with self._lock:
            if self._access is None or self._access[1] - _EARLY <= time.time():
                self._access = self._key_flow()
            return self._access[0]

    def _key_flow(self) -> tuple[str, float]:
        """Exchange an assertion signed with the service account's private key for an access token."""
        credentials = self._key or {}
        moment = int(time.time())
        try:
            assertion = jwt.encode(
                {"iss": credentials["iss"], "sub": credentials["sub"], "aud": credentials["aud"],
                 "jti": str(uuid.uuid4()), "iat": moment, "exp": moment + 600},
                credentials["privateKey"], algorithm="RS512", headers={"kid": credentials["kid"]})
        except (ValueError, TypeError, jwt.PyJWTError) as error:
            raise MarketplaceError(_K.AUTH, f"The service account key cannot sign: {type(error).__name__}") from None
        try:
            response = self._http.post(self._token_url, data={"grant_type": JWT_BEARER, "assertion": assertion},
                                       timeout=self._timeout)
        except requests.RequestException as error:
            raise MarketplaceError(_K.TRANSIENT, f"STACKIT's token endpoint could not be reached: "
                                   f"{type(error).__name__}") from None
        if response.status_code in (400, 401, 403):
            raise MarketplaceError(_K.AUTH, "STACKIT refused the service account key: check that it is active "
                                   "and belongs to the vendor project.", status=response.status_code)
        if response.status_code >= 400:
            raise _error(response)
        try:
            body = response.json()
            return str(body["access_token"]), time.time() + float(body.get("expires_in", 600))
        except (ValueError, KeyError, TypeError):
            raise MarketplaceError(_K.TRANSIENT, "STACKIT's token endpoint answered without a token.",
                                   status=response.status_code) from None


def _parse_key(value: str) -> dict[str, str] | None:
    """The credentials of a service account key JSON; None for a plain access token. Raises AUTH."""
    text = value.strip()
    if not text.startswith("{"):
        if not text:
            raise MarketplaceError(_K.AUTH, "No STACKIT service account key is set.")
        return None
    try:
        credentials = json.loads(text).get("credentials") or {}
    except (ValueError, AttributeError):
        raise MarketplaceError(_K.AUTH, "The STACKIT service account key is not valid JSON.") from None
    missing = [name for name in ("kid", "iss", "sub", "aud", "privateKey") if not credentials.get(name)]
    if missing:
        raise MarketplaceError(_K.AUTH, f"The STACKIT service account key lacks credentials.{', '.join(missing)}.")
    return {name: str(credentials[name]) for name in ("kid", "iss", "sub", "aud", "privateKey")}


def _error(response: requests.Response) -> MarketplaceError:
    status = response.status_code
    try:
        body = response.json()
        message = str(body.get("message") or body.get("error_description") or body.get("error") or "")
    except (ValueError, AttributeError):
        message = ""
    message = " ".join((message or response.reason or f"HTTP {status}").split())[:200]
    if status in (401, 403):
        kind = _K.AUTH
    elif status == 404:
        kind = _K.NOT_FOUND
    elif status == 409:
        kind = _K.CONFLICT
    elif status == 429 or status >= 500:
        kind = _K.TRANSIENT
    else:
        kind = _K.INVALID
    return MarketplaceError(kind, f"STACKIT answered {status}: {message}", status=status)


def _subscription(body: dict[str, Any]) -> ExternalSubscription:
    """A VendorSubscription as the portal keeps it. A state STACKIT added after this code raises INVALID."""
    try:
        product = body.get("product") or {}
        raw = str(body["lifecycleState"])
        return ExternalSubscription(
            marketplace=Marketplace.STACKIT, external_id=str(body["subscriptionId"]),
            offer_id=str(product.get("vendorProductId") or product.get("productId") or ""),
            plan_id=str(product.get("vendorPlanId") or product.get("planId") or ""), quantity=None,
            state=external_state(Marketplace.STACKIT, raw), raw_state=raw,
            name=str(product.get("productName") or "")[:200], customer_ref=str(body.get("projectId") or ""))
    except KeyError as missing:
        raise MarketplaceError(_K.TRANSIENT, f"STACKIT answered a subscription without {missing.args[0]}.") from None
    except UnknownState as error:
        raise MarketplaceError(_K.INVALID, str(error)) from None


def fetch_public_keys(keys_url: str, *, timeout: float = 10.0) -> dict[str, Any]:
    """The redirect tokens' public keys: STACKIT publishes {kid: PEM} at `keys_url`
    (https://keys.marketplace.stackit.cloud/v1/resolve-customer/keys.json). Returns {kid: RSA public key}."""
    try:
        response = requests.get(keys_url, timeout=timeout)
        response.raise_for_status()
        published = response.json()
    except (requests.RequestException, ValueError) as error:
        raise MarketplaceError(_K.TRANSIENT, f"STACKIT's public keys could not be read: {type(error).__name__}",
                               status=getattr(getattr(error, "response", None), "status_code", None)) from None
    if not isinstance(published, dict):
        raise MarketplaceError(_K.TRANSIENT, "STACKIT's public keys are not a JSON object.")
    keys: dict[str, Any] = {}
    for kid, pem in published.items():
        try:
            key = serialization.load_pem_public_key(str(pem).encode())
        except (ValueError, TypeError):
            continue  # a key this code cannot read signs nothing it accepts
        if isinstance(key, rsa.RSAPublicKey):
            keys[str(kid)] = key
    return keys
