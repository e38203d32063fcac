"""Values hypothesis picks, beside the hand-picked ones: search terms, logins, ids and path segments.

Derandomized (the same examples on every run), no example database, no shrinking: a fixed, fast sample.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.fuzz.fuzzing import send
from tests.fuzz.hostile import Value
from tests.fuzz.probes import Probe
from tests.fuzz.visitors import Visitor

SAMPLE = settings(max_examples=30, deadline=None, database=None, derandomize=True,
                  phases=[Phase.explicit, Phase.generate],
                  suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
texts = st.text(max_size=300)
htmx = st.booleans()


def check(visitor: Visitor, probe: Probe, *, htmx: bool) -> None:
    from tests.fuzz.checks import problems
    from tests.fuzz.world import TENANT_NAME

    response = send(visitor, probe, htmx=htmx)
    where = f"{probe.method} {probe.path} {probe.query[:200]!r} as {visitor.role}{' (htmx)' if htmx else ''}"
    assert not isinstance(response, BaseException), f"{where}: raised {response!r}"
    found = problems(response, htmx=htmx, tenant_name=TENANT_NAME)
    assert not found, f"{where}: {'; '.join(found)} [logged: {visitor.errors.first_cause()}]"


@pytest.fixture
def visitor(app, world, errors):
    """One visitor per role for all the examples of a test."""
    visitors: dict[str, Visitor] = {}

    def of(role: str) -> Visitor:
        if role not in visitors:
            visitors[role] = Visitor(app, app.test_client(), world, role, errors=errors)
        return visitors[role]

    return of


@SAMPLE
@given(query=texts, page=st.one_of(texts, st.integers().map(str)), as_htmx=htmx)
def test_support_search(visitor, query, page, as_htmx):
    check(visitor("support"), Probe("GET", "/support/", "search", query=f"q={quote(query)}&page={quote(page)}"),
          htmx=as_htmx)


@SAMPLE
@given(email=texts, password=texts, next_url=texts, as_htmx=htmx)
def test_login(visitor, email, password, next_url, as_htmx):
    form = (("email", Value("", email)), ("password", Value("", password)))
    check(visitor("anonymous"), Probe("POST", "/login", "login", query=f"next={quote(next_url)}", form=form),
          htmx=as_htmx)


@SAMPLE
@given(subscription_id=st.integers(min_value=0, max_value=2**80), item_id=st.integers(min_value=0, max_value=2**80),
       command=texts, as_htmx=htmx)
def test_ids_and_path_segments(visitor, world, subscription_id, item_id, command, as_htmx):
    customer = visitor("customer")
    check(customer, Probe("GET", f"/subscriptions/{subscription_id}/items/{item_id}", "ids"), htmx=as_htmx)
    path = f"/subscriptions/{world.subscription_id}/items/{world.item_id}/actions/{quote(command, safe='')}"
    check(customer, Probe("POST", path, "command", form=()), htmx=as_htmx)
