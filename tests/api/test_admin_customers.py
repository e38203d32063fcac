"""/api/v1/admin/customers and /admin/subscriptions: the tenant admin's searches, one subscription, suspend and
reinstate with a reason and If-Match; customers' tokens, tokens without the admin scope and other tenants'
ids are refused and change nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest

from app.clock import now
from app.domain.accounts import Role
from app.domain.api_tokens import Scope
from app.domain.subscriptions import SubscriptionStatus
from app.extensions import db
from app.models import Subscription, SubscriptionEvent
from app.services import api_tokens
from app.services.actors import Actor
from tests import factories

API = "/api/v1/admin"


def _token(tenant, user, *scopes: Scope) -> dict[str, str]:  # type: ignore[no-untyped-def]
    secret = api_tokens.create(tenant=tenant, actor=Actor(user), name="ops",
                               scopes=frozenset(scopes or (Scope.ADMIN,)), expires_in_days=30).secret
    return {"Authorization": f"Bearer {secret}"}


@pytest.fixture
def headers(tenant, admin) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return _token(tenant, admin)


@pytest.fixture
def sub(tenant, customer) -> Subscription:  # type: ignore[no-untyped-def]
    return factories.subscription(tenant, customer, factories.plan(tenant))


def _get(model, row_id: int):  # type: ignore[no-untyped-def]
    """The row as the database has it now (the requests ran in sessions of their own)."""
    db.session.expire_all()
    return db.session.get(model, row_id)


def _events(subscription: Subscription) -> int:
    return db.session.scalar(db.select(db.func.count()).select_from(SubscriptionEvent)
                             .where(SubscriptionEvent.subscription_id == subscription.id)) or 0


def test_customers_are_searched_and_paged_like_supports_search(client, tenant, headers, customer) -> None:  # type: ignore[no-untyped-def]
    for n in range(3):
        factories.user(tenant, email=f"dana{n}@example.com", name=f"Dana {n}")
    first = client.get(f"{API}/customers?q=DANA&limit=2", headers=headers)
    assert first.status_code == 200, first.json
    assert [row["name"] for row in first.json["data"]] == ["Dana 0", "Dana 1"]
    assert first.json["data"][0]["id"].startswith("cus_") and first.json["data"][0]["state"]
    second = client.get(f"{API}/customers?q=dana&limit=2&cursor={first.json['nextCursor']}", headers=headers)
    assert [row["name"] for row in second.json["data"]] == ["Dana 2"] and second.json["nextCursor"] is None
    everyone = client.get(f"{API}/customers", headers=headers).json["data"]
    assert "casey@example.com" in {row["email"] for row in everyone}
    assert "alex@example.com" not in {row["email"] for row in everyone}  # staff are not customers
    bad = client.get(f"{API}/customers?cursor=forged.x", headers=headers)
    assert bad.status_code == 422 and "cursor" in bad.json["errors"]


def test_subscriptions_are_filtered_by_status_and_search_and_paged(client, tenant, headers, customer, sub) -> None:  # type: ignore[no-untyped-def]
    other = factories.user(tenant, email="olive@example.com", name="Olive")
    factories.subscription(tenant, other, sub.plan, status=SubscriptionStatus.SUSPENDED)
    listed = client.get(f"{API}/subscriptions", headers=headers).json
    assert len(listed["data"]) == 2 and listed["nextCursor"] is None
    suspended = client.get(f"{API}/subscriptions?status=suspended", headers=headers).json["data"]
    assert [row["customerEmail"] for row in suspended] == ["olive@example.com"]
    found = client.get(f"{API}/subscriptions?q=casey", headers=headers).json["data"]
    assert [row["status"] for row in found] == ["active"]
    assert found[0]["price"] == {"amount": 990, "currency": "EUR"}
    paged = client.get(f"{API}/subscriptions?limit=1", headers=headers).json
    rest = client.get(f"{API}/subscriptions?limit=1&cursor={paged['nextCursor']}", headers=headers).json
    assert {paged["data"][0]["id"], rest["data"][0]["id"]} == {row["id"] for row in listed["data"]}
    wrong = client.get(f"{API}/subscriptions?status=sleeping", headers=headers)
    assert wrong.status_code == 422 and "status" in wrong.json["errors"]


def test_suspend_and_reinstate_with_a_reason_and_if_match(client, tenant, headers, sub) -> None:  # type: ignore[no-untyped-def]
    sid = client.get(f"{API}/subscriptions", headers=headers).json["data"][0]["id"]
    read = client.get(f"{API}/subscriptions/{sid}", headers=headers)
    assert read.status_code == 200 and read.json["customerEmail"] == "casey@example.com"
    tag = read.headers["ETag"]
    grace = (now() + timedelta(days=10)).date().isoformat()
    done = client.post(f"{API}/subscriptions/{sid}/suspend", headers={**headers, "If-Match": tag},
                       json={"reason": "abuse report", "graceEndsOn": grace, "unknownField": 1})
    assert done.status_code == 200, done.json
    assert done.json["status"] == "suspended" and done.json["effectiveAt"].startswith(grace)
    assert done.headers["ETag"] != tag
    stale = client.post(f"{API}/subscriptions/{sid}/reinstate", headers={**headers, "If-Match": tag},
                        json={"reason": "resolved"})
    assert stale.status_code == 412
    assert _get(Subscription, sub.id).status is SubscriptionStatus.SUSPENDED
    back = client.post(f"{API}/subscriptions/{sid}/reinstate", headers={**headers, "If-Match": done.headers["ETag"]},
                       json={"reason": "resolved"})
    assert back.status_code == 200 and back.json["status"] == "active"
    reasons = db.session.scalars(db.select(SubscriptionEvent).where(SubscriptionEvent.subscription_id == sub.id)).all()
    assert len(reasons) >= 2


@pytest.mark.parametrize(("body", "field"), [
    ({}, "reason"),
    ({"reason": "x"}, "reason"),  # the service's rule: 3 to 500 characters
    ({"reason": "abuse", "graceEndsOn": "2000-01-01"}, "graceEndsOn"),
    ({"reason": "abuse", "graceEndsOn": "tomorrow"}, "graceEndsOn"),
])
def test_bad_suspensions_name_the_field_and_change_nothing(client, tenant, headers, sub, body, field) -> None:  # type: ignore[no-untyped-def]
    sid = client.get(f"{API}/subscriptions", headers=headers).json["data"][0]["id"]
    before = _events(sub)
    response = client.post(f"{API}/subscriptions/{sid}/suspend", headers=headers, json=body)
    assert response.status_code == 422, response.json
    assert response.mimetype == "application/problem+json" and field in response.json["errors"]
    assert _get(Subscription, sub.id).status is SubscriptionStatus.ACTIVE and _events(sub) == before


def test_reinstating_an_active_subscription_is_refused(client, tenant, headers, sub) -> None:  # type: ignore[no-untyped-def]
    sid = client.get(f"{API}/subscriptions", headers=headers).json["data"][0]["id"]
    response = client.post(f"{API}/subscriptions/{sid}/reinstate", headers=headers, json={"reason": "why not"})
    assert 400 <= response.status_code < 500 and response.mimetype == "application/problem+json"
    assert _get(Subscription, sub.id).status is SubscriptionStatus.ACTIVE


def test_customer_tokens_and_tokens_without_the_admin_scope_are_refused(client, tenant, admin, customer, sub) -> None:  # type: ignore[no-untyped-def]
    for headers in (_token(tenant, customer, Scope.WRITE), _token(tenant, admin, Scope.WRITE, Scope.READ)):
        assert client.get(f"{API}/subscriptions", headers=headers).status_code == 403
        assert client.get(f"{API}/customers", headers=headers).status_code == 403
    sid = client.get(f"{API}/subscriptions", headers=_token(tenant, admin)).json["data"][0]["id"]
    refused = client.post(f"{API}/subscriptions/{sid}/suspend", headers=_token(tenant, admin, Scope.WRITE),
                          json={"reason": "abuse"})
    assert refused.status_code == 403 and refused.json["requiredScope"] == "admin"
    assert _get(Subscription, sub.id).status is SubscriptionStatus.ACTIVE


def test_another_tenants_subscriptions_are_not_found_and_not_changed(client, tenant, other_tenant, headers) -> None:  # type: ignore[no-untyped-def]
    theirs = factories.subscription(other_tenant, factories.user(other_tenant, email="x@other.test"),
                                    factories.plan(other_tenant))
    boss = factories.user(other_tenant, email="boss@other.test", role=Role.TENANT_ADMIN)
    their_headers = _token(other_tenant, boss)
    sid = client.get(f"{API}/subscriptions", headers=their_headers, base_url="http://other.test").json["data"][0]["id"]
    assert client.get(f"{API}/subscriptions", headers=headers).json["data"] == []
    assert client.get(f"{API}/customers", headers=headers).json["data"] == []
    assert client.get(f"{API}/subscriptions/{sid}", headers=headers).status_code == 404
    for action in ("suspend", "reinstate"):
        response = client.post(f"{API}/subscriptions/{sid}/{action}", headers=headers, json={"reason": "abuse"})
        assert response.status_code == 404
    assert _get(Subscription, theirs.id).status is SubscriptionStatus.ACTIVE
