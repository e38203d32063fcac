"""What the suite sends to one route with one method: a deterministic, representative set of probes.

Depth "full" (a role that reaches the view) sends every hostile value in every URL parameter, query
argument and form field, and every kind of body. "shallow" (support impersonating a customer: the customer's
views, plus the audit trail and the banner) sends the URL and query variants in full but fewer bodies.
"minimal" (a role the route turns away: 403, or a redirect instead of the page) sends a few of each. URL
variants go plain and as htmx, query and body variants alternate between the two; HEAD (the GET view) goes
plain, with a few URL variants only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from urllib.parse import quote

from app.web.api import API_PREFIX
from tests.factories import PASSWORD
from tests.fuzz.hostile import IDS, JSON_BODIES, NEXT, NUMBERS, OTHER_BODIES, STRINGS, TOO_MUCH, Body, Value
from tests.fuzz.routes import SAFE_METHODS, Route
from tests.fuzz.world import World

BOTH, PLAIN, HTMX = (False, True), (False,), (True,)
# Placeholders filled in when a probe is sent: the subscription changes as the probes run, and a taken email
# or a used idempotency key would end a registration or an order before the other fields are looked at.
CURRENT_VERSION = Value("current version")
NEW_EMAIL = Value("a new email")
NEW_KEY = Value("a new idempotency key")


@dataclass(frozen=True)
class Probe:
    method: str
    path: str
    label: str  # what is hostile about it, for failure messages
    query: str = ""  # percent-encoded
    form: tuple[tuple[str, Value], ...] | None = None  # sent URL-encoded with the session's CSRF token (`csrf`)
    body: Body | None = None  # sent as is, with the CSRF token in the X-CSRFToken header
    csrf: str = "valid"  # "valid", "missing" or "wrong"
    refusal: str | None = None  # how it must be refused, if it must (checks.REFUSALS)
    modes: tuple[bool, ...] = BOTH  # sent plain (False) and/or as htmx (True)

    def encoded_form(self, token: str, placeholders: dict[Value, str]) -> bytes:
        """The form URL-encoded, with the session's CSRF token and the placeholders filled in."""
        csrf = {"valid": [("csrf_token", Value("", token))], "wrong": [("csrf_token", Value("", "wrong"))]}
        pairs = [*csrf.get(self.csrf, []), *(self.form or ())]
        pairs = [(name, Value("", placeholders[value]) if value in placeholders else value) for name, value in pairs]
        return "&".join(f"{quote(name, safe='')}={value.encoded()}" for name, value in pairs).encode()


# Query arguments each view reads (grep request.args in app/); other routes get GENERIC_QUERIES.
ORDER_CONFIG = ("serverType", "location", "image")
QUERY_ARGS: dict[str, tuple[str, ...]] = {
    "support.index": ("q", "page"),
    "admin.audit": ("page",),
    "admin.emails": ("page",),
    "account.emails": ("page",),
    "auth.login": ("next",),
    "auth.register": ("next",),
    "account.profile": ("next",),
    "orders.new": ("quantity", *ORDER_CONFIG, "auto_backorder", "idempotency_key"),
    "orders.preview": ("quantity",),
    "orders.availability": ("quantity", *ORDER_CONFIG),
    "subscriptions.change_plan": ("plan", "quantity"),
}
NUMERIC = frozenset({"page", "quantity", "version", "plan"})
GENERIC_QUERIES = (
    ("?page=20 digits&q=NUL&next=scheme-relative", "page=99999999999999999999&q=a%00b&next=%2F%2Fevil.example%2Fx"),
    ("?page=-1&q=10,000 chars&next=lone surrogate", f"page=-1&q={'x' * 10_000}&next=%ED%A0%80"),
    ("?page=abc&q=odd Unicode", "page=abc&q=" + STRINGS[2].encoded()),
)

# Known-good values of the routes' string parameters.
STRING_PARAMS = {"provider": ("hetzner", "digitalocean"), "command": ("start", "stop", "restart"),
                 "tenant_slug": ("default", "other"), "change": ("plan", "quantity", "migrate")}

# A valid form for each endpoint that takes one; hostile values replace one field at a time.
FORMS: dict[str, Callable[[World, dict[str, str]], dict[str, str | Value]]] = {
    "auth.login": lambda w, _: {"email": w.customer.email, "password": PASSWORD},
    "auth.register": lambda w, _: {"name": "Rita Register", "email": NEW_EMAIL, "password": PASSWORD,
                                   "confirm": PASSWORD},
    "auth.forgot_password": lambda w, _: {"email": w.customer.email},
    "auth.reset_password": lambda w, _: {"password": PASSWORD, "confirm": PASSWORD},
    "account.create_token": lambda w, _: {"name": "fuzz", "read": "y", "expires_in_days": "30"},
    "account.profile": lambda w, _: {"full_name": "Casey Customer", "billing_email": "casey@example.com",
                                     "company": "ACME", "address": "Hauptstrasse 1", "postal_code": "10115",
                                     "city": "Berlin", "country": "DE"},
    "account.change_password": lambda w, _: {"password-current_password": PASSWORD,
                                             "password-new_password": PASSWORD, "password-confirm": PASSWORD},
    "account.change_email": lambda w, _: {"email-email": NEW_EMAIL, "email-password": PASSWORD},
    "admin.set_cloud_token": lambda w, p: {f"{p['provider']}-token": "hz-0123456789abcdefghijklmnopqrstuvwxyzABCD"},
    "orders.create": lambda w, _: {"quantity": "1", "serverType": "cx22", "location": "nbg1",
                                   "image": "ubuntu-24.04", "idempotency_key": NEW_KEY},
    "subscriptions.cancel": lambda w, _: {"version": CURRENT_VERSION, "reason": "Too expensive"},
    "subscriptions.switch": lambda w, _: {"version": CURRENT_VERSION, "server_type": "cx22", "location": "fsn1"},
    "subscriptions.resume": lambda w, _: {"version": CURRENT_VERSION},
    "subscriptions.change_plan": lambda w, _: {"version": CURRENT_VERSION, "plan": "1", "quantity": "1"},
    "subscriptions.cancel_scheduled_change": lambda w, _: {"version": CURRENT_VERSION},
    "support.impersonate": lambda w, _: {"reason": "Ticket #4711: cannot order"},
    "account.save_notifications": lambda w, _: {"wanted": "server_ready"},
    "admin.set_sender": lambda w, _: {"name": "Nimbus Help", "address": "help@example.com"},
}
NO_FIELDS = ("extra",)  # forms without fields get hostile values in a field no view reads


def real_segments(route: Route, world: World, theirs: bool = False) -> dict[str, str]:
    segments = {name: route.segment(name, world.ids.get(name, (1, 1))[theirs]) for name in route.int_params}
    return {**segments, **{name: STRING_PARAMS.get(name, ("x",))[0] for name in route.other_params}}


def first(route: Route, method: str, world: World) -> Probe:
    """Real ids of the role's tenant and, for a POST, a valid form: does this role reach the view?"""
    segments = real_segments(route, world)
    form = None
    if method not in SAFE_METHODS:
        fields = FORMS.get(route.endpoint, lambda w, p: {})(world, segments)
        form = tuple((name, value if isinstance(value, Value) else Value("valid", value))
                     for name, value in fields.items())
    label = "real ids, valid form" if form is not None else "real ids"
    return Probe(method, route.path(segments), label, form=form, modes=PLAIN if method == "HEAD" else BOTH)


def probes(route: Route, world: World, base: Probe, depth: str) -> list[Probe]:
    """Everything but `base` (see the module docstring)."""
    if base.method == "HEAD":
        return _urls(route, world, base, "minimal")
    urls = _urls(route, world, base, depth)
    queries = _queries(route, base, depth)
    bodies = _bodies(base, depth) if base.method not in SAFE_METHODS else []
    return [*urls, *(replace(probe, modes=(PLAIN, HTMX)[n % 2]) for n, probe in enumerate([*queries, *bodies]))]


def _urls(route: Route, world: World, base: Probe, depth: str) -> list[Probe]:
    reached = depth != "minimal"
    real = real_segments(route, world)
    found = []
    if route.int_params:
        found.append(replace(base, path=route.path(real_segments(route, world, theirs=True)),
                             label="the other tenant's ids"))
    for name in route.int_params:
        for value in IDS if reached else (IDS[5], IDS[7]):
            found.append(replace(base, path=route.path({**real, name: value.encoded()}), label=f"{name}={value.name}"))
    for name in route.other_params:
        known = [Value(good, good) for good in STRING_PARAMS.get(name, ())[1:]]
        for value in [*known, *STRINGS] if reached else STRINGS[:1]:
            found.append(replace(base, path=route.path({**real, name: value.encoded()}), label=f"{name}={value.name}"))
    return found


def _queries(route: Route, base: Probe, depth: str) -> list[Probe]:
    args, reached = QUERY_ARGS.get(route.endpoint), depth != "minimal"
    if not reached or args is None:
        chosen = GENERIC_QUERIES if reached else GENERIC_QUERIES[:1]
        return [replace(base, query=query, label=label) for label, query in chosen]
    found = []
    for arg in args:
        values = [*STRINGS, *(NUMBERS if arg in NUMERIC else ()), *(NEXT if arg == "next" else ())]
        found += [replace(base, query=f"{arg}={value.encoded()}", label=f"?{arg}={value.name}") for value in values]
    return found


def _bodies(base: Probe, depth: str) -> list[Probe]:
    refused = [replace(base, form=None, body=body, label=body.name, refusal="too large") for body in TOO_MUCH]
    # The API takes no CSRF token: a browser session without a bearer token is refused as unauthenticated; so is
    # a Microsoft webhook without Microsoft's bearer token.
    csrf_refusal = ("no API token" if base.path.startswith(API_PREFIX + "/")
                    else "no bearer token" if base.path.startswith("/webhooks/microsoft/") else "bad CSRF")
    no_csrf = replace(base, csrf="missing", label="no CSRF token", refusal=csrf_refusal)
    if depth != "full":
        return [*(replace(base, form=None, body=b, label=b.name) for b in (JSON_BODIES[0], JSON_BODIES[-1])),
                *refused, no_csrf]
    fields = dict(base.form or ())
    found = []
    for name in list(fields) or list(NO_FIELDS):
        values = [*STRINGS, *(NUMBERS if name.rsplit("-", 1)[-1] in NUMERIC else ())]
        found += [replace(base, form=tuple({**fields, name: value}.items()), label=f"form {name}={value.name}")
                  for value in values]
    twice = tuple((name, value) for name, value in fields.items() for value in (value, Value("other", "other")))
    found += [replace(base, form=twice, label="form: every field twice"),
              replace(base, form=(), label="form: every field missing")]
    found += [replace(base, form=None, body=body, label=body.name) for body in (*JSON_BODIES, *OTHER_BODIES)]
    return [*found, *refused, no_csrf, replace(base, csrf="wrong", label="wrong CSRF token", refusal=csrf_refusal)]
