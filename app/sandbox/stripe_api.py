"""A small fake of Stripe's API: the demo and the tests drive the real `stripe` SDK (through the Stripe adapter)
against it, on 127.0.0.1.

`StripeFake` is a WSGI app keeping everything in memory behind one lock. It answers the paths the adapter uses,
with form-encoded requests (`metadata[x]=y`, `expand[0]=...`) and Stripe's JSON shapes and errors:

GET  /v1/balance, GET /v1/customers                 check() reads one of these
POST /v1/customers                                   cus_...
POST /v1/checkout/sessions, GET /v1/checkout/sessions/<id>   cs_... (mode setup), its hosted page at `url`
POST /v1/payment_methods/<id>/detach                 pm_...
POST /v1/payment_intents                             pi_... off-session, confirmed at once
POST /v1/refunds                                     re_...
GET/POST /pay/<session id>                           the hosted page: a form for card number, expiry, CVC

Keys: a bearer key starting `sk_test_` is accepted (401 otherwise). The sandbox's tenant keys are
`sk_test_sandbox_<tenant slug>`: each key is its own account (customers, cards and charges of one account
are invisible to another). An `Idempotency-Key` gives the same answer every time it is sent again.
Cards follow `app.sandbox.cards`: refused cards show Stripe's message on the hosted page; a charge of a card
that does not charge answers 402 `card_error` with the PaymentIntent in the error.

Webhooks: each event is signed as Stripe does (`Stripe-Signature: t=<unix time>,v1=<hmac-sha256 hex of
"<t>.<payload>" with the endpoint secret>`) and POSTed, from a background thread, to the webhook URL with
`{account}` replaced by the account's name (the tenant slug). Only 127.0.0.1 URLs are accepted.

Controls (JSON bodies, no key needed):
POST /_control/webhook {url, secret}        where events go (url may contain {account}); url null: nowhere
POST /_control/decline {count, code}        decline the next N charges (code: Stripe's decline code)
POST /_control/delay {seconds, count}       answer the next N API requests `seconds` late
POST /_control/lose {count}                 do the work of the next N API requests, then hang up
POST /_control/duplicates {on}              send each webhook twice
GET  /_control/state                        customers, sessions, cards, charges, refunds, events, calls
POST /_control/reset                        forget everything
"""

from __future__ import annotations

import hashlib
import hmac
import html
import itertools
import json
import re
import secrets
import socket
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from werkzeug.wrappers import Request, Response

from app.sandbox.cards import card as test_card

Json = dict[str, Any]

SANDBOX_KEY_PREFIX = "sk_test_sandbox_"
_KEY = re.compile(r"^Bearer (sk_test_[A-Za-z0-9_-]{1,120})$")
_FIELD = re.compile(r"^([A-Za-z0-9_]+)((?:\[[^\]]*\])*)$")


def sandbox_key(account: str) -> str:
    """The sandbox's secret key for `account` (a tenant's slug)."""
    return SANDBOX_KEY_PREFIX + account


def sign(payload: bytes, secret: str, timestamp: int) -> str:
    """The Stripe-Signature header for `payload` as Stripe computes it."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


class StripeError(Exception):
    def __init__(self, status: int, body: Json) -> None:
        super().__init__(status, body)
        self.status, self.body = status, body


def _invalid(message: str, param: str | None = None, status: int = 400, code: str | None = None) -> StripeError:
    error = {"type": "invalid_request_error", "message": message}
    if param:
        error["param"] = param
    if code:
        error["code"] = code
    return StripeError(status, {"error": error})


def _missing(kind: str, ident: str, param: str = "id") -> StripeError:
    return _invalid(f"No such {kind}: '{ident}'", param, 404, "resource_missing")


@dataclass
class _Account:
    customers: dict[str, Json] = field(default_factory=dict)
    sessions: dict[str, Json] = field(default_factory=dict)
    cards: dict[str, Json] = field(default_factory=dict)  # pm id -> payment method JSON
    numbers: dict[str, str] = field(default_factory=dict)  # pm id -> card number (never leaves the fake)
    intents: dict[str, Json] = field(default_factory=dict)
    refunds: dict[str, Json] = field(default_factory=dict)
    answers: dict[str, tuple[int, Json]] = field(default_factory=dict)  # idempotency key -> answer


class StripeFake:
    """Stripe's API for the paths the adapter uses, with a hosted setup page and signed webhooks."""

    def __init__(self, *, webhook_url: str | None = None, webhook_secret: str = "whsec_sandbox",  # noqa: S107
                 clock: Callable[[], float] = time.time) -> None:
        self._lock = threading.RLock()
        self._ids = itertools.count(1)
        self._run = secrets.token_hex(3)  # ids stay unique across restarts (the portal keeps them)
        self._clock = clock
        self.webhook_url, self.webhook_secret = webhook_url, webhook_secret
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.accounts: dict[str, _Account] = {}
            self.events: list[Json] = []
            self.calls: list[Json] = []
            self.declines: list[str] = []
            self.delays: list[float] = []
            self.lost = 0
            self.duplicates = False

    # --- controls ------------------------------------------------------------------------------------

    def set_webhook(self, url: str | None, secret: str | None = None) -> None:
        if url is not None and urlsplit(url.replace("{account}", "x")).hostname != "127.0.0.1":
            raise ValueError("webhooks go to 127.0.0.1 only")
        self.webhook_url = url
        if secret:
            self.webhook_secret = secret

    def decline_next(self, count: int = 1, code: str = "card_declined") -> None:
        with self._lock:
            self.declines.extend([code] * count)

    def delay_next(self, seconds: float, count: int = 1) -> None:
        with self._lock:
            self.delays.extend([seconds] * count)

    def lose_next(self, count: int = 1) -> None:
        with self._lock:
            self.lost += count

    def state(self) -> Json:
        with self._lock:
            return {"accounts": {name: {"customers": list(a.customers.values()),
                                        "sessions": list(a.sessions.values()),
                                        "payment_methods": list(a.cards.values()),
                                        "payment_intents": list(a.intents.values()),
                                        "refunds": list(a.refunds.values())} for name, a in self.accounts.items()},
                    "events": list(self.events), "calls": list(self.calls)}

    def succeeded_charges(self, account: str) -> list[Json]:
        with self._lock:
            intents = self.accounts.get(account, _Account()).intents.values()
            return [pi for pi in intents if pi["status"] == "succeeded"]

    # --- WSGI ----------------------------------------------------------------------------------------

    def __call__(self, environ: Json, start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = Request(environ)
        path = request.path
        if path.startswith("/_control/"):
            response = self._control(request, path.removeprefix("/_control/"))
        elif path.startswith("/pay/"):
            response = self._hosted_page(request, path.removeprefix("/pay/"))
        elif path.startswith("/v1/"):
            response = self._api(request)
        else:
            response = Response("Not found", status=404)
        return response(environ, start_response)

    def _control(self, request: Request, what: str) -> Response:
        body = request.get_json(silent=True) or {}
        try:
            if what == "state" and request.method == "GET":
                return _json(200, self.state())
            if request.method != "POST":
                return _json(405, {"error": "POST"})
            if what == "webhook":
                self.set_webhook(body.get("url"), body.get("secret"))
            elif what == "decline":
                self.decline_next(int(body.get("count", 1)), str(body.get("code", "card_declined")))
            elif what == "delay":
                self.delay_next(float(body.get("seconds", 1)), int(body.get("count", 1)))
            elif what == "lose":
                self.lose_next(int(body.get("count", 1)))
            elif what == "duplicates":
                self.duplicates = bool(body.get("on", True))
            elif what == "reset":
                self.reset()
            else:
                return _json(404, {"error": "no such control"})
        except (TypeError, ValueError) as error:
            return _json(400, {"error": str(error)})
        return _json(200, {"ok": True})

    def _api(self, request: Request) -> Response:
        with self._lock:
            delay = self.delays.pop(0) if self.delays else 0.0
        if delay:
            time.sleep(delay)
        match = _KEY.match(request.headers.get("Authorization", ""))
        if match is None:
            status, body = 401, {"error": {"type": "invalid_request_error",
                                           "message": "Invalid API Key provided."}}
        else:
            status, body = self._answer(request, match.group(1))
        with self._lock:
            self.calls.append({"method": request.method, "path": request.path, "status": status})
            lose = self.lost > 0
            self.lost -= 1 if lose else 0
        if lose:
            _hang_up(request)
        return _json(status, body)

    def _answer(self, request: Request, key: str) -> tuple[int, Json]:
        account_name = key.removeprefix(SANDBOX_KEY_PREFIX) if key.startswith(SANDBOX_KEY_PREFIX) else key
        idempotency_key = request.headers.get("Idempotency-Key") if request.method == "POST" else None
        with self._lock:
            account = self.accounts.setdefault(account_name, _Account())
            if idempotency_key and idempotency_key in account.answers:
                return account.answers[idempotency_key]
            try:
                answer = 200, self._route(request, account_name, account, _nested(request.form))
            except StripeError as error:
                answer = error.status, error.body
            if idempotency_key and answer[0] < 500:
                account.answers[idempotency_key] = answer
            return answer

    def _route(self, request: Request, name: str, account: _Account, form: Json) -> Json:
        parts = request.path.strip("/").split("/")[1:]
        method = request.method
        if parts == ["balance"] and method == "GET":
            return {"object": "balance", "livemode": False, "available": [], "pending": []}
        if parts == ["customers"] and method == "GET":
            return {"object": "list", "url": "/v1/customers", "has_more": False,
                    "data": list(account.customers.values())[:1]}
        if parts == ["customers"] and method == "POST":
            return self._create_customer(account, form)
        if parts == ["checkout", "sessions"] and method == "POST":
            return self._create_session(request, name, account, form)
        if len(parts) == 3 and parts[:2] == ["checkout", "sessions"] and method == "GET":
            return self._session(account, parts[2], _expand(request.args))
        if len(parts) == 3 and parts[0] == "payment_methods" and parts[2] == "detach" and method == "POST":
            return self._detach(account, parts[1])
        if parts == ["payment_intents"] and method == "POST":
            return self._charge(name, account, form)
        if parts == ["refunds"] and method == "POST":
            return self._refund(name, account, form)
        raise _invalid(f"Unrecognized request URL ({method}: {request.path}).", status=404)

    def _id(self, prefix: str) -> str:
        return f"{prefix}_fake{self._run}{next(self._ids):08d}"

    def _create_customer(self, account: _Account, form: Json) -> Json:
        customer = {"id": self._id("cus"), "object": "customer", "livemode": False, "created": int(self._clock()),
                    "email": form.get("email"), "name": form.get("name"), "metadata": form.get("metadata", {})}
        account.customers[customer["id"]] = customer
        return customer

    def _create_session(self, request: Request, name: str, account: _Account, form: Json) -> Json:
        if form.get("mode") != "setup":
            raise _invalid("This fake only makes Checkout Sessions in setup mode.", "mode")
        customer = form.get("customer")
        if customer not in account.customers:
            raise _missing("customer", str(customer), "customer")
        for param in ("success_url", "cancel_url"):
            if not str(form.get(param, "")).startswith(("http://", "https://")):
                raise _invalid(f"Not a valid URL: {param}", param)
        session_id = self._id("cs_test")
        session = {"id": session_id, "object": "checkout.session", "livemode": False, "mode": "setup",
                   "status": "open", "customer": customer, "metadata": form.get("metadata", {}),
                   "success_url": form["success_url"], "cancel_url": form["cancel_url"],
                   "payment_method_types": list(form.get("payment_method_types", {}).values()) or ["card"],
                   "setup_intent": None, "created": int(self._clock()),
                   "url": f"{request.host_url.rstrip('/')}/pay/{session_id}"}
        account.sessions[session_id] = session
        session["_account"] = name  # stripped from answers
        return _public(session)

    def _session(self, account: _Account, session_id: str, expand: set[str]) -> Json:
        session = account.sessions.get(session_id)
        if session is None:
            raise _missing("checkout.session", session_id)
        answer = _public(session)
        intent = session.get("_setup_intent")
        if intent is not None and ("setup_intent" in expand or "setup_intent.payment_method" in expand):
            intent = dict(intent)
            if "setup_intent.payment_method" in expand:
                intent["payment_method"] = account.cards[intent["payment_method"]]
            answer["setup_intent"] = intent
        return answer

    def _detach(self, account: _Account, card_id: str) -> Json:
        card = account.cards.get(card_id)
        if card is None:
            raise _missing("PaymentMethod", card_id)
        card["customer"] = None
        return card

    def _charge(self, name: str, account: _Account, form: Json) -> Json:
        try:
            amount = int(form.get("amount", ""))
        except ValueError:
            raise _invalid("Invalid integer: amount", "amount") from None
        if amount < 50:
            raise _invalid("Amount must be at least 50 cents", "amount", code="amount_too_small")
        card_id = str(form.get("payment_method", ""))
        card = account.cards.get(card_id)
        if card is None:
            raise _missing("PaymentMethod", card_id, "payment_method")
        if card["customer"] != form.get("customer"):
            raise _invalid("The provided PaymentMethod is not attached to this customer.", "payment_method")
        behaviour = test_card(account.numbers[card_id])
        decline = self.declines.pop(0) if self.declines else None
        if decline is None and behaviour is not None and not behaviour.charges:
            decline = behaviour.decline_code
        intent = {"id": self._id("pi"), "object": "payment_intent", "livemode": False, "amount": amount,
                  "currency": str(form.get("currency", "")).lower(), "customer": form.get("customer"),
                  "payment_method": card_id, "description": form.get("description"),
                  "metadata": form.get("metadata", {}), "created": int(self._clock()), "latest_charge": None,
                  "status": "succeeded", "last_payment_error": None, "amount_refunded": 0}
        account.intents[intent["id"]] = intent
        if decline is None:
            intent["latest_charge"] = self._id("ch")
            self._emit(name, "payment_intent.succeeded", intent)
            return intent
        message = "Your card has insufficient funds." if decline == "insufficient_funds" else "Your card was declined."
        error = {"type": "card_error", "code": "card_declined", "decline_code": decline, "message": message,
                 "charge": self._id("ch"), "payment_method": card}
        intent.update(status="requires_payment_method", last_payment_error=error)
        self._emit(name, "payment_intent.payment_failed", intent)
        raise StripeError(402, {"error": {**error, "payment_intent": dict(intent)}})

    def _refund(self, name: str, account: _Account, form: Json) -> Json:
        intent = account.intents.get(str(form.get("payment_intent", "")))
        if intent is None or intent["status"] != "succeeded":
            raise _missing("payment_intent", str(form.get("payment_intent")), "payment_intent")
        amount = int(form.get("amount") or intent["amount"] - intent["amount_refunded"])
        if amount <= 0 or amount > intent["amount"] - intent["amount_refunded"]:
            raise _invalid("Refund amount is greater than unrefunded amount on charge.", "amount",
                           code="charge_already_refunded")
        intent["amount_refunded"] += amount
        refund = {"id": self._id("re"), "object": "refund", "amount": amount, "currency": intent["currency"],
                  "payment_intent": intent["id"], "charge": intent["latest_charge"], "status": "succeeded",
                  "created": int(self._clock())}
        account.refunds[refund["id"]] = refund
        self._emit(name, "charge.refunded", {"id": intent["latest_charge"], "object": "charge",
                                             "payment_intent": intent["id"], "amount": intent["amount"],
                                             "amount_refunded": intent["amount_refunded"], "refunded": True})
        return refund

    # --- the hosted page ------------------------------------------------------------------------------

    def _hosted_page(self, request: Request, session_id: str) -> Response:
        with self._lock:
            found = [(name, a) for name, a in self.accounts.items() if session_id in a.sessions]
            if not found:
                return Response("This page does not exist.", status=404)
            name, account = found[0]
            session = account.sessions[session_id]
            if session["status"] != "open":
                return _page(session, "This page has expired or was used already.", status=410)
            if request.method != "POST":
                return _page(session)
            number = request.form.get("number", "")
            problem = self._card_problem(number, request.form.get("expiry", ""), request.form.get("cvc", ""))
            if problem:
                return _page(session, problem, number=number, status=402)
            self._save_card(name, account, session, number, request.form.get("expiry", ""))
            target = session["success_url"].replace("{CHECKOUT_SESSION_ID}", session_id)
        return Response(status=303, headers={"Location": target})

    @staticmethod
    def _card_problem(number: str, expiry: str, cvc: str) -> str | None:
        digits = number.replace(" ", "").replace("-", "")
        if not digits.isdigit() or not 12 <= len(digits) <= 19:
            return "Your card number is incomplete."
        behaviour = test_card(digits)
        if behaviour is None:
            return "Your card number is invalid. In test mode, use a test card such as 4242 4242 4242 4242."
        if _expiry(expiry) is None:
            return "Your card's expiration date is incomplete or in the past."
        if not cvc.isdigit() or len(cvc) not in (3, 4):
            return "Your card's security code is incomplete."
        if not behaviour.saves:
            return behaviour.message
        return None

    def _save_card(self, name: str, account: _Account, session: Json, number: str, expiry: str) -> None:
        digits = number.replace(" ", "").replace("-", "")
        behaviour = test_card(digits)
        month, year = _expiry(expiry) or (12, 2034)
        card = {"id": self._id("pm"), "object": "payment_method", "type": "card", "livemode": False,
                "customer": session["customer"], "created": int(self._clock()),
                "card": {"brand": behaviour.brand if behaviour else "unknown", "last4": digits[-4:],
                         "exp_month": month, "exp_year": year, "funding": "credit", "country": "US"}}
        account.cards[card["id"]] = card
        account.numbers[card["id"]] = digits
        intent = {"id": self._id("seti"), "object": "setup_intent", "livemode": False, "status": "succeeded",
                  "customer": session["customer"], "payment_method": card["id"], "usage": "off_session",
                  "metadata": session["metadata"]}
        session.update(status="complete", setup_intent=intent["id"], _setup_intent=intent)
        self._emit(name, "setup_intent.succeeded", intent)
        self._emit(name, "checkout.session.completed", _public(session))

    # --- webhooks -------------------------------------------------------------------------------------

    def _emit(self, account: str, kind: str, obj: Json) -> None:
        event = {"id": self._id("evt"), "object": "event", "api_version": "2024-06-20", "livemode": False,
                 "created": int(self._clock()), "type": kind, "data": {"object": obj},
                 "pending_webhooks": 1, "request": {"id": None, "idempotency_key": None}}
        self.events.append({"account": account, **event})
        if self.webhook_url:
            url = self.webhook_url.replace("{account}", account)
            times = 2 if self.duplicates else 1
            threading.Thread(target=self._deliver, args=(url, json.dumps(event).encode(), times),
                             name="fake-stripe-webhook", daemon=True).start()

    def _deliver(self, url: str, payload: bytes, times: int) -> None:
        for _ in range(times):
            signature = sign(payload, self.webhook_secret, int(self._clock()))
            headers = {"Content-Type": "application/json", "Stripe-Signature": signature, "User-Agent": "Stripe/1.0"}
            request = urllib.request.Request(url, data=payload, method="POST", headers=headers)  # noqa: S310
            try:
                with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 (127.0.0.1 only)
                    answer.read()
            except OSError:
                pass  # Stripe would retry later; the portal also reads the session when the customer returns


def _public(obj: Json) -> Json:
    return {key: value for key, value in obj.items() if not key.startswith("_")}


def _expand(args: Any) -> set[str]:
    return {value for key, value in args.items(multi=True) if key.startswith("expand[")}


def _expiry(value: str) -> tuple[int, int] | None:
    match = re.match(r"^\s*(\d{1,2})\s*/\s*(\d{2}|\d{4})\s*$", value)
    if not match:
        return None
    month, year = int(match.group(1)), int(match.group(2))
    year = year + 2000 if year < 100 else year
    if not 1 <= month <= 12 or (year, month) < time.gmtime()[:2]:
        return None
    return month, year


def _nested(form: Any) -> Json:
    """`metadata[a]=1&expand[0]=x` -> {"metadata": {"a": "1"}, "expand": {"0": "x"}} (one or two levels)."""
    result: Json = {}
    for key, value in form.items(multi=True):
        match = _FIELD.match(key)
        if not match:
            continue
        name, rest = match.group(1), re.findall(r"\[([^\]]*)\]", match.group(2))
        target = result
        for part in [name, *rest][:-1]:
            target = target.setdefault(part, {}) if isinstance(target.get(part, {}), dict) else {}
        target[([name, *rest])[-1]] = value
    return result


def _json(status: int, body: Json) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json",
                    headers={"Request-Id": f"req_fake{time.monotonic_ns()}"})


def _hang_up(request: Request) -> None:
    sock = request.environ.get("werkzeug.socket")
    if sock is None:
        raise RuntimeError("dropping the connection needs werkzeug's server (serve())")
    sock.shutdown(socket.SHUT_RDWR)
    raise ConnectionAbortedError("answer dropped by fault injection")


_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Save a card - Sandbox Stripe</title>
<style>body{{font-family:sans-serif;max-width:28rem;margin:3rem auto}}label{{display:block;margin:.8rem 0}}
input{{display:block;width:100%;padding:.4rem}}.error{{color:#b00020}}</style></head><body>
<h1>Save a card</h1><p>Sandbox: no real card is charged. Test cards: 4242 4242 4242 4242 (works),
4000 0000 0000 0002 (declined), 4000 0000 0000 9995 (insufficient funds), 4000 0000 0000 0341 (saves, then
every charge fails).</p>{error}
<form method="post"><label>Card number<input name="number" autocomplete="cc-number" inputmode="numeric"
value="{number}" required></label><label>Expiry (MM / YY)<input name="expiry" autocomplete="cc-exp"
placeholder="MM / YY" value="12 / 34" required></label><label>CVC<input name="cvc" autocomplete="cc-csc"
inputmode="numeric" value="123" required></label><button type="submit">Save card</button></form>
<p><a href="{cancel}">Cancel and go back</a></p></body></html>"""


def _page(session: Json, error: str | None = None, number: str = "", status: int = 200) -> Response:
    body = _PAGE.format(error=f'<p class="error" role="alert">{html.escape(error)}</p>' if error else "",
                        number=html.escape(number), cancel=html.escape(session["cancel_url"]))
    return Response(body, status=status, mimetype="text/html")
