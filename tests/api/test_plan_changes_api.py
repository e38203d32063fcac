"""Plan changes over the API: the targets with their prices, the preview that equals what is then charged, the
change (If-Match, Idempotency-Key), a scheduled downgrade canceled, and the refusals (bad input, another
customer's subscription, no card, the read scope), each changing nothing."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.blueprints.api.ids import encode
from app.clock import now
from app.domain.api_tokens import Scope
from app.domain.billing import ChargeKind
from app.domain.plan_changes import ScheduledStatus
from app.domain.pricing import period_end
from app.extensions import db
from app.models import Charge, Invoice, PaymentMethod, ScheduledPlanChange, Subscription
from app.services import api_tokens
from app.services.actors import Actor
from tests import factories
from tests.services.conftest import complete_profile


def _headers(tenant, user, *scopes: Scope, **extra: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    secret = api_tokens.create(tenant=tenant, actor=Actor(user), name="ci", scopes=frozenset(scopes or (Scope.WRITE,)),
                               expires_in_days=30).secret
    return {"Authorization": f"Bearer {secret}", **extra}


def _key() -> dict[str, str]:
    return {"Idempotency-Key": str(uuid.uuid4())}


@pytest.fixture
def world(app, tenant, customer, clock):  # type: ignore[no-untyped-def]
    """The customer (profile and card) on a 10.00 EUR plan, ten days into a monthly period; Big costs 30.00 EUR,
    Small 4.00 EUR (both of the same service type). Returns the subscription's and the plans' opaque ids too."""
    complete_profile(customer)
    service_type = factories.service_type(tenant)
    product = factories.product(tenant)
    current = factories.plan(tenant, product_=product, service_type_=service_type, name="Medium", price_minor=1000)
    big = factories.plan(tenant, product_=product, service_type_=service_type, name="Big", price_minor=3000)
    small = factories.plan(tenant, product_=product, service_type_=service_type, name="Small", price_minor=400)
    start = now() - timedelta(days=10)
    subscription = factories.subscription(tenant, customer, current, price_minor=1000, activated_at=start,
                                          current_period_start=start,
                                          current_period_end=period_end(start, current.interval))
    with app.test_request_context():
        ids = {"sub": encode("sub", subscription.id), "big": encode("plan", big.id),
               "small": encode("plan", small.id), "current": encode("plan", current.id)}
    return subscription, ids


def _charges(subscription: Subscription) -> list[Charge]:
    db.session.expire_all()
    return list(db.session.scalars(select(Charge).where(
        Charge.subscription_id == subscription.id,
        Charge.kind.in_([ChargeKind.PRORATION_CREDIT, ChargeKind.PRORATION_DEBIT])).order_by(Charge.kind)))


def _unchanged(subscription: Subscription, version: int, plan_id: int) -> None:
    db.session.expire_all()
    row = db.session.get(Subscription, subscription.id)
    assert (row.version, row.plan_id) == (version, plan_id)
    assert _charges(subscription) == []
    assert db.session.scalar(select(func.count()).select_from(ScheduledPlanChange)) == 0


def test_targets_list_each_plan_priced_for_this_subscription(client, tenant, customer, world) -> None:  # type: ignore[no-untyped-def]
    _, ids = world
    response = client.get(f"/api/v1/subscriptions/{ids['sub']}/plan-change/targets",
                          headers=_headers(tenant, customer, Scope.READ))
    assert response.status_code == 200, response.json
    listed = {row["planId"]: row for row in response.json["data"]}
    assert set(listed) == {ids["big"], ids["small"]}
    assert listed[ids["big"]]["price"] == {"amount": 3000, "currency": "EUR"}
    assert listed[ids["small"]]["name"] == "Small" and response.json["migrationTargetId"] is None
    assert response.json["changeable"] is True and response.json["scheduledChange"] is None


def test_the_preview_over_the_api_is_what_the_change_then_charges(client, tenant, customer, world) -> None:  # type: ignore[no-untyped-def]
    subscription, ids = world
    headers = _headers(tenant, customer)
    base = f"/api/v1/subscriptions/{ids['sub']}"
    body = {"action": "plan", "planId": ids["big"], "somethingElse": True}  # unknown fields are ignored
    shown = client.post(f"{base}/plan-change/preview", json=body, headers=headers)
    assert shown.status_code == 200, shown.json
    preview = shown.json
    assert preview["immediate"] and preview["upgrade"] and preview["newPrice"] == {"amount": 3000, "currency": "EUR"}
    assert preview["proration"]["credit"]["amount"] < 0 < preview["proration"]["debit"]["amount"]
    assert _charges(subscription) == []  # a preview writes nothing

    tag = client.get(base, headers=headers).headers["ETag"]
    done = client.post(f"{base}/plan-change", json=body, headers={**headers, **_key(), "If-Match": tag})
    assert done.status_code == 200, done.json
    assert done.json["change"] == preview
    assert done.json["subscription"]["planId"] == ids["big"] and done.headers["ETag"] != tag
    charged = _charges(subscription)
    assert [(c.kind, c.amount_minor) for c in charged] == [
        (ChargeKind.PRORATION_CREDIT, preview["proration"]["credit"]["amount"]),
        (ChargeKind.PRORATION_DEBIT, preview["proration"]["debit"]["amount"])]
    invoice = db.session.scalar(select(Invoice).where(Invoice.user_id == customer.id))
    assert invoice is not None and invoice.subtotal_minor == preview["dueNow"]["amount"] > 0


def test_a_replayed_change_is_answered_again_and_charges_once(client, tenant, customer, world) -> None:  # type: ignore[no-untyped-def]
    subscription, ids = world
    headers = {**_headers(tenant, customer), **_key()}
    path = f"/api/v1/subscriptions/{ids['sub']}/plan-change"
    first = client.post(path, json={"action": "plan", "planId": ids["big"]}, headers=headers)
    again = client.post(path, json={"action": "plan", "planId": ids["big"]}, headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true" and again.json == first.json
    assert len(_charges(subscription)) == 2
    assert client.post(path, json={"action": "plan", "planId": ids["big"]},
                       headers={k: v for k, v in headers.items() if k != "Idempotency-Key"}).status_code == 428


def test_a_stale_if_match_is_412_and_changes_nothing(client, tenant, customer, world) -> None:  # type: ignore[no-untyped-def]
    subscription, ids = world
    response = client.post(f"/api/v1/subscriptions/{ids['sub']}/plan-change",
                           json={"action": "plan", "planId": ids["big"]},
                           headers={**_headers(tenant, customer), **_key(), "If-Match": f'"v{subscription.version + 5}"'})
    assert response.status_code == 412 and response.json["type"].endswith("/precondition-failed")
    _unchanged(subscription, subscription.version, subscription.plan_id)


def test_a_downgrade_is_scheduled_and_its_cancellation_keeps_the_plan(client, tenant, customer, world) -> None:  # type: ignore[no-untyped-def]
    subscription, ids = world
    headers = _headers(tenant, customer)
    base = f"/api/v1/subscriptions/{ids['sub']}"
    done = client.post(f"{base}/plan-change", json={"action": "plan", "planId": ids["small"]},
                       headers={**headers, **_key()})
    assert done.status_code == 200, done.json
    change = done.json["change"]
    assert not change["immediate"] and change["proration"] is None and change["dueNow"]["amount"] == 0
    assert change["effectiveAt"] == subscription.current_period_end.isoformat()
    waiting = client.get(f"{base}/plan-change/targets", headers=headers).json["scheduledChange"]
    assert waiting["planId"] == ids["small"] and waiting["price"] == {"amount": 400, "currency": "EUR"}
    assert waiting["effectiveAt"] == change["effectiveAt"]
    stale = client.delete(f"{base}/scheduled-change", headers={**headers, "If-Match": '"v999"'})
    assert stale.status_code == 412
    canceled = client.delete(f"{base}/scheduled-change", headers={**headers, "If-Match": done.headers["ETag"]})
    assert canceled.status_code == 200, canceled.json
    assert canceled.json["planId"] == ids["current"]
    [waiting] = db.session.scalars(select(ScheduledPlanChange))
    assert waiting.status is ScheduledStatus.CANCELED
    nothing = client.delete(f"{base}/scheduled-change", headers=headers)
    assert nothing.status_code == 422 and nothing.json["type"].endswith("/rule-refused")


def test_bad_input_names_the_field_and_changes_nothing(client, tenant, customer, world, other_tenant) -> None:  # type: ignore[no-untyped-def]
    subscription, ids = world
    foreign = factories.plan(other_tenant)
    with client.application.test_request_context():
        foreign_id = encode("plan", foreign.id)
    headers = _headers(tenant, customer)
    path = f"/api/v1/subscriptions/{ids['sub']}/plan-change"
    for body, field in (({"action": "sideways"}, "action"), ({"action": "plan"}, "planId"),
                        ({"action": "plan", "planId": "pln_nope"}, "planId"),
                        ({"action": "plan", "planId": foreign_id}, "planId"),
                        ({"action": "quantity"}, "quantity"), ({"action": "quantity", "quantity": 0}, "quantity"),
                        ({}, "action")):
        for url in (f"{path}/preview", path):
            response = client.post(url, json=body, headers={**headers, **_key()})
            assert response.status_code == 422, (url, body, response.json)
            assert response.mimetype == "application/problem+json" and field in response.json["errors"], body
    same = client.post(f"{path}/preview", json={"action": "plan", "planId": ids["current"]}, headers=headers)
    assert same.status_code == 422 and same.json["type"].endswith("/rule-refused")
    _unchanged(subscription, subscription.version, subscription.plan_id)


def test_another_customers_subscription_is_404_and_changes_nothing(client, tenant, customer, world) -> None:  # type: ignore[no-untyped-def]
    subscription, ids = world
    neighbour = factories.user(tenant, email="n@example.com")
    complete_profile(neighbour)
    headers = _headers(tenant, neighbour)
    base = f"/api/v1/subscriptions/{ids['sub']}"
    body = {"action": "plan", "planId": ids["big"]}
    for response in (client.get(f"{base}/plan-change/targets", headers=headers),
                     client.post(f"{base}/plan-change/preview", json=body, headers=headers),
                     client.post(f"{base}/plan-change", json=body, headers={**headers, **_key()}),
                     client.delete(f"{base}/scheduled-change", headers=headers)):
        assert response.status_code == 404 and response.json["type"].endswith("/not-found")
    _unchanged(subscription, subscription.version, subscription.plan_id)


def test_without_a_card_the_problem_says_to_add_one_in_a_browser(client, tenant, customer, world) -> None:  # type: ignore[no-untyped-def]
    subscription, ids = world
    db.session.execute(db.delete(PaymentMethod).where(PaymentMethod.user_id == customer.id))
    db.session.commit()
    headers = _headers(tenant, customer)
    body = {"action": "plan", "planId": ids["big"]}
    for path in ("plan-change/preview", "plan-change"):
        response = client.post(f"/api/v1/subscriptions/{ids['sub']}/{path}", json=body, headers={**headers, **_key()})
        assert response.json["type"].endswith("/payment-method-required"), response.json
        assert "browser" in response.json["detail"] and response.json["addCardUrl"].endswith("/billing/payment-methods")
    _unchanged(subscription, subscription.version, subscription.plan_id)


def test_the_read_scope_cannot_preview_or_change(client, tenant, customer, world) -> None:  # type: ignore[no-untyped-def]
    subscription, ids = world
    headers = _headers(tenant, customer, Scope.READ)
    base = f"/api/v1/subscriptions/{ids['sub']}"
    body = {"action": "plan", "planId": ids["big"]}
    for response in (client.post(f"{base}/plan-change/preview", json=body, headers=headers),
                     client.post(f"{base}/plan-change", json=body, headers={**headers, **_key()}),
                     client.delete(f"{base}/scheduled-change", headers=headers)):
        assert response.status_code == 403 and response.json["requiredScope"] == "write"
    _unchanged(subscription, subscription.version, subscription.plan_id)
