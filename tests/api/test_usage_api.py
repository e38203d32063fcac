"""POST /usage/record (tenant admins' tokens: customers do not record usage) and GET /usage/summary/{id} (the
customer's usage page as JSON)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from app.blueprints.api.ids import encode
from app.domain.api_tokens import Scope
from app.domain.billing import UsageSource
from app.extensions import db
from app.models import UsageRecord
from app.services import api_tokens, usage
from app.services.actors import Actor
from tests import factories

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
PRICES = [{"metric": "traffic_gb", "label": "Outgoing traffic", "unit": "GB", "unit_price_minor": 2,
           "included": 100},
          {"metric": "snapshot_gb", "label": "Snapshots", "unit": "GB-month", "unit_price_minor": 1}]


def _token(tenant, user, *scopes: Scope) -> str:  # type: ignore[no-untyped-def]
    return api_tokens.create(tenant=tenant, actor=Actor(user), name="ci", scopes=frozenset(scopes or (Scope.WRITE,)),
                             expires_in_days=30).secret


def _auth(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def _records() -> int:
    return db.session.scalar(select(func.count()).select_from(UsageRecord)) or 0


def _metered(tenant, user):  # type: ignore[no-untyped-def]
    plan = factories.plan(tenant, price_minor=300, usage_prices=PRICES)
    return factories.subscription(tenant, user, plan, price_minor=300, activated_at=START,
                                  current_period_start=START, current_period_end=datetime(2026, 4, 1, 12, tzinfo=UTC))


@pytest.fixture
def metered(tenant, customer, clock):  # type: ignore[no-untyped-def]
    return _metered(tenant, customer)


@pytest.fixture
def ops(tenant, admin) -> str:  # type: ignore[no-untyped-def]
    return _token(tenant, admin, Scope.ADMIN)


def _body(subscription, **values):  # type: ignore[no-untyped-def]
    return {"subscriptionId": encode("sub", subscription.id), "metric": "traffic_gb", "quantity": 150,
            "timestamp": "2026-03-10T09:30:00+01:00", "idempotencyKey": "meter-1", **values}


def test_an_admin_records_usage_once_per_key(client, tenant, admin, metered, ops) -> None:  # type: ignore[no-untyped-def]
    first = client.post("/api/v1/usage/record", json={**_body(metered), "note": "ignored"}, headers=_auth(ops))
    assert first.status_code == 201, first.json
    assert first.json["id"].startswith("use_")
    assert (first.json["metric"], first.json["quantity"], first.json["source"]) == ("traffic_gb", 150, "api")
    assert first.json["timestamp"].startswith("2026-03-10T08:30:00")
    assert first.json["periodStart"].startswith("2026-03-01T12:00:00")
    row = db.session.scalar(select(UsageRecord))
    assert row.created_by_id == admin.id  # who recorded it
    again = client.post("/api/v1/usage/record", json=_body(metered), headers=_auth(ops))
    assert again.status_code == 201 and again.json == first.json
    other = client.post("/api/v1/usage/record", json=_body(metered, quantity=151), headers=_auth(ops))
    assert other.status_code == 409 and "already used" in other.json["detail"]
    assert _records() == 1


def test_a_closed_period_is_refused_with_the_services_message(client, tenant, metered, ops) -> None:  # type: ignore[no-untyped-def]
    response = client.post("/api/v1/usage/record", json=_body(metered, timestamp="2026-03-01T11:59:59Z"),
                           headers=_auth(ops))
    assert response.status_code == 422
    assert "is in a closed billing period: usage is taken from 2026-03-01 12:00:00 UTC on." in response.json["detail"]
    unknown = client.post("/api/v1/usage/record", json=_body(metered, metric="cpu"), headers=_auth(ops))
    assert unknown.status_code == 422 and "cpu" in unknown.json["detail"]
    assert _records() == 0


def test_bad_fields_are_named_and_nothing_is_recorded(client, tenant, metered, ops) -> None:  # type: ignore[no-untyped-def]
    cases = [({"quantity": "x"}, "quantity"), ({"quantity": 1.5}, "quantity"),
             ({"timestamp": "2026-03-10T09:30:00"}, "timestamp"), ({"timestamp": "soon"}, "timestamp"),
             ({"subscriptionId": "sub_nope"}, "subscriptionId"), ({"idempotencyKey": ""}, "idempotencyKey"),
             ({"idempotencyKey": "k" * 101}, "idempotencyKey")]
    for values, field in cases:
        response = client.post("/api/v1/usage/record", json=_body(metered, **values), headers=_auth(ops))
        assert response.status_code == 422, values
        assert field in response.json["errors"], (values, response.json)
    assert _records() == 0


def test_customers_and_tokens_without_the_admin_scope_may_not_record(client, tenant, customer, admin, metered) -> None:  # type: ignore[no-untyped-def]
    for secret in (_token(tenant, customer), _token(tenant, admin, Scope.WRITE)):
        response = client.post("/api/v1/usage/record", json=_body(metered), headers=_auth(secret))
        assert response.status_code == 403, response.json
    assert _records() == 0


def test_another_tenants_subscription_is_not_found(client, tenant, other_tenant, ops, clock) -> None:  # type: ignore[no-untyped-def]
    theirs = _metered(other_tenant, factories.user(other_tenant, email="o@example.com"))
    response = client.post("/api/v1/usage/record", json=_body(theirs), headers=_auth(ops))
    assert response.status_code == 404
    assert _records() == 0


def test_the_summary_is_the_usage_pages(client, tenant, customer, admin, metered) -> None:  # type: ignore[no-untyped-def]
    usage.record(tenant=tenant, actor=Actor(admin), subscription_id=metered.id, metric="traffic_gb", quantity=150,
                 recorded_at=datetime(2026, 3, 10, tzinfo=UTC), idempotency_key="k1", source=UsageSource.API)
    reader = _token(tenant, customer, Scope.READ)
    sid = encode("sub", metered.id)
    response = client.get(f"/api/v1/usage/summary/{sid}", headers=_auth(reader))
    assert response.status_code == 200, response.json
    summary = response.json
    assert summary["subscriptionId"] == sid and summary["currency"] == "EUR"
    assert [price["metric"] for price in summary["prices"]] == ["traffic_gb", "snapshot_gb"]
    current = summary["current"]
    assert current["start"].startswith("2026-03-01T12:00:00") and current["billed"] is False
    traffic = current["lines"][0]
    assert (traffic["metric"], traffic["units"], traffic["billableUnits"], traffic["cost"]) == ("traffic_gb", 150, 50,
                                                                                              100)
    assert current["cost"] == 100 and summary["past"] == []


def test_the_summary_of_another_customers_or_an_unmetered_subscription_is_not_found(client, tenant, customer, metered) -> None:  # type: ignore[no-untyped-def]
    neighbour = factories.user(tenant, email="n@example.com")
    plain = factories.subscription(tenant, customer, factories.plan(tenant))
    reader = _token(tenant, neighbour, Scope.READ)
    assert client.get(f"/api/v1/usage/summary/{encode('sub', metered.id)}", headers=_auth(reader)).status_code == 404
    mine = _token(tenant, customer, Scope.READ)
    response = client.get(f"/api/v1/usage/summary/{encode('sub', plain.id)}", headers=_auth(mine))
    assert response.status_code == 404 and response.json["type"].endswith("/not-found")


def test_the_summary_is_for_customers_tokens(client, tenant, admin, metered, ops) -> None:  # type: ignore[no-untyped-def]
    """A customer's token always has read (write includes it); an admin's token is refused here, any scope."""
    for secret in (ops, _token(tenant, admin, Scope.READ)):
        response = client.get(f"/api/v1/usage/summary/{encode('sub', metered.id)}", headers=_auth(secret))
        assert response.status_code == 403
