"""Sending probes as a visitor and collecting what went wrong, grouped for one readable failure message."""

from __future__ import annotations

import itertools
from collections import defaultdict
from dataclasses import dataclass, field

from sqlalchemy import select
from werkzeug.test import TestResponse

from app.extensions import db
from app.models import Subscription
from tests.fuzz.checks import problems
from tests.fuzz.hostile import Value
from tests.fuzz.probes import CURRENT_VERSION, NEW_EMAIL, NEW_KEY, Probe, first, probes
from tests.fuzz.routes import SAFE_METHODS, Route
from tests.fuzz.visitors import Visitor, one_line
from tests.fuzz.world import TENANT_NAME

HX = {"HX-Request": "true"}
_fresh = itertools.count(1)


def walk(route: Route, visitor: Visitor) -> Findings:
    """Every probe of every method of `route`, as `visitor`."""
    findings = Findings(f"as {visitor.role}")
    depth = None
    for method in route.methods:  # GET first: whether the page is shown decides for the route's other methods
        base = first(route, method, visitor.world)
        for htmx in base.modes:
            response = send(visitor, base, htmx=htmx)
            findings.check(visitor, base, response, htmx=htmx)
            if depth is None:
                depth = "minimal" if turned_away(response, method) else (
                    "shallow" if visitor.role == "impersonating" else "full")
        for probe in probes(route, visitor.world, base, depth or "full"):
            for htmx in probe.modes:
                findings.check(visitor, probe, send(visitor, probe, htmx=htmx), htmx=htmx)
    return findings


def send(visitor: Visitor, probe: Probe, *, htmx: bool) -> TestResponse | BaseException:
    headers = dict(HX) if htmx else {}
    kwargs: dict[str, object] = {"query_string": probe.query or None, "headers": headers}
    if probe.method not in SAFE_METHODS and probe.csrf == "valid":
        headers["X-CSRFToken"] = visitor.csrf  # as htmx sends it; forms carry it as a field too
    if probe.form is not None:
        kwargs["data"] = probe.encoded_form(visitor.csrf, _placeholders(visitor))
        kwargs["content_type"] = "application/x-www-form-urlencoded"
    elif probe.body is not None:
        kwargs["data"], kwargs["content_type"] = probe.body.data, probe.body.content_type
    return visitor.open(probe.method, probe.path, **kwargs)


def _placeholders(visitor: Visitor) -> dict[Value, str]:
    version = db.session.execute(select(Subscription.version).where(
        Subscription.id == visitor.world.subscription_id)).scalar_one()
    n = next(_fresh)
    return {CURRENT_VERSION: str(version), NEW_EMAIL: f"new-{n}@example.com", NEW_KEY: f"fuzz-key-{n}"}


def turned_away(response: TestResponse | BaseException, method: str) -> bool:
    """The role does not reach the view: 403, sent to log in, or (for a page) sent elsewhere."""
    if isinstance(response, BaseException):
        return False
    target = response.headers.get("HX-Redirect") or response.headers.get("Location")
    if response.status_code == 403 or (target or "").startswith("/login"):
        return True
    return method == "GET" and target is not None


@dataclass
class Findings:
    """The failures of one route in one role, merged where plain and htmx requests fail alike."""

    where: str
    sent: int = 0
    _found: dict[tuple[str, str, str, str], list[str]] = field(default_factory=lambda: defaultdict(list))

    def check(self, visitor: Visitor, probe: Probe, response: TestResponse | BaseException, *, htmx: bool) -> None:
        self.sent += 1
        if isinstance(response, BaseException):
            found = [f"the request raised {type(response).__name__}: {one_line(str(response))} (its error page failed)"]
        else:
            found = problems(response, htmx=htmx, tenant_name=TENANT_NAME, refusal=probe.refusal)
        if not found:
            return
        cause = visitor.errors.first_cause()
        text = "; ".join(found) + (f" [logged: {cause}]" if cause else "")
        self._found[(probe.method, _short(probe.path + ("?" + probe.query if probe.query else "")), probe.label,
                     text)].append("htmx" if htmx else "plain")

    def report(self) -> str:
        lines = [f"{self.where}: {len(self._found)} failing probes (of {self.sent} requests):"]
        for (method, path, label, text), modes in self._found.items():
            lines.append(f"  {method} {path} <{label}> [{'+'.join(modes)}]: {text}")
        return "\n".join(lines)

    def __bool__(self) -> bool:
        return bool(self._found)


def _short(path: str, limit: int = 90) -> str:
    return path if len(path) <= limit else f"{path[:limit]}…({len(path):,} chars)"
