"""A running server through the API: its items, live info and power controls, by the pages' services; and
the per-token rate limit."""

from __future__ import annotations

import pytest

from app.domain.api_tokens import Scope
from app.models import SubscriptionEvent
from app.services import api_tokens
from app.services.actors import Actor
from tests.services.conftest import active_subscription, plan, profile, sandbox  # noqa: F401  (fixtures)


@pytest.fixture
def headers(tenant, customer):  # type: ignore[no-untyped-def]
    secret = api_tokens.create(tenant=tenant, actor=Actor(customer), name="ops", scopes=frozenset({Scope.WRITE}),
                               expires_in_days=30).secret
    return {"Authorization": f"Bearer {secret}"}


def test_items_server_info_and_power(client, headers, active_subscription) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    [listed] = client.get("/api/v1/subscriptions", headers=headers).json["data"]
    assert listed["status"] == "active"
    assert listed["price"]["amount"] == active_subscription.price_minor
    items = client.get(f"/api/v1/subscriptions/{listed['id']}/items", headers=headers).json["data"]
    [item] = items
    assert item["id"].startswith("itm_") and item["subscriptionId"] == listed["id"]
    base = f"/api/v1/subscriptions/{listed['id']}/items/{item['id']}"
    info = client.get(f"{base}/server-info", headers=headers)
    assert info.status_code == 200, info.json
    assert info.json["serverId"] == item["serverId"]
    stopped = client.post(f"{base}/actions/stop", headers=headers)
    assert stopped.status_code == 202, stopped.json
    assert stopped.json["command"]
    from app.extensions import db

    [event] = db.session.scalars(db.select(SubscriptionEvent).where(SubscriptionEvent.kind == "server_stop"))
    assert event.actor_id == active_subscription.user_id and event.data["via"] == "api"  # the history says so
    assert client.post(f"{base}/actions/reboot", headers=headers).status_code == 404


def test_rate_limit_per_token_answers_429_with_retry_after(app, client, headers, tenant, customer,  # type: ignore[no-untyped-def]
                                                           monkeypatch) -> None:
    monkeypatch.setitem(app.config, "API_RATE_LIMIT", "2 per minute")
    assert client.get("/api/v1/subscriptions", headers=headers).status_code == 200
    assert client.get("/api/v1/subscriptions", headers=headers).status_code == 200
    limited = client.get("/api/v1/subscriptions", headers=headers)
    assert limited.status_code == 429
    assert limited.mimetype == "application/problem+json"
    assert int(limited.headers["Retry-After"]) >= 1
    other = api_tokens.create(tenant=tenant, actor=Actor(customer), name="other", scopes=frozenset({Scope.READ}),
                              expires_in_days=7).secret
    assert client.get("/api/v1/subscriptions", headers={"Authorization": f"Bearer {other}"}).status_code == 200
