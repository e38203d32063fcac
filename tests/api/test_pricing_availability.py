"""POST /pricing/preview and /availability/check, /availability/alternatives: the order form's price box and
availability, through the API (the same ordering functions), changing nothing."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from app.blueprints.api.ids import encode
from app.clock import now
from app.domain.api_tokens import Scope
from app.extensions import db
from app.models import Subscription
from app.sandbox.cloud import sandbox_for
from app.services import api_tokens, ordering
from app.services.actors import Actor
from tests import factories

CONFIG = {"serverType": "cx22", "location": "nbg1"}


def _token(tenant, user, *scopes: Scope) -> str:  # type: ignore[no-untyped-def]
    return api_tokens.create(tenant=tenant, actor=Actor(user), name="ci", scopes=frozenset(scopes or (Scope.WRITE,)),
                             expires_in_days=30).secret


def _auth(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def _subscriptions() -> int:
    return db.session.scalar(select(func.count()).select_from(Subscription)) or 0


@pytest.fixture
def plan(tenant):  # type: ignore[no-untyped-def]
    """Customers choose server type, location and quantity (up to 10); 9.90 EUR."""
    return factories.plan(tenant, name="Flex", allow_customer_location_selection=True, quantity_allowed=True,
                          max_quantity=10)


@pytest.fixture
def cloud(tenant, clock):  # type: ignore[no-untyped-def]
    return sandbox_for(tenant.id, "hetzner", now)


@pytest.fixture
def secret(tenant, customer) -> str:  # type: ignore[no-untyped-def]
    return _token(tenant, customer)


def test_preview_is_the_order_forms_quote(client, auth, tenant, customer, plan, secret, cloud) -> None:  # type: ignore[no-untyped-def]
    body = {"planId": encode("plan", plan.id), "requestedConfig": CONFIG, "quantity": 3, "somethingElse": 1}
    response = client.post("/api/v1/pricing/preview", json=body, headers=_auth(secret))
    assert response.status_code == 200, response.json
    quote = response.json
    expected = ordering.price(plan, 3, server_type="cx22", location="nbg1")
    assert quote["recurring"] == {"amount": expected.recurring.amount, "currency": "EUR"}
    assert quote["dueNow"] == {"amount": expected.due_now.amount, "currency": "EUR"}
    assert quote["currency"] == "EUR" and quote["quantity"] == 3 and quote["planId"] == body["planId"]
    assert sum(line["amount"]["amount"] for line in quote["lines"]) == expected.recurring.amount
    assert quote["lines"][0]["quantity"] == 3
    auth.login(customer.email)  # the price box of the order page says the same
    box = client.get(f"/order/{plan.id}/preview", query_string={**CONFIG, "quantity": 3}).get_data(as_text=True)
    assert int(re.search(r'data-recurring="(\d+)"', box).group(1)) == quote["recurring"]["amount"]
    assert int(re.search(r'data-due-now="(\d+)"', box).group(1)) == quote["dueNow"]["amount"]
    assert _subscriptions() == 0


def test_preview_refuses_bad_input_naming_the_field(client, tenant, plan, secret) -> None:  # type: ignore[no-untyped-def]
    pid = encode("plan", plan.id)
    cases = [({"planId": "nope"}, "planId"), ({"planId": pid, "quantity": "x"}, "quantity"),
             ({"planId": pid, "quantity": 11, "requestedConfig": CONFIG}, "quantity"),
             ({"planId": pid, "requestedConfig": {"serverType": "huge"}}, "serverType"),
             ({"planId": pid, "requestedConfig": "cx22"}, "requestedConfig")]
    for body, field in cases:
        response = client.post("/api/v1/pricing/preview", json=body, headers=_auth(secret))
        assert response.status_code == 422, (body, response.json)
        assert response.mimetype == "application/problem+json"
        assert field in response.json["errors"], (body, response.json)
    assert _subscriptions() == 0


def test_another_tenants_plan_is_not_found(client, tenant, other_tenant, secret) -> None:  # type: ignore[no-untyped-def]
    theirs = factories.plan(other_tenant)
    for path in ("/api/v1/pricing/preview", "/api/v1/availability/check", "/api/v1/availability/alternatives"):
        response = client.post(path, json={"planId": encode("plan", theirs.id)}, headers=_auth(secret))
        assert response.status_code == 404, path
        assert response.json["type"].endswith("/not-found")


def test_a_read_token_may_not_post(client, tenant, customer, plan) -> None:  # type: ignore[no-untyped-def]
    reader = _token(tenant, customer, Scope.READ)
    for path in ("/api/v1/pricing/preview", "/api/v1/availability/check", "/api/v1/availability/alternatives"):
        response = client.post(path, json={"planId": encode("plan", plan.id)}, headers=_auth(reader))
        assert response.status_code == 403 and response.json["requiredScope"] == "write"


def test_available_now(client, tenant, plan, secret, cloud) -> None:  # type: ignore[no-untyped-def]
    body = {"planId": encode("plan", plan.id), "requestedConfig": CONFIG, "unknown": True}
    check = client.post("/api/v1/availability/check", json=body, headers=_auth(secret))
    assert check.status_code == 200, check.json
    assert check.json == {"available": True, "reason": "", "permanent": False, "alternatives": []}
    alternatives = client.post("/api/v1/availability/alternatives", json=body, headers=_auth(secret))
    assert alternatives.json == {"data": []}


def test_sold_out_says_why_and_offers_what_the_order_form_offers(client, tenant, plan, secret, cloud) -> None:  # type: ignore[no-untyped-def]
    cloud.set_capacity("cx22", "nbg1", 0)
    body = {"planId": encode("plan", plan.id), "requestedConfig": CONFIG}
    check = client.post("/api/v1/availability/check", json=body, headers=_auth(secret)).json
    assert check["available"] is False
    assert check["reason"] == "cx22 is sold out in Nuremberg, Germany (nbg1) for now."
    draft = ordering.draft_order(plan, CONFIG, 1)
    offered = [{"kind": str(alt.kind), "serverType": alt.server_type, "location": alt.location}
               for alt in ordering.check_availability(tenant, draft).alternatives]
    assert offered and check["alternatives"] == offered
    alternatives = client.post("/api/v1/availability/alternatives", json=body, headers=_auth(secret))
    assert alternatives.status_code == 200 and alternatives.json["data"] == offered
    assert {alt["kind"] for alt in offered} <= {"other_location", "other_server_type"}
    assert _subscriptions() == 0


def test_availability_refuses_an_invalid_choice_naming_the_field(client, tenant, plan, secret, cloud) -> None:  # type: ignore[no-untyped-def]
    body = {"planId": encode("plan", plan.id), "requestedConfig": {"serverType": "cx22", "location": "mars"}}
    for path in ("/api/v1/availability/check", "/api/v1/availability/alternatives"):
        response = client.post(path, json=body, headers=_auth(secret))
        assert response.status_code == 422 and "location" in response.json["errors"], response.json
