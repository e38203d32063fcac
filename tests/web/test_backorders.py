"""A customer on a backorder sees their place in the queue, can switch to what is available, or cancel."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from app.clock import now
from app.domain.subscriptions import BackorderStatus, ItemStatus, SubscriptionStatus
from app.extensions import db
from app.models import Backorder, Charge, CustomerProfile, Subscription
from app.sandbox.cloud import sandbox_for
from app.services import backorders, ordering
from app.services.actors import Actor
from app.services.errors import Conflict, InvalidInput
from tests import factories
from tests.helpers import post_form, run_scheduled_tasks


@pytest.fixture
def waiting(tenant, customer, clock):
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


def reload(subscription: Subscription) -> Subscription:
    db.session.expire_all()
    return db.session.get(Subscription, subscription.id)


def test_the_page_shows_the_queue_position_and_alternatives(client, customer, auth, waiting):
    auth.login(customer.email)
    page = client.get(f"/subscriptions/{waiting.id}").get_data(as_text=True)
    assert "Number 1 in the queue for cx22 in Helsinki" in page
    assert "Switch to cx22 in Falkenstein" in page and "Switch to cx32 in Helsinki" in page


def test_switching_leaves_the_queue_and_provisions_at_once(client, customer, auth, waiting, clock):
    auth.login(customer.email)
    response = post_form(client, f"/subscriptions/{waiting.id}/backorder/switch",
                         {"version": waiting.version, "server_type": "cx22", "location": "fsn1"})
    assert response.status_code == 303
    clock.advance(seconds=30)
    run_scheduled_tasks()
    subscription = reload(waiting)
    assert subscription.status is SubscriptionStatus.ACTIVE and subscription.requested_config["location"] == "fsn1"
    assert [item.status for item in subscription.items] == [ItemStatus.ACTIVE]
    assert subscription.items[0].config["location"] == "fsn1"
    backorder = db.session.scalar(select(Backorder))
    assert backorder.status is BackorderStatus.CANCELED
    assert len(db.session.scalars(select(Charge)).all()) == 1  # billing starts at delivery


def test_a_choice_that_is_not_offered_is_refused(tenant, customer, waiting):
    with pytest.raises(InvalidInput, match="not available"):
        backorders.switch_to_alternative(tenant=tenant, actor=Actor(customer), subscription_id=waiting.id,
                                         version=waiting.version, server_type="cx22", location="hel1")
    with pytest.raises(InvalidInput):
        backorders.switch_to_alternative(tenant=tenant, actor=Actor(customer), subscription_id=waiting.id,
                                         version=waiting.version, server_type="cx99", location="fsn1")
    assert reload(waiting).status is SubscriptionStatus.PENDING_BACKORDER


def test_a_stale_page_cannot_switch(tenant, customer, waiting):
    with pytest.raises(Conflict):
        backorders.switch_to_alternative(tenant=tenant, actor=Actor(customer), subscription_id=waiting.id,
                                         version=waiting.version + 1, server_type="cx22", location="fsn1")


def test_another_customer_cannot_switch_it(client, tenant, waiting, auth):
    other = factories.user(tenant)
    auth.login(other.email)
    response = post_form(client, f"/subscriptions/{waiting.id}/backorder/switch",
                         {"version": waiting.version, "server_type": "cx22", "location": "fsn1"})
    assert response.status_code == 404
    assert reload(waiting).status is SubscriptionStatus.PENDING_BACKORDER


def test_capacity_freed_turns_the_backorder_active_and_starts_billing(tenant, waiting, clock):
    from app.tasks.jobs import serve_backorders

    assert not db.session.scalars(select(Charge)).all()
    sandbox_for(tenant.id, "hetzner", now).set_capacity("cx22", "hel1", None)
    serve_backorders.call_local()
    clock.advance(seconds=30)
    run_scheduled_tasks()
    subscription = reload(waiting)
    assert subscription.status is SubscriptionStatus.ACTIVE and subscription.activated_at == clock.now()
    assert len(db.session.scalars(select(Charge)).all()) == 1


def test_cancelling_a_backorder_closes_it(client, customer, auth, waiting):
    auth.login(customer.email)
    page = client.get(f"/subscriptions/{waiting.id}/cancel").get_data(as_text=True)
    version = re.search(r'name="version" type="hidden" value="(\d+)"', page).group(1)
    post_form(client, f"/subscriptions/{waiting.id}/cancel", {"version": version})
    assert reload(waiting).status is SubscriptionStatus.CANCELED
    assert db.session.scalar(select(Backorder)).status is BackorderStatus.CANCELED
