"""GET /subscriptions/{id}/backorder (the queue position and alternatives the subscription page shows) and
POST /subscriptions/{id}/backorder/switch (the page's switch, with If-Match)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.blueprints.api.ids import encode
from app.clock import now
from app.domain.api_tokens import Scope
from app.domain.subscriptions import BackorderStatus, SubscriptionStatus
from app.extensions import db
from app.models import Backorder, CustomerProfile, Subscription, SubscriptionEvent
from app.sandbox.cloud import sandbox_for
from app.services import api_tokens, ordering
from app.services.actors import Actor
from tests import factories


def _token(tenant, user, *scopes: Scope) -> str:  # type: ignore[no-untyped-def]
    return api_tokens.create(tenant=tenant, actor=Actor(user), name="ci", scopes=frozenset(scopes or (Scope.WRITE,)),
                             expires_in_days=30).secret


def _auth(secret: str, **headers: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}", **headers}


@pytest.fixture
def waiting(tenant, customer, clock):  # type: ignore[no-untyped-def]
    """The customer's order of cx22 in Helsinki, sold out, waiting on a backorder."""
    db.session.add(CustomerProfile(user_id=customer.id, full_name="C", billing_email="c@example.com",
                                   address="Road 1", city="Berlin", country="DE"))
    db.session.commit()
    factories.payment_method(tenant, customer)
    plan = factories.plan(tenant, allow_customer_location_selection=True)
    sandbox_for(tenant.id, "hetzner", now).set_capacity("cx22", "hel1", 0)
    subscription = ordering.place_order(tenant=tenant, actor=Actor(customer), plan_id=plan.id,
                                        requested_config={"location": "hel1"}, quantity=1, auto_backorder=True,
                                        idempotency_key="bo")
    assert subscription.status is SubscriptionStatus.PENDING_BACKORDER
    return subscription


def _status(subscription: Subscription) -> SubscriptionStatus:
    db.session.expire_all()
    return db.session.get(Subscription, subscription.id).status


def test_the_backorder_with_its_place_and_alternatives(client, tenant, customer, waiting) -> None:  # type: ignore[no-untyped-def]
    sid = encode("sub", waiting.id)
    response = client.get(f"/api/v1/subscriptions/{sid}/backorder", headers=_auth(_token(tenant, customer, Scope.READ)))
    assert response.status_code == 200, response.json
    found = response.json
    assert (found["subscriptionId"], found["serverType"], found["location"], found["position"]) == (
        sid, "cx22", "hel1", 1)
    offered = {(alt["serverType"], alt["location"]) for alt in found["alternatives"]}
    assert {("cx22", "fsn1"), ("cx32", "hel1")} <= offered  # as the page offers them


def test_a_subscription_not_waiting_has_no_backorder(client, tenant, customer) -> None:  # type: ignore[no-untyped-def]
    running = factories.subscription(tenant, customer, factories.plan(tenant))
    response = client.get(f"/api/v1/subscriptions/{encode('sub', running.id)}/backorder",
                          headers=_auth(_token(tenant, customer)))
    assert response.status_code == 404 and "not waiting" in response.json["detail"]


def test_switching_honours_if_match_and_leaves_the_queue(client, tenant, customer, waiting) -> None:  # type: ignore[no-untyped-def]
    secret = _token(tenant, customer)
    sid = encode("sub", waiting.id)
    tag = client.get(f"/api/v1/subscriptions/{sid}", headers=_auth(secret)).headers["ETag"]
    body = {"serverType": "cx22", "location": "fsn1", "extra": "ignored"}
    stale = client.post(f"/api/v1/subscriptions/{sid}/backorder/switch", json=body,
                        headers=_auth(secret, **{"If-Match": '"v999"'}))
    assert stale.status_code == 412
    assert _status(waiting) is SubscriptionStatus.PENDING_BACKORDER
    done = client.post(f"/api/v1/subscriptions/{sid}/backorder/switch", json=body,
                       headers=_auth(secret, **{"If-Match": tag}))
    assert done.status_code == 200, done.json
    assert done.json["requestedConfig"]["location"] == "fsn1" and done.headers["ETag"] != tag
    assert db.session.scalar(select(Backorder)).status is BackorderStatus.CANCELED
    event = db.session.scalar(select(SubscriptionEvent).where(SubscriptionEvent.kind == "backorder_switched"))
    assert event is not None and event.actor_id == customer.id  # audited: who and what
    assert client.get(f"/api/v1/subscriptions/{sid}/backorder", headers=_auth(secret)).status_code == 404


def test_bad_choices_are_refused_and_change_nothing(client, tenant, customer, waiting) -> None:  # type: ignore[no-untyped-def]
    secret = _token(tenant, customer)
    path = f"/api/v1/subscriptions/{encode('sub', waiting.id)}/backorder/switch"
    missing = client.post(path, json={"serverType": "cx22"}, headers=_auth(secret))
    assert missing.status_code == 422 and "location" in missing.json["errors"]
    wrong_type = client.post(path, json={"serverType": 5, "location": "fsn1"}, headers=_auth(secret))
    assert wrong_type.status_code == 422 and "serverType" in wrong_type.json["errors"]
    not_offered = client.post(path, json={"serverType": "cx22", "location": "hel1"}, headers=_auth(secret))
    assert not_offered.status_code == 422 and "not available" in not_offered.json["detail"]
    assert _status(waiting) is SubscriptionStatus.PENDING_BACKORDER


def test_another_customers_or_tenants_backorder_is_not_found(client, tenant, other_tenant, waiting) -> None:  # type: ignore[no-untyped-def]
    sid = encode("sub", waiting.id)
    for user in (factories.user(tenant, email="n@example.com"), factories.user(other_tenant, email="o@example.com")):
        secret = _token(user.tenant, user)
        base = None if user.tenant_id == tenant.id else "http://other.test"
        kwargs = {"base_url": base} if base else {}
        read = client.get(f"/api/v1/subscriptions/{sid}/backorder", headers=_auth(secret), **kwargs)
        assert read.status_code == 404
        switch = client.post(f"/api/v1/subscriptions/{sid}/backorder/switch",
                             json={"serverType": "cx22", "location": "fsn1"}, headers=_auth(secret), **kwargs)
        assert switch.status_code == 404
    assert _status(waiting) is SubscriptionStatus.PENDING_BACKORDER


def test_switching_needs_the_write_scope(client, tenant, customer, waiting) -> None:  # type: ignore[no-untyped-def]
    response = client.post(f"/api/v1/subscriptions/{encode('sub', waiting.id)}/backorder/switch",
                           json={"serverType": "cx22", "location": "fsn1"},
                           headers=_auth(_token(tenant, customer, Scope.READ)))
    assert response.status_code == 403
    assert _status(waiting) is SubscriptionStatus.PENDING_BACKORDER
