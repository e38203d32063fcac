"""Property-based tests of the whole API against its own OpenAPI document (schemathesis), in process (WSGI).

Every documented operation is called with generated inputs, valid and invalid, with a customer's token (an
admin's for the administration areas), on the suite's database (SQLite, or PostgreSQL under
TEST_DATABASE_URL). Every answer must be no 5xx and conform to the document: a documented status code, the
documented content type, a body that matches the response schema. The generated ids mostly name nothing
(404); `test_documented_answers_for_real_resources` calls each operation with the ids of a real, running
subscription, and the stateful test follows the links schemathesis infers (list -> one -> its items).

Bounded (max examples per operation) so the module runs in well under a minute; `-m "not schemathesis"`
leaves it out. Two more of schemathesis' checks are left out on purpose: `positive_data_acceptance` (a cursor
is any string in the document, yet only one this API signed is accepted: 422 naming `cursor`) and
`ignored_auth` (the tests always send a valid token).
"""

from __future__ import annotations

import contextvars
import os
import re
from collections.abc import Callable
from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import Case, GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from app.blueprints.api.ids import encode
from app.domain.accounts import Role
from app.domain.api_tokens import Scope
from app.services import api_tokens
from app.services.actors import Actor
from tests import factories
from tests.services.conftest import active_subscription, plan, profile, sandbox  # noqa: F401  (fixtures)

pytestmark = pytest.mark.schemathesis

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# Per operation and generation mode. SCHEMATHESIS_MAX_EXAMPLES=300 gives a deeper run, with a new random seed
# each time; by default the examples are the same on every run (derandomized), so CI is repeatable.
DEEPER = os.environ.get("SCHEMATHESIS_MAX_EXAMPLES")
MAX_EXAMPLES = int(DEEPER or "25")
SETTINGS = settings(
    max_examples=MAX_EXAMPLES, deadline=None, derandomize=not DEEPER, database=None,
    phases=[Phase.explicit, Phase.generate],  # no shrinking: a failure is reported as found (with its curl line)
    # The token and the subscription are the test's fixtures, shared by every example on purpose (they are
    # rolled back after the test); the in-process answers are sometimes slow on a shared machine.
    suppress_health_check=list(HealthCheck))


def isolated(app: Flask) -> Callable[..., Any]:
    """The app as a WSGI callable whose every request runs in a fresh context, as in production (and as
    tests/conftest.py's IsolatedClient does): its own app context, `g` and session."""

    def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        return contextvars.Context().run(app, environ, start_response)

    return wsgi


def audiences(app: Flask) -> dict[str, str]:
    """Documented path -> "customer" or "admin", from the blueprint that serves it (base.api_blueprint)."""
    result = {}
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1/") and "." in rule.endpoint:
            blueprint = app.blueprints.get(rule.endpoint.split(".")[0])
            path = re.sub(r"<(?:[^:>]+:)?(\w+)>", r"{\1}", rule.rule)
            result[path] = getattr(blueprint, "audience", "customer")
    return result


@pytest.fixture
def tokens(app, tenant, customer, active_subscription, monkeypatch) -> dict[str, str]:  # type: ignore[no-untyped-def]  # noqa: F811
    """A write token of the customer who has a running subscription, and an admin token of the tenant."""
    monkeypatch.setitem(app.config, "API_RATE_LIMIT", "100000 per minute")
    admin = factories.user(tenant, email="ops@example.com", role=Role.TENANT_ADMIN)
    return {
        "customer": api_tokens.create(tenant=tenant, actor=Actor(customer), name="schemathesis",
                                      scopes=frozenset({Scope.WRITE}), expires_in_days=30).secret,
        "admin": api_tokens.create(tenant=tenant, actor=Actor(admin), name="schemathesis",
                                   scopes=frozenset({Scope.ADMIN}), expires_in_days=30).secret,
    }


@pytest.fixture
def api_schema(app, tokens):  # type: ignore[no-untyped-def]  # the tenant answers on localhost
    return schemathesis.openapi.from_wsgi("/api/v1/openapi.json", isolated(app))


@pytest.fixture
def headers_for(app, tokens) -> Callable[[str], dict[str, str]]:  # type: ignore[no-untyped-def]
    by_path = audiences(app)

    def headers(path: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {tokens[by_path.get(path, 'customer')]}"}

    return headers


def real_ids(subscription: Any) -> dict[str, str]:
    [item] = subscription.items
    return {"subscription_id": encode("sub", subscription.id), "item_id": encode("item", item.id),
            "plan_id": encode("plan", subscription.plan_id)}


@pytest.mark.parametrize("mode", list(GenerationMode), ids=lambda mode: mode.value)
def test_every_operation_answers_as_documented(api_schema, headers_for, active_subscription,  # type: ignore[no-untyped-def]  # noqa: F811
                                               mode) -> None:
    """Generated requests to each operation, valid (positive) or breaking the document (negative); path
    parameters either generated or, half the time, the ids of the customer's real subscription, so the
    success answers are checked too."""
    ids = real_ids(active_subscription)
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert operations
    for operation in operations:
        names = set(re.findall(r"{(\w+)}", operation.path))
        strategy = operation.as_strategy(generation_mode=mode)
        if names & ids.keys():  # the ids it knows real; the rest (e.g. a power command) generated
            strategy |= operation.as_strategy(generation_mode=mode,
                                              path_parameters={n: ids[n] for n in names & ids.keys()})
        explore(strategy, headers_for(operation.path))


def explore(strategy: Any, headers: dict[str, str]) -> None:
    """Call the generated requests of one operation with `headers` (the token) and check every answer."""

    @SETTINGS
    @given(case=strategy)
    def call(case: Case) -> None:
        case.call_and_validate(headers={**(case.headers or {}), **headers}, checks=CHECKS)

    call()


def test_documented_answers_for_real_resources(api_schema, headers_for, active_subscription) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    [item] = active_subscription.items
    ids = {"subscription_id": encode("sub", active_subscription.id), "item_id": encode("item", item.id),
           "plan_id": encode("plan", active_subscription.plan_id), "command": "restart"}
    called = 0
    for result in api_schema.get_all_operations():
        operation = result.ok()
        names = re.findall(r"{(\w+)}", operation.path)
        if not names or not set(names) <= ids.keys():
            continue
        case = operation.Case(path_parameters={name: ids[name] for name in names},
                              headers={"Idempotency-Key": "real-resources-1"} if operation.method == "post" else None)
        response = case.call_and_validate(headers=headers_for(operation.path), checks=CHECKS)
        assert response.status_code < 500
        called += 1
    assert called >= 5




def test_stateful_links(api_schema, headers_for) -> None:  # type: ignore[no-untyped-def]
    """Sequences of calls that use one answer's ids in the next (the links schemathesis infers: an order,
    then that subscription, its cancel and resume, its items)."""
    base = api_schema.as_state_machine()

    class Sequences(base):  # type: ignore[misc, valid-type]
        def get_call_kwargs(self, case: Case) -> dict[str, Any]:
            return {"headers": headers_for(case.operation.path)}

        def validate_response(self, response: Any, case: Case, **kwargs: Any) -> None:
            case.validate_response(response, checks=CHECKS)

    Sequences.run(settings=settings(max_examples=20, deadline=None, database=None, stateful_step_count=6,
                                    suppress_health_check=list(HealthCheck)))
