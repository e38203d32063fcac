"""A small fake of the Microsoft commercial marketplace: Entra's token endpoint and key set, the SaaS Fulfillment
API v2, the webhooks Microsoft sends, and pages that play the customer. The demo and the tests drive the real
adapter (`app.providers.marketplaces.microsoft`) against it, on 127.0.0.1.

`MicrosoftFake` is a WSGI app keeping everything in memory behind one lock.

Entra:
POST /{tenant}/oauth2/token                       client credentials -> an access token (opaque here), 3599 s
GET  /common/discovery/v2.0/keys, /{tenant}/discovery/v2.0/keys   the JWKS that signs the webhooks' tokens

SaaS API (every call needs `api-version=2018-08-31` and the bearer token; a publisher sees its own subscriptions):
POST /api/saas/subscriptions/resolve              x-ms-marketplace-token -> ResolvedSubscription (400 expired/unknown)
POST /api/saas/subscriptions/{id}/activate        {planId, quantity}
GET  /api/saas/subscriptions/                     {subscriptions, @nextLink} (continuationToken paging)
GET  /api/saas/subscriptions/{id}                 Subscription
GET  /api/saas/subscriptions/{id}/listAvailablePlans
PATCH /api/saas/subscriptions/{id}                {planId} or {quantity} -> 202, Operation-Location; webhook follows
DELETE /api/saas/subscriptions/{id}               -> 202, Operation-Location; Unsubscribed now; webhook follows
GET  /api/saas/subscriptions/{id}/operations      the outstanding ones
GET/PATCH /api/saas/subscriptions/{id}/operations/{operationId}   PATCH {status: Success|Failure}; 409 once decided

Publishers: the sandbox's, one per portal tenant (`sandbox_publisher(slug)`: the Entra tenant id and client id the
portal's sandbox settings use). Any client secret is accepted except one made to expire (`/_control/expire-secret`).

Landing tokens are opaque, contain `+` and `/`, stay valid for 24 hours of the fake's clock and resolve as often as
asked (as Microsoft's do). Customer-side changes (ChangePlan, ChangeQuantity) behave as Microsoft's: the webhook says
InProgress; a PATCH Failure, or a 4xx answer to the webhook within `accept_seconds` (10), keeps the old plan; a PATCH
Success, or no answer within `accept_seconds`, applies the new one. Each PATCH's time after the webhook is recorded.

Webhooks are POSTed to the publisher's webhook URL with `Authorization: Bearer <JWT>` (RS256, `kid`, aud = the
publisher's client id, tid = its tenant, appid = azp = the marketplace's resource id, 1 hour). `transport` may be
replaced (tests deliver in-process); by default each goes over HTTP to 127.0.0.1 only.

Pages: GET/POST /purchase (choose offer, plan, seats, email: redirected to the landing page with ?token=);
GET /subscriptions (the customer's view, with "Configure account" / "Manage SaaS experience" per subscription);
GET /subscriptions/{id}/manage (a new landing token, redirected to the landing page);
POST /subscriptions/{id}/action {action, plan?, quantity?} (the customer changes the plan or seats, or Microsoft's
billing suspends, reinstates, renews or cancels it: the webhook is sent at once).

Controls (JSON bodies):
POST /_control/publisher {publisher, webhook_url, landing_url}   where one publisher's webhooks and landing go
POST /_control/webhook {subscription, action, planId?, quantity?, token?}   send one (token: valid, expired,
     wrong_key, wrong_audience, wrong_tenant, wrong_appid); answers the operation and the portal's status
POST /_control/replay {operation, token?}     send an operation's webhook again
POST /_control/expire-secret {publisher}      the publisher's client secret stops working
POST /_control/offers {offers: {offer id: {displayName, plans: [{planId, displayName, price, isPricePerSeat?,
     minQuantity?, maxQuantity?}]}}}       the offers and plans on sale (default: DEMO_OFFERS)
POST /_control/settings {accept_seconds?, page_size?}
POST /_control/clock {advance}                move the fake's clock (landing tokens' age, term dates)
GET  /_control/state                          publishers, subscriptions, operations, tokens, webhooks, patches
POST /_control/reset                          forget everything
"""

from __future__ import annotations

import base64
import html
import itertools
import json
import secrets
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from werkzeug.wrappers import Request, Response

from app.sandbox import FakeServer, serve

Json = dict[str, Any]

API_VERSION = "2018-08-31"
MARKETPLACE_APP_ID = "20e940b3-4c77-4b0b-9a53-9e16a1b010a7"
LANDING_TOKEN_HOURS = 24
ACCEPT_SECONDS = 10.0
TOKEN_KINDS = ("valid", "expired", "wrong_key", "wrong_audience", "wrong_tenant", "wrong_appid")
ACTIONS = ("ChangePlan", "ChangeQuantity", "Suspend", "Reinstate", "Renew", "Unsubscribe")

DEMO_OFFERS: dict[str, Json] = {
    "cloudportal-servers": {
        "displayName": "Cloud Portal Servers",
        "plans": [
            {"planId": "standard", "displayName": "Standard", "description": "A cloud server, billed by Microsoft.",
             "isPricePerSeat": False, "price": 990},
            {"planId": "pro", "displayName": "Pro", "description": "A bigger cloud server, billed by Microsoft.",
             "isPricePerSeat": False, "price": 2990},
        ],
    },
}
"""The demo's offer: flat-rate plans (a tenant admin maps them to portal plans)."""

Transport = Callable[[str, dict[str, str], bytes], int]
"""Deliver a webhook: (url, headers, body) -> the HTTP status the portal answered (0: no answer)."""


def sandbox_publisher(slug: str) -> tuple[str, str]:
    """The Entra tenant id and app (client) id the portal's sandbox settings give the tenant `slug`."""
    return (str(uuid.uuid5(uuid.NAMESPACE_URL, f"sandbox-microsoft:{slug}")),
            str(uuid.uuid5(uuid.NAMESPACE_URL, f"sandbox-microsoft-app:{slug}")))


class ApiError(Exception):
    def __init__(self, status: int, message: str, code: str = "BadRequest") -> None:
        super().__init__(status, message)
        self.status, self.message, self.code = status, message, code


@dataclass
class Publisher:
    slug: str
    tenant_id: str
    client_id: str
    webhook_url: str | None
    landing_url: str | None
    secret_expired: bool = False


@dataclass
class _Key:
    kid: str
    private: rsa.RSAPrivateKey = field(repr=False)

    @property
    def jwk(self) -> Json:
        public = json.loads(RSAAlgorithm.to_jwk(self.private.public_key()))
        return {**public, "kid": self.kid, "use": "sig", "alg": "RS256", "x5t": self.kid}


class MicrosoftFake:
    """The marketplace's APIs, webhooks and customer pages for the sandbox's publishers."""

    def __init__(self, *, webhook_url: str | None = None, landing_url: str | None = None,
                 offers: dict[str, Json] | None = None, clock: Callable[[], float] = time.time,
                 accept_seconds: float = ACCEPT_SECONDS, transport: Transport | None = None) -> None:
        """`webhook_url` and `landing_url` may contain `{publisher}` (the tenant slug); both 127.0.0.1 only."""
        self._lock = threading.RLock()
        self._ids = itertools.count(1)
        self._base_clock = clock
        self.webhook_template, self.landing_template = _local(webhook_url), _local(landing_url)
        self.offers = offers if offers is not None else DEMO_OFFERS
        self.accept_seconds = accept_seconds
        self.transport: Transport = transport or _http_transport
        self.key = _Key(f"fake-{secrets.token_hex(4)}", rsa.generate_private_key(public_exponent=65537, key_size=2048))
        self._other_key: _Key | None = None
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.offset = 0.0
            self.page_size = 100
            self.publishers: dict[str, Publisher] = {}  # by Entra tenant id
            self.access_tokens: dict[str, tuple[str, float]] = {}  # token -> (tenant id, expires)
            self.subscriptions: dict[str, Json] = {}
            self.owners: dict[str, str] = {}  # subscription id -> publisher tenant id
            self.landing_tokens: dict[str, tuple[str, float]] = {}  # token -> (subscription id, issued)
            self.operations: dict[str, Json] = {}
            self.webhooks: list[Json] = []
            self.patches: list[Json] = []
            self.calls: list[Json] = []
            self.activations: list[Json] = []

    def now(self) -> float:
        return self._base_clock() + self.offset

    # --- publishers --------------------------------------------------------------------------------------------

    def publisher(self, slug: str) -> Publisher:
        """The sandbox publisher of the portal tenant `slug` (made on first use)."""
        tenant_id, client_id = sandbox_publisher(slug)
        with self._lock:
            found = self.publishers.get(tenant_id)
            if found is None or not found.slug:  # unknown, or known only from a token request
                found = self.publishers[tenant_id] = Publisher(
                    slug, tenant_id, client_id,
                    self.webhook_template.replace("{publisher}", slug) if self.webhook_template else None,
                    self.landing_template.replace("{publisher}", slug) if self.landing_template else None,
                    secret_expired=bool(found and found.secret_expired))
            return found

    def set_publisher(self, slug: str, *, webhook_url: str | None = None, landing_url: str | None = None) -> Publisher:
        found = self.publisher(slug)
        with self._lock:
            if webhook_url is not None:
                found.webhook_url = _local(webhook_url)
            if landing_url is not None:
                found.landing_url = _local(landing_url)
        return found

    def set_offers(self, offers: dict[str, Json]) -> None:
        """Replace the catalogue: {offer id: {displayName, plans: [{planId, displayName, price (cents),
        isPricePerSeat?, minQuantity?, maxQuantity?}]}}."""
        checked = {}
        for offer_id, offer in offers.items():
            plans = [{"planId": str(p["planId"]), "displayName": str(p.get("displayName") or p["planId"]),
                      "price": int(p.get("price", 0)), "isPricePerSeat": bool(p.get("isPricePerSeat")),
                      "minQuantity": int(p.get("minQuantity", 1)), "maxQuantity": int(p.get("maxQuantity", 1000))}
                     for p in offer["plans"]]
            checked[str(offer_id)] = {"displayName": str(offer.get("displayName") or offer_id), "plans": plans}
        with self._lock:
            self.offers = checked

    # --- the customer's side ------------------------------------------------------------------------------------

    def purchase(self, slug: str, *, offer_id: str, plan_id: str, email: str, quantity: int | None = None,
                 name: str = "") -> tuple[Json, str]:
        """The customer buys `plan_id` of `offer_id` from publisher `slug`: the subscription and a landing token."""
        plan = self.plan(offer_id, plan_id)
        if plan["isPricePerSeat"]:
            quantity = quantity or plan.get("minQuantity", 1)
            if not plan.get("minQuantity", 1) <= quantity <= plan.get("maxQuantity", 1000):
                raise ApiError(400, f"The plan takes {plan.get('minQuantity', 1)} to {plan.get('maxQuantity', 1000)} "
                                    "seats.")
        else:
            quantity = None
        if "@" not in email or len(email) > 254:
            raise ApiError(400, "Please enter the purchaser's email address.")
        publisher = self.publisher(slug)
        with self._lock:
            moment = self._iso()
            customer_tenant = str(uuid.uuid4())
            person = {"emailId": email, "objectId": str(uuid.uuid4()), "tenantId": customer_tenant,
                      "puid": f"{secrets.randbits(52):016X}"}
            subscription = {
                "id": str(uuid.uuid4()), "publisherId": f"sandbox-{slug}", "offerId": offer_id,
                "name": name or f"{plan['displayName']} for {email.split('@')[0]}", "saasSubscriptionStatus":
                "PendingFulfillmentStart", "beneficiary": person, "purchaser": dict(person), "planId": plan_id,
                "quantity": quantity, "term": {"termUnit": "P1M", "chargeDuration": None},
                "autoRenew": True, "isTest": True, "isFreeTrial": False,
                "allowedCustomerOperations": ["Delete", "Update", "Read"], "sandboxType": "None",
                "sessionMode": "None", "storeFront": "AzurePortal", "created": moment, "lastModified": moment,
                "fulfillmentId": str(uuid.uuid4()), "sessionId": str(uuid.uuid4())}
            self.subscriptions[subscription["id"]] = subscription
            self.owners[subscription["id"]] = publisher.tenant_id
            return dict(subscription), self.landing_token(subscription["id"])

    def landing_token(self, subscription_id: str) -> str:
        """A new token for "Configure account" / "Manage SaaS experience": opaque, with `+` and `/` in it."""
        def part() -> str:
            return base64.b64encode(secrets.token_bytes(30)).decode()
        token = f"{part()}+{part()}/{part()}"
        with self._lock:
            self.landing_tokens[token] = (subscription_id, self.now())
        return token

    def landing_link(self, subscription_id: str) -> str:
        with self._lock:
            publisher = self.publishers[self.owners[subscription_id]]
        if not publisher.landing_url:
            raise ApiError(409, "The publisher has no landing page URL.")
        return f"{publisher.landing_url}?token={quote(self.landing_token(subscription_id), safe='')}"

    def plan(self, offer_id: str, plan_id: str) -> Json:
        offer = self.offers.get(offer_id)
        for plan in (offer or {}).get("plans", []):
            if plan["planId"] == plan_id:
                return {"isPricePerSeat": False, **plan}
        raise ApiError(400, f"The offer {offer_id!r} has no plan {plan_id!r}.")

    # --- Microsoft's side: operations and webhooks -------------------------------------------------------------------

    def send(self, subscription_id: str, action: str, *, plan_id: str | None = None, quantity: int | None = None,
             signing: str = "valid", source: str = "Azure") -> Json:
        """What the customer (or Microsoft's billing) does in the Azure portal, and its webhook: the operation with the
        portal's answer (`delivered`: its HTTP status, 0 when there was no answer)."""
        operation_id = self.start(subscription_id, action, plan_id=plan_id, quantity=quantity, source=source)
        return self.deliver(operation_id, signing=signing)

    def start(self, subscription_id: str, action: str, *, plan_id: str | None = None, quantity: int | None = None,
              source: str = "Azure") -> str:
        """The operation of `action`, without its webhook yet (`deliver` sends it, as often as wanted)."""
        if action not in ACTIONS:
            raise ApiError(400, f"Unknown action {action!r}; one of {', '.join(ACTIONS)}.")
        with self._lock:
            subscription = self._subscription_any(subscription_id)
            return str(self._start(subscription, action, plan_id=plan_id, quantity=quantity, source=source)["id"])

    def replay(self, operation_id: str, *, signing: str = "valid") -> Json:
        """The same operation's webhook once more (Microsoft retries for eight hours)."""
        with self._lock:
            if operation_id not in self.operations:
                raise ApiError(404, "No such operation.", "NotFound")
        return self.deliver(operation_id, signing=signing, replay=True)

    def _start(self, subscription: Json, action: str, *, plan_id: str | None, quantity: int | None,
               source: str) -> Json:
        status, state = subscription["saasSubscriptionStatus"], None
        if action in ("ChangePlan", "ChangeQuantity", "Suspend", "Renew") and status != "Subscribed":
            raise ApiError(400, f"{action} needs a Subscribed subscription; this one is {status}.")
        if action == "Reinstate" and status != "Suspended":
            raise ApiError(400, "Only a suspended subscription can be reinstated.")
        if action == "Unsubscribe" and status == "Unsubscribed":
            raise ApiError(400, "The subscription is unsubscribed already.")
        if action == "ChangePlan":
            if not plan_id or plan_id == subscription["planId"]:
                raise ApiError(400, "Choose another plan of the offer.")
            target = self.plan(subscription["offerId"], plan_id)
            quantity = subscription["quantity"] if target["isPricePerSeat"] else None
        elif action == "ChangeQuantity":
            plan = self.plan(subscription["offerId"], subscription["planId"])
            if not plan["isPricePerSeat"] or not quantity or quantity == subscription["quantity"]:
                raise ApiError(400, "Only a per-seat plan changes its quantity, to another number of seats.")
            plan_id = subscription["planId"]
        else:
            plan_id, quantity = subscription["planId"], subscription["quantity"]
        if action == "Suspend":
            state = "Suspended"
        elif action == "Unsubscribe":
            state = "Unsubscribed"
        elif action == "Reinstate":
            state = "Subscribed"
        elif action == "Renew":
            self._next_term(subscription)
        if state:
            subscription["saasSubscriptionStatus"] = state
            subscription["lastModified"] = self._iso()
        decided = action in ("Suspend", "Unsubscribe", "Renew")
        operation = {
            "id": str(uuid.uuid4()), "activityId": str(uuid.uuid4()), "publisherId": subscription["publisherId"],
            "offerId": subscription["offerId"], "planId": plan_id, "quantity": quantity,
            "subscriptionId": subscription["id"], "timeStamp": self._iso(), "action": action,
            "status": "Succeeded" if decided else "InProgress", "operationRequestSource": source,
            "purchaseToken": None, "_sent_at": None, "_from": {"planId": subscription["planId"],
                                                               "quantity": subscription["quantity"]}}
        self.operations[operation["id"]] = operation
        return operation

    def deliver(self, operation_id: str, *, signing: str = "valid", replay: bool = False) -> Json:
        """POST the operation's webhook to its publisher; the change is decided by the answer, a PATCH or the time."""
        if signing not in TOKEN_KINDS:
            raise ApiError(400, f"token: one of {', '.join(TOKEN_KINDS)}")
        with self._lock:
            operation = self.operations[operation_id]
            subscription = self.subscriptions[operation["subscriptionId"]]
            publisher = self.publishers[self.owners[subscription["id"]]]
            body = json.dumps({**_public(operation), "subscription": dict(subscription)}).encode()
            bearer = self._webhook_jwt(publisher, signing)
            first = operation["_sent_at"] is None
            if first:
                operation["_sent_at"] = time.monotonic()
            record = {"operation": operation_id, "action": operation["action"], "token": signing, "replay": replay,
                      "url": publisher.webhook_url, "status": None, "seconds": None}
            self.webhooks.append(record)
            timer = first and operation["status"] == "InProgress"
        if timer:
            clock = threading.Timer(self.accept_seconds, self._auto_accept, args=(operation_id,))
            clock.daemon = True
            clock.start()
        started = time.monotonic()
        status = 0
        if publisher.webhook_url:
            headers = {"Content-Type": "application/json", "Authorization": f"Bearer {bearer}",
                       "User-Agent": "AzureMarketplace-Webhook/1.0"}
            status = self.transport(publisher.webhook_url, headers, body)
        elapsed = time.monotonic() - started
        with self._lock:
            record.update(status=status, seconds=round(elapsed, 3))
            if 400 <= status < 500 and signing == "valid" and operation["status"] == "InProgress" \
                    and operation["action"] in ("ChangePlan", "ChangeQuantity") \
                    and time.monotonic() - operation["_sent_at"] < self.accept_seconds:
                self._decide(operation, success=False)
            return {"operation": _public(operation), "delivered": status}

    def _auto_accept(self, operation_id: str) -> None:
        with self._lock:
            operation = self.operations.get(operation_id)
            if operation is not None and operation["status"] == "InProgress":
                self._decide(operation, success=True)

    def _decide(self, operation: Json, *, success: bool) -> None:
        operation["status"] = "Succeeded" if success else "Failed"
        subscription = self.subscriptions[operation["subscriptionId"]]
        if success and operation["action"] in ("ChangePlan", "ChangeQuantity"):
            subscription["planId"], subscription["quantity"] = operation["planId"], operation["quantity"]
            subscription["lastModified"] = self._iso()
        if not success and operation["action"] == "Reinstate":
            subscription["saasSubscriptionStatus"] = "Suspended"

    def _webhook_jwt(self, publisher: Publisher, kind: str) -> str:
        moment = int(time.time())
        claims = {"aud": publisher.client_id, "iss": f"https://sts.windows.net/{publisher.tenant_id}/",
                  "iat": moment - 5, "nbf": moment - 5, "exp": moment + 3600, "tid": publisher.tenant_id,
                  "appid": MARKETPLACE_APP_ID, "azp": MARKETPLACE_APP_ID, "appidacr": "2", "ver": "1.0",
                  "oid": str(uuid.uuid5(uuid.NAMESPACE_URL, "marketplace-webhook")), "sub": "marketplace-webhook"}
        key = self.key
        if kind == "expired":
            claims.update(iat=moment - 7200, nbf=moment - 7200, exp=moment - 600)
        elif kind == "wrong_audience":
            claims["aud"] = str(uuid.uuid4())
        elif kind == "wrong_tenant":
            claims["tid"] = str(uuid.uuid4())
        elif kind == "wrong_appid":
            claims["appid"] = claims["azp"] = str(uuid.uuid4())
        elif kind == "wrong_key":
            if self._other_key is None:
                self._other_key = _Key(self.key.kid, rsa.generate_private_key(public_exponent=65537, key_size=2048))
            key = self._other_key  # the published key's kid, another key's signature
        return jwt.encode(claims, key.private, algorithm="RS256", headers={"kid": key.kid, "x5t": key.kid})

    def _next_term(self, subscription: Json) -> None:
        end = _parse(subscription["term"].get("endDate")) or datetime.fromtimestamp(self.now(), UTC)
        subscription["term"].update(startDate=_iso(end), endDate=_iso(_month_later(end)))

    # --- WSGI ---------------------------------------------------------------------------------------------------

    def __call__(self, environ: Json, start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = Request(environ)
        path = request.path
        try:
            if path.startswith("/_control/"):
                response = self._control(request, path.removeprefix("/_control/"))
            elif path.startswith("/api/saas/"):
                response = self._api(request, path.removeprefix("/api/saas/").strip("/").split("/"))
            elif path.endswith("/oauth2/token") and request.method == "POST":
                response = self._token(request, path.strip("/").split("/")[0])
            elif path.endswith("/discovery/v2.0/keys") or path.endswith("/discovery/keys"):
                response = _json(200, {"keys": [self.key.jwk]})
            elif path in ("/", "/purchase"):
                response = self._purchase_page(request)
            elif path == "/subscriptions" or path.startswith("/subscriptions/"):
                response = self._subscriptions_page(request, path)
            else:
                response = Response("Not found", status=404)
        except ApiError as error:
            response = _json(error.status, {"error": {"code": error.code, "message": error.message}})
        return response(environ, start_response)

    def _token(self, request: Request, tenant_id: str) -> Response:
        form = request.form
        with self._lock:
            publisher = self.publishers.get(tenant_id)
            if publisher is None and _is_guid(tenant_id) and _is_guid(form.get("client_id", "")):
                # a publisher that has sold nothing yet (the portal lists its subscriptions): known from now on
                publisher = self.publishers[tenant_id] = Publisher("", tenant_id, form["client_id"], None, None)
            if form.get("grant_type") != "client_credentials" or form.get("resource") != MARKETPLACE_APP_ID:
                return _json(400, {"error": "invalid_request", "error_description": "AADSTS900144: grant_type "
                                   "client_credentials and the marketplace resource are required."})
            if publisher is None or form.get("client_id") != publisher.client_id:
                return _json(400, {"error": "unauthorized_client", "error_description":
                                   "AADSTS700016: Application not found in the directory."})
            if publisher.secret_expired or not form.get("client_secret"):
                return _json(401, {"error": "invalid_client", "error_description":
                                   "AADSTS7000222: The provided client secret keys are expired."})
            token = f"fake-at-{secrets.token_urlsafe(24)}"
            self.access_tokens[token] = (tenant_id, self.now() + 3599)
        return _json(200, {"token_type": "Bearer", "expires_in": "3599", "ext_expires_in": "3599",
                           "expires_on": str(int(self.now()) + 3599), "resource": MARKETPLACE_APP_ID,
                           "access_token": token})

    # --- the API ------------------------------------------------------------------------------------------------

    def _api(self, request: Request, parts: list[str]) -> Response:
        if request.args.get("api-version") != API_VERSION:
            raise ApiError(400, "The api-version query parameter is required: 2018-08-31.")
        bearer = request.headers.get("Authorization", "")
        with self._lock:
            found = self.access_tokens.get(bearer.removeprefix("Bearer ").strip()) \
                if bearer.lower().startswith("bearer ") else None
            if found is None or found[1] < self.now():
                raise ApiError(403, "The authorization token is invalid or expired, or the offer is published "
                                    "with a different Azure AD app ID.", "Forbidden")
            tenant_id = found[0]
            answer = self._route(request, parts, tenant_id)
            self.calls.append({"method": request.method, "path": request.path, "status": answer.status_code,
                               "at": self.now()})
            return answer

    def _route(self, request: Request, parts: list[str], tenant_id: str) -> Response:
        method, body = request.method, request.get_json(silent=True) or {}
        if parts == ["subscriptions", "resolve"] and method == "POST":
            return _json(200, self._resolve(request.headers.get("x-ms-marketplace-token", ""), tenant_id))
        if parts == ["subscriptions"] and method == "GET":
            return _json(200, self._list(request, tenant_id))
        if len(parts) < 2 or parts[0] != "subscriptions":
            raise ApiError(404, "Not found.", "NotFound")
        subscription = self._owned(parts[1], tenant_id)
        rest = parts[2:]
        if rest == [] and method == "GET":
            return _json(200, subscription)
        if rest == ["activate"] and method == "POST":
            self._activate(subscription, body)
            return Response(status=200)
        if rest == ["listAvailablePlans"] and method == "GET":
            return _json(200, {"plans": [self._plan_json(p) for p in self.offers[subscription["offerId"]]["plans"]]})
        if rest == [] and method == "PATCH":
            return self._change(request, subscription, body)
        if rest == [] and method == "DELETE":
            if subscription["saasSubscriptionStatus"] == "Unsubscribed":
                raise ApiError(400, "The subscription is unsubscribed already.")
            operation = self._start(subscription, "Unsubscribe", plan_id=None, quantity=None, source="Partner")
            self._later(operation["id"])
            return self._accepted(request, subscription, operation)
        if rest == ["operations"] and method == "GET":
            return _json(200, {"operations": [_public(o) for o in self.operations.values()
                                              if o["subscriptionId"] == subscription["id"]
                                              and o["status"] in ("NotStarted", "InProgress")]})
        if len(rest) == 2 and rest[0] == "operations":
            operation = self.operations.get(rest[1])
            if operation is None or operation["subscriptionId"] != subscription["id"]:
                raise ApiError(404, "No such operation.", "NotFound")
            if method == "GET":
                return _json(200, _public(operation))
            if method == "PATCH":
                self._patch_operation(operation, body)
                return Response(status=200)
        raise ApiError(404, "Not found.", "NotFound")

    def _resolve(self, token: str, tenant_id: str) -> Json:
        found = self.landing_tokens.get(token)
        if found is None:
            raise ApiError(400, "Failed to decrypt token with either primary or secondary secret.",
                           "TokenIsInvalidOrExpired")
        subscription_id, issued = found
        if self.now() - issued > LANDING_TOKEN_HOURS * 3600:
            raise ApiError(400, "Token is invalid or expired.", "TokenIsInvalidOrExpired")
        subscription = self._owned(subscription_id, tenant_id, missing=400)
        return {"id": subscription["id"], "subscriptionName": subscription["name"], "offerId": subscription["offerId"],
                "planId": subscription["planId"], "quantity": subscription["quantity"],
                "subscription": dict(subscription)}

    def _list(self, request: Request, tenant_id: str) -> Json:
        mine = [s for sid, s in self.subscriptions.items() if self.owners[sid] == tenant_id]
        start = int(request.args.get("continuationToken") or 0) if (request.args.get("continuationToken") or "0"
                                                                    ).isdigit() else 0
        page = mine[start:start + self.page_size]
        answer: Json = {"subscriptions": page}
        if start + self.page_size < len(mine):
            query = urlencode({"api-version": API_VERSION, "continuationToken": start + self.page_size})
            answer["@nextLink"] = f"{request.host_url.rstrip('/')}/api/saas/subscriptions/?{query}"
        return answer

    def _activate(self, subscription: Json, body: Json) -> None:
        status = subscription["saasSubscriptionStatus"]
        if status == "Unsubscribed":
            raise ApiError(404, "The subscription is unsubscribed.", "NotFound")
        if status != "PendingFulfillmentStart":
            raise ApiError(400, f"The subscription is {status} already.")
        if body.get("planId") != subscription["planId"]:
            raise ApiError(400, "planId is missing or differs from the purchased plan.")
        if subscription["quantity"] is not None and body.get("quantity") != subscription["quantity"]:
            raise ApiError(400, "quantity differs from the purchased quantity.")
        start = datetime.fromtimestamp(self.now(), UTC)
        subscription.update(saasSubscriptionStatus="Subscribed", lastModified=self._iso())
        subscription["term"].update(startDate=_iso(start), endDate=_iso(_month_later(start)))
        self.activations.append({"subscription": subscription["id"], "at": self.now()})

    def _change(self, request: Request, subscription: Json, body: Json) -> Response:
        if subscription["saasSubscriptionStatus"] != "Subscribed":
            raise ApiError(400, "Only a Subscribed subscription can be changed.")
        if ("planId" in body) == ("quantity" in body):
            raise ApiError(400, "Either the plan or the quantity of seats can be changed at one time, not both.")
        if "planId" in body:
            operation = self._start(subscription, "ChangePlan", plan_id=str(body["planId"]), quantity=None,
                                    source="Partner")
        else:
            quantity = body.get("quantity")
            if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity < 1:
                raise ApiError(400, "quantity must be a positive whole number.")
            operation = self._start(subscription, "ChangeQuantity", plan_id=None, quantity=quantity, source="Partner")
        self._later(operation["id"])
        return self._accepted(request, subscription, operation)

    def _later(self, operation_id: str) -> None:
        """The webhook of a publisher's own request follows its 202, from another thread."""
        threading.Thread(target=self._deliver_quietly, args=(operation_id,), name="fake-microsoft-webhook",
                         daemon=True).start()

    def _deliver_quietly(self, operation_id: str) -> None:
        time.sleep(0.05)  # after the 202 has reached the publisher
        self.deliver(operation_id)

    def _accepted(self, request: Request, subscription: Json, operation: Json) -> Response:
        location = (f"{request.host_url.rstrip('/')}/api/saas/subscriptions/{subscription['id']}/operations/"
                    f"{operation['id']}?api-version={API_VERSION}")
        return Response(status=202, headers={"Operation-Location": location})

    def _patch_operation(self, operation: Json, body: Json) -> None:
        status = body.get("status")
        if status not in ("Success", "Failure"):
            raise ApiError(400, "status must be Success or Failure.")
        sent = operation["_sent_at"]
        self.patches.append({"operation": operation["id"], "status": status, "at": self.now(),
                             "seconds_after_webhook": round(time.monotonic() - sent, 3) if sent else None})
        if operation["status"] != "InProgress":
            raise ApiError(409, f"The operation is {operation['status']} already: a newer update is fulfilled.",
                           "Conflict")
        self._decide(operation, success=status == "Success")

    def _owned(self, subscription_id: str, tenant_id: str, missing: int = 404) -> Json:
        subscription = self.subscriptions.get(subscription_id)
        if subscription is None or self.owners.get(subscription_id) != tenant_id:
            raise ApiError(missing, "No such subscription.", "NotFound")
        return subscription

    def _subscription_any(self, subscription_id: str) -> Json:
        subscription = self.subscriptions.get(subscription_id)
        if subscription is None:
            raise ApiError(404, "No such subscription.", "NotFound")
        return subscription

    def _plan_json(self, plan: Json) -> Json:
        per_seat = bool(plan.get("isPricePerSeat"))
        return {"planId": plan["planId"], "displayName": plan["displayName"], "isPrivate": False,
                "description": plan.get("description", ""), "minQuantity": plan.get("minQuantity", 1) if per_seat
                else None, "maxQuantity": plan.get("maxQuantity", 1000) if per_seat else None,
                "hasFreeTrials": False, "isPricePerSeat": per_seat, "isStopSell": False, "market": "DE",
                "planComponents": {"recurrentBillingTerms": [
                    {"currency": "EUR", "price": plan.get("price", 0) / 100, "termUnit": "P1M",
                     "termDescription": "1 month", "meteredQuantityIncluded": []}], "meteringDimensions": []}}

    def _iso(self) -> str:
        return _iso(datetime.fromtimestamp(self.now(), UTC))

    # --- controls -----------------------------------------------------------------------------------------------

    def state(self) -> Json:
        with self._lock:
            return {"publishers": [vars(p).copy() for p in self.publishers.values()],
                    "subscriptions": list(self.subscriptions.values()),
                    "operations": [_public(o) for o in self.operations.values()],
                    "landing_tokens": [{"token": t, "subscription": s, "issued": i}
                                       for t, (s, i) in self.landing_tokens.items()],
                    "webhooks": list(self.webhooks), "patches": list(self.patches),
                    "activations": list(self.activations), "calls": list(self.calls)}

    def _control(self, request: Request, what: str) -> Response:
        body = request.get_json(silent=True) or {}
        if what == "state" and request.method == "GET":
            return _json(200, self.state())
        if request.method != "POST":
            return _json(405, {"error": "POST"})
        try:
            if what == "publisher":
                found = self.set_publisher(str(body["publisher"]), webhook_url=body.get("webhook_url"),
                                           landing_url=body.get("landing_url"))
                return _json(200, vars(found).copy())
            if what == "webhook":
                return _json(200, self.send(str(body["subscription"]), str(body["action"]),
                                            plan_id=body.get("planId"), quantity=body.get("quantity"),
                                            signing=str(body.get("token", "valid"))))
            if what == "replay":
                return _json(200, self.replay(str(body["operation"]), signing=str(body.get("token", "valid"))))
            if what == "expire-secret":
                self.publisher(str(body["publisher"])).secret_expired = bool(body.get("expired", True))
            elif what == "offers":
                self.set_offers(body["offers"])
            elif what == "settings":
                self.accept_seconds = float(body.get("accept_seconds", self.accept_seconds))
                self.page_size = max(1, int(body.get("page_size", self.page_size)))
            elif what == "clock":
                self.offset += float(body.get("advance", 0))
            elif what == "reset":
                self.reset()
            else:
                return _json(404, {"error": "no such control"})
        except (KeyError, TypeError, ValueError) as error:
            return _json(400, {"error": f"bad control request: {error}"})
        return _json(200, {"ok": True})

    # --- the customer's pages -----------------------------------------------------------------------------------

    def _purchase_page(self, request: Request) -> Response:
        slug = (request.values.get("publisher") or "default").strip()[:63]
        if request.method != "POST":
            return _html(self._purchase_form(slug))
        offer_id, _, plan_id = (request.form.get("plan") or "").partition("/")
        seats = request.form.get("quantity", "").strip()
        try:
            subscription, token = self.purchase(slug, offer_id=offer_id, plan_id=plan_id,
                                                email=request.form.get("email", "").strip(),
                                                quantity=int(seats) if seats.isdigit() else None,
                                                name=request.form.get("name", "").strip()[:100])
            target = self.landing_link(subscription["id"]) if self.publisher(slug).landing_url else None
        except ApiError as error:
            return _html(self._purchase_form(slug, error.message), status=400)
        if target is None:
            return _html(f"<h1>Bought</h1><p>No landing page is set for this publisher. Token: <code>"
                         f"{html.escape(token)}</code></p>")
        return Response(status=303, headers={"Location": target})

    def _purchase_form(self, slug: str, error: str | None = None) -> str:
        options = "".join(
            f'<option value="{html.escape(oid)}/{html.escape(p["planId"])}">{html.escape(o["displayName"])} - '
            f'{html.escape(p["displayName"])}{" (per seat)" if p.get("isPricePerSeat") else ""}, '
            f'{p.get("price", 0) / 100:.2f} EUR/month</option>'
            for oid, o in self.offers.items() for p in o["plans"])
        problem = f'<p class="error" role="alert">{html.escape(error)}</p>' if error else ""
        return (f"<h1>Buy in the sandbox marketplace</h1><p>Sandbox: this plays the customer buying a SaaS offer in "
                f"the Azure portal. Nothing is charged.</p>{problem}<form method=\"post\">"
                f'<input type="hidden" name="publisher" value="{html.escape(slug)}">'
                f'<label>Plan<select name="plan">{options}</select></label>'
                '<label>Seats (per-seat plans only)<input name="quantity" inputmode="numeric" value=""></label>'
                '<label>Subscription name<input name="name" value=""></label>'
                '<label>Your email<input name="email" type="email" required></label>'
                "<button type=\"submit\">Subscribe and configure account</button></form>"
                f'<p><a href="/subscriptions?publisher={quote(slug)}">Your SaaS subscriptions</a></p>')

    def _subscriptions_page(self, request: Request, path: str) -> Response:
        parts = path.strip("/").split("/")
        if len(parts) == 3 and parts[2] == "manage":
            with self._lock:
                self._subscription_any(parts[1])
            return Response(status=303, headers={"Location": self.landing_link(parts[1])})
        slug = (request.values.get("publisher") or "default")[:63]
        said = ""
        if len(parts) == 3 and parts[2] == "action" and request.method == "POST":
            said = self._customer_action(parts[1], request.form)
        tenant_id = sandbox_publisher(slug)[0]
        with self._lock:
            rows = [s for sid, s in self.subscriptions.items() if self.owners[sid] == tenant_id]
        items = "".join(self._row(s, slug) for s in rows)
        note = f'<p role="status">{html.escape(said)}</p>' if said else ""
        return _html(f"<h1>Your SaaS subscriptions</h1>{note}<ul>{items or '<li>None yet.</li>'}</ul>"
                     f'<p><a href="/purchase?publisher={quote(slug)}">Buy another</a></p>')

    def _row(self, subscription: Json, slug: str) -> str:
        """One subscription with what the customer (or Microsoft's billing) can do to it in the Azure portal."""
        plans = [p["planId"] for p in self.offers.get(subscription["offerId"], {}).get("plans", [])
                 if p["planId"] != subscription["planId"]]
        choices = "".join(f'<option value="{html.escape(p)}">{html.escape(p)}</option>' for p in plans)
        form = (f'<form method="post" action="/subscriptions/{subscription["id"]}/action">'
                f'<input type="hidden" name="publisher" value="{html.escape(slug)}">'
                f'<select name="plan">{choices}</select>'
                '<button name="action" value="ChangePlan">Change plan</button> '
                '<input name="quantity" size="3" placeholder="seats">'
                '<button name="action" value="ChangeQuantity">Change seats</button> '
                + "".join(f'<button name="action" value="{a}">{a}</button> '
                          for a in ("Suspend", "Reinstate", "Renew", "Unsubscribe")) + "</form>")
        seats = f" x {subscription['quantity']}" if subscription["quantity"] else ""
        return (f"<li>{html.escape(subscription['name'])}: {html.escape(subscription['offerId'])} / "
                f"{html.escape(subscription['planId'])}{seats}, {html.escape(subscription['saasSubscriptionStatus'])} "
                f'<a href="/subscriptions/{subscription["id"]}/manage">{_manage_label(subscription)}</a>{form}</li>')

    def _customer_action(self, subscription_id: str, form: Any) -> str:
        action = form.get("action", "")
        seats = (form.get("quantity") or "").strip()
        try:
            answer = self.send(subscription_id, action, plan_id=form.get("plan") or None,
                               quantity=int(seats) if seats.isdigit() else None)
        except ApiError as error:
            return error.message
        return (f"{action}: the publisher answered {answer['delivered'] or 'nothing'}; "
                f"the operation is {answer['operation']['status']}.")


def _public(obj: Json) -> Json:
    return {key: value for key, value in obj.items() if not key.startswith("_")}


def _manage_label(subscription: Json) -> str:
    pending = subscription["saasSubscriptionStatus"] == "PendingFulfillmentStart"
    return "Configure account" if pending else "Manage SaaS experience"


def _is_guid(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value.lower()
    except ValueError:
        return False


def _local(url: str | None) -> str | None:
    if url is not None and urlsplit(url.replace("{publisher}", "x")).hostname != "127.0.0.1":
        raise ValueError("the sandbox marketplace sends webhooks and customers to 127.0.0.1 only")
    return url


def _http_transport(url: str, headers: dict[str, str], body: bytes) -> int:
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 (127.0.0.1 only)
            answer.read()
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except OSError:
        return 0  # no answer: Microsoft retries later (and accepts a change after 10 seconds)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f0Z")


def _parse(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    return datetime.strptime(value[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)


def _month_later(moment: datetime) -> datetime:
    return moment + timedelta(days=30)


def _json(status: int, body: Json) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json")


_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Sandbox Microsoft marketplace</title>
<style>body{{font-family:sans-serif;max-width:34rem;margin:3rem auto}}label{{display:block;margin:.8rem 0}}
input,select{{display:block;width:100%;padding:.4rem}}.error{{color:#b00020}}</style></head><body>{body}</body></html>"""


def _html(body: str, status: int = 200) -> Response:
    return Response(_PAGE.format(body=body), status=status, mimetype="text/html")



def start_sandbox_microsoft(config: dict[str, object], port: int = 0) -> FakeServer:
    """Serve the fake marketplace and point SANDBOX_MICROSOFT_URL at it. Its webhooks and customers go to the portal
    on PUBLIC_PORT, when known (the landing page on 127.0.0.1: the default tenant)."""
    public_port = config.get("PUBLIC_PORT")
    portal = f"http://127.0.0.1:{public_port}" if public_port else None
    fake = MicrosoftFake(webhook_url=f"{portal}/webhooks/microsoft/{{publisher}}" if portal else None,
                         landing_url=f"{portal}/marketplace/microsoft/landing" if portal else None)
    served = serve(fake, port)
    config["SANDBOX_MICROSOFT_URL"] = served.url
    return served
