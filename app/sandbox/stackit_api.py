"""A small fake of the STACKIT Marketplace vendor API: the demo and the tests drive the real STACKIT adapter
(app/providers/marketplaces/stackit.py) against it, on 127.0.0.1.

`StackitFake` is a WSGI app keeping everything in memory behind one lock. It answers the vendor API's paths with
its JSON (`VendorSubscription`: subscriptionId, lifecycleState, projectId (the customer's project),
organizationId, product{productId, planId, vendorProductId, vendorPlanId, productName, ...}):

POST /v1/vendors/projects/<vendor project>/resolve-customer {"token"}      the purchase a redirect token stands for
GET  /v1/vendors/projects/<vendor project>/subscriptions?cursor=&limit=&productId=   cursor pages, limit 0..100
GET  /v1/vendors/projects/<vendor project>/subscriptions/<id>
POST /v1/vendors/projects/<vendor project>/subscriptions/<id>/approve {"instanceTarget"}   204
GET  /v1/resolve-customer/keys.json          the redirect tokens' public keys: {kid: PEM}, as the real one
POST /token                                   a service account's key flow (an RS512 assertion -> access token)
GET/POST /purchase?vendor=<vendor project>&signup=<sign-up URL>   the page that plays the customer's purchase

Redirect tokens are RS256 JWTs with `kid` in the header, `iss` = the keys URL (as in production, where the issuer
is https://keys.marketplace.stackit.cloud/v1/resolve-customer/keys.json) and a 10-minute expiry. A token is
resolved once: resolving it again (a reloaded or replayed sign-up link) answers 400, as does an expired one.
The real API does not document this; the fake is strict so the portal's handling of a reused token is tested.

A subscription waits SUBSCRIPTION_PENDING for the vendor's approval for PENDING_TTL (one hour, as STACKIT
documents); after that it is SUBSCRIPTION_REJECTED and approving it answers 409.

Auth: a bearer access token. `sandbox_token(project)` (`stackit_sandbox_<vendor project>`) is a static token
for that project (STACKIT's service-account token flow); "sandbox-service-account-key", what the portal uses for
a tenant without a connection of its own, is one for every project; a key from `/_control/service-account-key`
gets one through `/token` (the key flow). A token for another project answers 403, none or an unknown one 401.

Demo catalogue: product "cloudportal-servers" (vendorProductId) with plans "standard" and "pro" (vendorPlanIds).

Controls (JSON bodies, no token needed):
POST /_control/purchase {vendor, vendorPlanId, vendorProductId?, projectId?, organizationId?}
                                                   -> {subscriptionId, token}
POST /_control/cancel {subscriptionId, final?}     CANCELLING (the term's end), final: CANCELLED
POST /_control/deactivate {subscriptionId}         INACTIVE (STACKIT stopped it, e.g. unpaid)
POST /_control/reactivate {subscriptionId}         ACTIVE again (from INACTIVE or CANCELLING)
POST /_control/change-plan {subscriptionId, vendorPlanId}   the customer buys the new plan: a new subscription
                                                   (pending, same customer project) and the old one CANCELLING;
                                                   -> {subscriptionId, token}
POST /_control/token {subscriptionId, expiresIn?, issuer?}  a fresh redirect token for a subscription
POST /_control/advance {seconds}                   move the fake's clock on (pending TTL, token expiry)
POST /_control/page-size {size}                    the most a page holds (default 100)
POST /_control/service-account-key {project}       a service account key (JSON, with its private key) for the key flow
GET  /_control/state                               subscriptions, calls
POST /_control/reset                               forget every subscription and token
"""

from __future__ import annotations

import html
import json
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from werkzeug.wrappers import Request, Response

Json = dict[str, Any]

KEYS_PATH = "/v1/resolve-customer/keys.json"
TOKEN_PARAMETER = "x-stackit-marketplace-token"  # noqa: S105  (a parameter name)
PENDING_TTL = 3600.0  # seconds a subscription waits for the vendor's approval
TOKEN_LIFETIME = 600.0  # seconds a redirect token is valid
SANDBOX_TOKEN_PREFIX = "stackit_sandbox_"  # noqa: S105  (the sandbox's, public)
SANDBOX_SHARED_TOKEN = "sandbox-service-account-key"  # noqa: S105  (every sandbox tenant's: the portal's default)
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ACCESS_TOKEN_LIFETIME = 3600
MAX_LIMIT = 100

PENDING, ACTIVE, INACTIVE = "SUBSCRIPTION_PENDING", "SUBSCRIPTION_ACTIVE", "SUBSCRIPTION_INACTIVE"
CANCELLING, CANCELLED, REJECTED = "SUBSCRIPTION_CANCELLING", "SUBSCRIPTION_CANCELLED", "SUBSCRIPTION_REJECTED"

PRODUCT = "cloudportal-servers"
CATALOGUE: dict[str, Json] = {
    PRODUCT: {"productId": "cloudportal-servers-5e1f0c2a", "productName": "Cloud Portal Servers",
              "vendorName": "Cloud Portal", "vendorWebsiteUrl": "https://cloudportal.example",
              "plans": {"standard": {"planId": "standard-0a1b2c3d", "name": "Standard", "price": "29.00 EUR / month"},
                        "pro": {"planId": "pro-7e6d5c4b", "name": "Pro", "price": "79.00 EUR / month"}}},
}
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def purchase_url(base_url: str, vendor: str, signup_url: str) -> str:
    """The fake's purchase page for the vendor project `vendor`, which sends the customer on to `signup_url`
    (the portal's /marketplace/stackit/signup) with the redirect token."""
    return f"{base_url.rstrip('/')}/purchase?{urlencode({'vendor': vendor, 'signup': signup_url})}"


def sandbox_token(project_id: str) -> str:
    """The sandbox's static access token for the vendor project `project_id`."""
    return SANDBOX_TOKEN_PREFIX + project_id


class StackitError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(status, message)
        self.status, self.message = status, message


@dataclass
class _Subscription:
    id: str
    vendor: str  # the vendor's project
    product: str  # vendorProductId
    plan: str  # vendorPlanId
    project: str  # the customer's project
    organization: str
    state: str
    created: float
    instance_target: str | None = None
    approved: float | None = None

    def json(self) -> Json:
        product = CATALOGUE[self.product]
        plan = product["plans"][self.plan]
        return {"subscriptionId": self.id, "lifecycleState": self.state, "projectId": self.project,
                "organizationId": self.organization,
                "product": {"productId": product["productId"], "planId": plan["planId"],
                            "vendorProductId": self.product, "vendorPlanId": self.plan,
                            "productName": product["productName"], "vendorName": product["vendorName"],
                            "vendorWebsiteUrl": product["vendorWebsiteUrl"], "deliveryMethod": "SAAS",
                            "lifecycleState": "PRODUCT_LIVE", "priceType": "FIXED", "pricingPlan": plan["price"],
                            "assets": {}}}


@dataclass
class _Token:
    subscription: str
    vendor: str
    expires: float
    used: bool = False


@dataclass
class _State:
    subscriptions: dict[str, _Subscription] = field(default_factory=dict)  # in creation order
    tokens: dict[str, _Token] = field(default_factory=dict)  # jti -> token
    access: dict[str, tuple[str, float]] = field(default_factory=dict)  # access token -> (project, expires)
    service_accounts: dict[str, tuple[Any, str, str]] = field(default_factory=dict)  # kid -> (public key, project, sub)
    calls: list[Json] = field(default_factory=list)


class StackitFake:
    """The STACKIT Marketplace vendor API, its redirect-token keys, a purchase page and controls for tests."""

    def __init__(self, *, clock: Callable[[], float] = time.time, page_size: int = MAX_LIMIT) -> None:
        self._lock = threading.RLock()
        self._clock = clock
        self._offset = 0.0
        self._page_size = page_size
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = secrets.token_hex(8)
        self.base_url = ""  # where it is served (set once known): the tokens' issuer is its keys URL
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._state = _State()
            self._offset = 0.0

    def now(self) -> float:
        return self._clock() + self._offset

    # --- what tests and the purchase page do ---------------------------------------------------------------

    def set_clock(self, clock: Callable[[], float]) -> None:
        """Follow another clock (the portal's, in tests), from now on."""
        with self._lock:
            self._clock, self._offset = clock, 0.0

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._offset += seconds

    def set_page_size(self, size: int) -> None:
        if not 1 <= size <= MAX_LIMIT:
            raise ValueError(f"a page holds 1 to {MAX_LIMIT} subscriptions")
        self._page_size = size

    def public_keys(self) -> dict[str, str]:
        pem = self._key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo)
        return {self.kid: pem.decode()}

    def purchase(self, vendor: str, plan: str, *, product: str = PRODUCT, project: str | None = None,
                 organization: str | None = None, state: str = PENDING, issuer: str | None = None) -> tuple[str, str]:
        """The customer subscribes to `plan`: a pending subscription and its redirect token, (id, token)."""
        if product not in CATALOGUE or plan not in CATALOGUE[product]["plans"]:
            raise ValueError(f"there is no plan {plan!r} of product {product!r}")
        for value in (project, organization):
            if value is not None and not _UUID.match(value):
                raise ValueError("project and organization ids are UUIDs")
        with self._lock:
            subscription = _Subscription(str(uuid.uuid4()), vendor, product, plan, project or str(uuid.uuid4()),
                                         organization or str(uuid.uuid4()), state, self.now())
            self._state.subscriptions[subscription.id] = subscription
            return subscription.id, self.token(subscription.id, issuer=issuer)

    def token(self, subscription_id: str, *, issuer: str | None = None, expires_in: float = TOKEN_LIFETIME,
              key: Any = None, kid: str | None = None) -> str:
        """A redirect token for the subscription. `issuer` is the keys URL the portal fetches (the fake's own
        address, which a request knows); tests forge tokens with another `key`, `kid` or `issuer`."""
        with self._lock:
            subscription = self._subscription(subscription_id)
            jti = secrets.token_urlsafe(16)
            moment = self.now()
            self._state.tokens[jti] = _Token(subscription.id, subscription.vendor, moment + expires_in)
        claims = {"iss": self._issuer() if issuer is None else issuer, "iat": int(moment),
                  "exp": int(moment + expires_in), "jti": jti}
        return jwt.encode(claims, key or self._key, algorithm="RS256", headers={"kid": kid or self.kid})

    def set_state(self, subscription_id: str, state: str, *, allowed: Iterable[str] = ()) -> None:
        with self._lock:
            subscription = self._subscription(subscription_id)
            self._expire(subscription)
            if allowed and subscription.state not in allowed:
                raise StackitError(409, f"Subscription {subscription_id} is {subscription.state}.")
            subscription.state = state

    def cancel(self, subscription_id: str, *, final: bool = False) -> None:
        self.set_state(subscription_id, CANCELLED if final else CANCELLING,
                       allowed=(ACTIVE, INACTIVE, CANCELLING) if final else (ACTIVE, INACTIVE))

    def change_plan(self, subscription_id: str, plan: str) -> tuple[str, str]:
        """The customer changes plan as STACKIT has them do it: buys the new plan (a new subscription id,
        pending) and cancels the old one for the end of its term."""
        with self._lock:
            old = self._subscription(subscription_id)
            if plan == old.plan:
                raise ValueError("that is the subscription's plan already")
            self.cancel(old.id)
            return self.purchase(old.vendor, plan, product=old.product, project=old.project,
                                 organization=old.organization)

    def subscription(self, subscription_id: str) -> Json:
        with self._lock:
            subscription = self._subscription(subscription_id)
            self._expire(subscription)
            return {**subscription.json(), "instanceTarget": subscription.instance_target}

    def service_account_key(self, project: str) -> str:
        """A service account key for `project`, as the STACKIT Portal hands it out (JSON with the private key)."""
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        kid, sub = str(uuid.uuid4()), str(uuid.uuid4())
        with self._lock:
            self._state.service_accounts[kid] = (private.public_key(), project, sub)
        pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode()
        return json.dumps({"id": kid, "keyType": "USER_MANAGED", "keyAlgorithm": "RSA_2048", "active": True,
                           "credentials": {"kid": kid, "iss": f"sa-{sub[:8]}@sa.stackit.cloud", "sub": sub,
                                           "aud": "https://stackit-service-account-prod.apps.01.cf.eu01.stackit.cloud",
                                           "privateKey": pem}})

    def state(self) -> Json:
        with self._lock:
            for subscription in self._state.subscriptions.values():
                self._expire(subscription)
            return {"subscriptions": [{**s.json(), "vendor": s.vendor, "instanceTarget": s.instance_target}
                                      for s in self._state.subscriptions.values()],
                    "calls": list(self._state.calls), "now": self.now()}

    def calls(self) -> list[Json]:
        with self._lock:
            return list(self._state.calls)

    def _subscription(self, subscription_id: str) -> _Subscription:
        found = self._state.subscriptions.get(subscription_id)
        if found is None:
            raise StackitError(404, f"Subscription {subscription_id} not found.")
        return found

    def _expire(self, subscription: _Subscription) -> None:
        if subscription.state == PENDING and self.now() >= subscription.created + PENDING_TTL:
            subscription.state = REJECTED

    # --- WSGI ------------------------------------------------------------------------------------------------

    def __call__(self, environ: Json, start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = Request(environ)
        path = request.path
        if path.startswith("/_control/"):
            response = self._control(request, path.removeprefix("/_control/"))
        elif path == KEYS_PATH and request.method == "GET":
            response = _json(200, self.public_keys())
        elif path == "/token" and request.method == "POST":
            response = self._token_endpoint(request)
        elif path == "/purchase":
            response = self._purchase_page(request)
        elif path.startswith("/v1/vendors/projects/"):
            response = self._api(request)
        else:
            response = _json(404, {"code": 404, "message": "Not found"})
        return response(environ, start_response)

    def _issuer(self, request: Request | None = None) -> str:
        base = self.base_url or (request.host_url if request is not None else "")
        return base.rstrip("/") + KEYS_PATH

    def _control(self, request: Request, what: str) -> Response:
        body = request.get_json(silent=True) or {}
        try:
            if what == "state" and request.method == "GET":
                return _json(200, self.state())
            if request.method != "POST":
                return _json(405, {"message": "POST"})
            answer: Json = {"ok": True}
            if what == "purchase":
                sid, token = self.purchase(str(body["vendor"]), str(body["vendorPlanId"]),
                                           product=str(body.get("vendorProductId") or PRODUCT),
                                           project=body.get("projectId"), organization=body.get("organizationId"),
                                           issuer=self._issuer(request))
                answer = {"subscriptionId": sid, "token": token}
            elif what == "cancel":
                self.cancel(str(body["subscriptionId"]), final=bool(body.get("final")))
            elif what == "deactivate":
                self.set_state(str(body["subscriptionId"]), INACTIVE, allowed=(ACTIVE,))
            elif what == "reactivate":
                self.set_state(str(body["subscriptionId"]), ACTIVE, allowed=(INACTIVE, CANCELLING))
            elif what == "change-plan":
                sid, token = self.change_plan(str(body["subscriptionId"]), str(body["vendorPlanId"]))
                answer = {"subscriptionId": sid, "token": token}
            elif what == "token":
                answer = {"token": self.token(str(body["subscriptionId"]), issuer=str(body.get("issuer")
                                              or self._issuer(request)),
                                              expires_in=float(body.get("expiresIn", TOKEN_LIFETIME)))}
            elif what == "advance":
                self.advance(float(body.get("seconds", 0)))
            elif what == "page-size":
                self.set_page_size(int(body.get("size", MAX_LIMIT)))
            elif what == "service-account-key":
                answer = {"key": self.service_account_key(str(body["project"]))}
            elif what == "reset":
                self.reset()
            else:
                return _json(404, {"message": "no such control"})
        except KeyError as missing:
            return _json(400, {"message": f"{missing.args[0]} is required"})
        except (TypeError, ValueError) as error:
            return _json(400, {"message": str(error)})
        except StackitError as error:
            return _json(error.status, {"code": error.status, "message": error.message})
        return _json(200, answer)

    # --- the service account key flow ------------------------------------------------------------------------

    def _token_endpoint(self, request: Request) -> Response:
        if request.form.get("grant_type") != JWT_BEARER:
            return _json(400, {"error": "unsupported_grant_type"})
        assertion = request.form.get("assertion", "")
        try:
            kid = jwt.get_unverified_header(assertion).get("kid", "")
            with self._lock:
                account = self._state.service_accounts.get(kid)
            if account is None:
                return _json(401, {"error": "invalid_grant", "error_description": "unknown key"})
            public, project, sub = account
            # the assertion's expiry is the caller's real time, whatever the fake's clock says
            claims = jwt.decode(assertion, public, algorithms=["RS512"], options={"verify_aud": False,
                                                                                   "require": ["exp"]})
            if claims.get("sub") != sub:
                return _json(401, {"error": "invalid_grant", "error_description": "assertion expired or wrong"})
        except jwt.PyJWTError:
            return _json(401, {"error": "invalid_grant", "error_description": "bad assertion"})
        access = "stackit_at_" + secrets.token_urlsafe(24)
        with self._lock:
            self._state.access[access] = (project, self.now() + ACCESS_TOKEN_LIFETIME)
        return _json(200, {"access_token": access, "token_type": "Bearer", "expires_in": ACCESS_TOKEN_LIFETIME,
                           "refresh_token": secrets.token_urlsafe(24), "scope": ""})

    def _project_of(self, request: Request, project_in_path: str) -> str | None:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            return None
        token = header.removeprefix("Bearer ").strip()
        if token.startswith(SANDBOX_TOKEN_PREFIX):
            return token.removeprefix(SANDBOX_TOKEN_PREFIX) or None
        if token == SANDBOX_SHARED_TOKEN:
            return project_in_path
        with self._lock:
            project, expires = self._state.access.get(token, (None, 0.0))
        return project if expires > self.now() else None

    # --- the vendor API --------------------------------------------------------------------------------------

    def _api(self, request: Request) -> Response:
        parts = request.path.strip("/").split("/")[3:]  # after v1/vendors/projects
        project = self._project_of(request, parts[0] if parts else "")
        try:
            if project is None:
                raise StackitError(401, "Unauthorized: a valid bearer token is required.")
            if not parts or parts[0] != project:
                raise StackitError(403, "Forbidden: the token is not authorized for this project.")
            status, body = self._route(request, project, parts[1:])
        except StackitError as error:
            status, body = error.status, {"code": error.status, "message": error.message}
        with self._lock:
            self._state.calls.append({"method": request.method, "path": request.path, "status": status,
                                      "at": self.now()})
        return Response(status=204) if status == 204 else _json(status, body)

    def _route(self, request: Request, vendor: str, parts: list[str]) -> tuple[int, Json]:
        method = request.method
        with self._lock:
            if parts == ["resolve-customer"] and method == "POST":
                return 200, self._resolve(vendor, (request.get_json(silent=True) or {}).get("token"))
            if parts == ["subscriptions"] and method == "GET":
                return 200, self._list(vendor, request.args)
            if len(parts) in (2, 3) and parts[0] == "subscriptions":
                subscription = self._subscription(parts[1])
                if subscription.vendor != vendor:
                    raise StackitError(404, f"Subscription {parts[1]} not found.")
                self._expire(subscription)
                if len(parts) == 2 and method == "GET":
                    return 200, subscription.json()
                if parts[2:] == ["approve"] and method == "POST":
                    self._approve(subscription, request.get_json(silent=True) or {})
                    return 204, {}
        raise StackitError(404, "Not found")

    def _resolve(self, vendor: str, token: object) -> Json:
        if not isinstance(token, str) or not token:
            raise StackitError(400, "token is required.")
        try:
            jti = jwt.decode(token, self._key.public_key(), algorithms=["RS256"],
                             options={"verify_exp": False, "verify_iss": False}).get("jti", "")
        except jwt.PyJWTError:
            raise StackitError(400, "The token is invalid.") from None
        found = self._state.tokens.get(jti)
        if found is None or found.vendor != vendor:
            raise StackitError(400, "The token is invalid.")
        if found.used:
            raise StackitError(400, "The token has been used already.")
        if found.expires <= self.now():
            raise StackitError(400, "The token has expired.")
        found.used = True
        subscription = self._subscription(found.subscription)
        self._expire(subscription)
        return subscription.json()

    def _list(self, vendor: str, args: Any) -> Json:
        try:
            limit = int(args.get("limit", MAX_LIMIT))
        except ValueError:
            raise StackitError(400, "limit must be a number.") from None
        if not 0 <= limit <= MAX_LIMIT:
            raise StackitError(400, f"limit must be between 0 and {MAX_LIMIT}.")
        limit = min(limit or MAX_LIMIT, self._page_size)
        mine = [s for s in self._state.subscriptions.values() if s.vendor == vendor
                and (not args.get("productId") or CATALOGUE[s.product]["productId"] == args["productId"])]
        start = 0
        if cursor := args.get("cursor"):
            ids = [s.id for s in mine]
            if cursor not in ids:
                raise StackitError(400, "The cursor is invalid.")
            start = ids.index(cursor) + 1
        page = mine[start:start + limit]
        for subscription in page:
            self._expire(subscription)
        more = start + limit < len(mine)
        return {"items": [s.json() for s in page], "cursor": page[-1].id if more and page else "", "limit": limit}

    def _approve(self, subscription: _Subscription, body: Json) -> None:
        target = body.get("instanceTarget")
        if target is not None and (not isinstance(target, str) or len(target) > 512):
            raise StackitError(400, "instanceTarget must be a URL of at most 512 characters.")
        if subscription.state != PENDING:
            raise StackitError(409, f"Subscription {subscription.id} is {subscription.state}, not pending.")
        subscription.state, subscription.instance_target, subscription.approved = ACTIVE, target, self.now()

    # --- the purchase page -----------------------------------------------------------------------------------

    def _purchase_page(self, request: Request) -> Response:
        values = request.form if request.method == "POST" else request.args
        vendor, signup = values.get("vendor", ""), values.get("signup", "")
        if not vendor or urlsplit(signup).scheme not in ("http", "https"):
            return _html(400, "<p>This page needs the vendor's project (<code>vendor</code>) and its sign-up URL "
                              "(<code>signup</code>).</p>")
        if request.method == "POST":
            try:
                _, token = self.purchase(vendor, values.get("plan", ""), product=values.get("product", PRODUCT),
                                         issuer=self._issuer(request))
            except ValueError as error:
                return _html(400, f"<p>{html.escape(str(error))}</p>")
            joiner = "&" if urlsplit(signup).query else "?"
            return Response(status=303, headers={"Location": signup + joiner + urlencode({TOKEN_PARAMETER: token})})
        options = "".join(
            f'<label><input type="radio" name="plan" value="{html.escape(plan)}"{" checked" if i == 0 else ""}> '
            f'{html.escape(product["productName"])} — {html.escape(info["name"])} ({html.escape(info["price"])})'
            f"</label><br>"
            for product in CATALOGUE.values() for i, (plan, info) in enumerate(product["plans"].items()))
        return _html(200, f"""<h1>STACKIT Marketplace (sandbox)</h1>
<form method="post" action="/purchase">
<input type="hidden" name="vendor" value="{html.escape(vendor)}">
<input type="hidden" name="signup" value="{html.escape(signup)}">
<input type="hidden" name="product" value="{PRODUCT}">
<fieldset><legend>Choose a plan</legend>{options}</fieldset>
<button type="submit">Subscribe</button>
</form>""")


def _json(status: int, body: object) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json")


def _html(status: int, body: str) -> Response:
    page = (f"<!doctype html><html><head><meta charset=utf-8><title>STACKIT Marketplace (sandbox)</title></head>"
            f"<body>{body}</body></html>")
    return Response(page, status=status, mimetype="text/html")
