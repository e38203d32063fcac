"""Ordering: app.services.ordering.place_order and the rules it applies before anything is created."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.domain.catalogue import CatalogueState, Interval
from app.domain.subscriptions import BackorderStatus, ItemStatus, SubscriptionStatus
from app.extensions import db
from app.models import Backorder, Charge, Subscription, SubscriptionEvent, SubscriptionItem
from app.services import ordering
from app.services.actors import Actor
from app.services.errors import InvalidInput, NotFound
from app.services.ordering import ConfigInvalid, ProfileIncomplete, Unavailable
from tests import factories
from tests.services.conftest import boot, complete_profile, count, items_of, place

SCHEMA_WITH_FAR_LOCATIONS = {
    "type": "object",
    "additionalProperties": False,
    "required": ["serverType", "location"],
    "properties": {
        "serverType": {"type": "string", "enum": ["cx22", "cx32", "cpx21"]},
        "location": {"type": "string", "enum": ["fsn1", "nbg1", "hel1", "ash"]},
    },
}


def nothing_created(sandbox) -> None:  # type: ignore[no-untyped-def]
    db.session.rollback()
    assert count(Subscription) == 0
    assert count(SubscriptionItem) == 0
    assert count(Backorder) == 0
    assert count(SubscriptionEvent) == 0
    assert sandbox.server_count() == 0
    assert not [call for call in sandbox.calls if call[0] == "create_server"]


# --- The happy path ------------------------------------------------------------------------------


def test_an_order_creates_a_pending_subscription_and_queues_provisioning(tenant, customer, profile, plan, sandbox):
    subscription = place(tenant, customer, plan)
    db.session.expire_all()

    assert subscription.status is SubscriptionStatus.PENDING_FULFILLMENT
    assert (subscription.tenant_id, subscription.user_id, subscription.plan_id) == (tenant.id, customer.id, plan.id)
    assert subscription.quantity == 1
    assert subscription.requested_config == {"serverType": "cx22", "location": "nbg1"}
    assert subscription.activated_at is None
    [item] = items_of(subscription)
    # The immediate-mode worker ran after the commit: the server exists and is booting.
    assert item.status is ItemStatus.PROVISIONING
    assert item.server_id is not None
    assert sandbox.server_count() == 1
    assert ("create_server", item.fqdn, "cx22", "nbg1") in sandbox.calls
    [ordered] = db.session.scalars(select(SubscriptionEvent).where(SubscriptionEvent.kind == "ordered")).all()
    assert ordered.subscription_id == subscription.id
    assert ordered.actor_id == customer.id
    assert ordered.to_status == SubscriptionStatus.PENDING_FULFILLMENT
    # Billing starts at delivery, not at order time.
    assert count(Charge) == 0


def test_one_item_and_one_server_per_unit_ordered(tenant, customer, profile, sandbox):
    plan = factories.plan(tenant, quantity_allowed=True, max_quantity=5)
    subscription = place(tenant, customer, plan, quantity=3)
    db.session.expire_all()

    items = items_of(subscription)
    assert subscription.quantity == 3
    assert len(items) == 3
    assert all(item.config == {"serverType": "cx22", "location": "nbg1"} for item in items)
    assert len({item.server_id for item in items}) == 3
    assert sandbox.server_count() == 3


def test_the_stored_price_is_the_quote_the_preview_shows(tenant, customer, profile, sandbox, clock):
    plan = factories.plan(tenant, price_minor=1234, interval=Interval.YEAR, quantity_allowed=True)
    preview = ordering.draft_order(plan, {}, 2).quote
    assert preview == ordering.price(plan, 2)

    subscription = place(tenant, customer, plan, quantity=2)

    assert subscription.price_minor == preview.recurring.amount == 2468
    assert subscription.currency == preview.recurring.currency == "EUR"
    assert subscription.interval is Interval.YEAR
    event = db.session.scalar(select(SubscriptionEvent).where(SubscriptionEvent.kind == "ordered"))
    assert event.data["price"] == 2468


# --- Quantity ----------------------------------------------------------------------------------


def test_a_single_unit_plan_refuses_a_quantity_of_two(tenant, customer, profile, plan, sandbox):
    with pytest.raises(InvalidInput) as refused:
        place(tenant, customer, plan, quantity=2)
    assert refused.value.field == "quantity"
    assert "single unit" in refused.value.message
    nothing_created(sandbox)


@pytest.mark.parametrize("quantity", [0, -1, 4])
def test_quantity_outside_the_plans_bounds_is_refused(tenant, customer, profile, sandbox, quantity):
    plan = factories.plan(tenant, quantity_allowed=True, max_quantity=3)
    with pytest.raises(InvalidInput) as refused:
        place(tenant, customer, plan, quantity=quantity)
    assert refused.value.field == "quantity"
    nothing_created(sandbox)


def test_max_quantity_itself_is_accepted(tenant, customer, profile, sandbox):
    plan = factories.plan(tenant, quantity_allowed=True, max_quantity=3)
    subscription = place(tenant, customer, plan, quantity=3)
    assert len(items_of(subscription)) == 3


# --- The requested config ------------------------------------------------------------------------


def test_a_bad_enum_value_is_refused_naming_the_field(tenant, customer, profile, plan, sandbox):
    with pytest.raises(ConfigInvalid) as refused:
        place(tenant, customer, plan, config={"serverType": "cx99"})
    assert set(refused.value.errors) == {"serverType"}
    assert refused.value.errors["serverType"] == "Choose one of the offered options."
    nothing_created(sandbox)


def test_a_value_of_the_wrong_type_is_refused_naming_the_field(tenant, customer, profile, plan, sandbox):
    with pytest.raises(ConfigInvalid) as refused:
        place(tenant, customer, plan, config={"image": 12})
    assert "image" in refused.value.errors
    nothing_created(sandbox)


def test_unknown_keys_are_dropped(tenant, customer, profile, plan, sandbox):
    subscription = place(tenant, customer, plan, config={"serverType": "cx32", "firewall": "off", "rootPassword": "x"})
    assert subscription.requested_config == {"serverType": "cx32", "location": "nbg1"}
    assert [item.config for item in items_of(subscription)] == [{"serverType": "cx32", "location": "nbg1"}]


def test_without_location_selection_a_requested_location_is_dropped(tenant, customer, profile, sandbox):
    plan = factories.plan(tenant, allow_customer_location_selection=False)
    subscription = place(tenant, customer, plan, config={"location": "hel1"})
    db.session.expire_all()
    assert subscription.requested_config["location"] == "nbg1"
    [item] = items_of(subscription)
    assert item.config["location"] == "nbg1"
    assert ("create_server", item.fqdn, "cx22", "nbg1") in sandbox.calls


def test_without_location_selection_even_an_invalid_location_is_ignored(tenant, customer, profile, sandbox):
    plan = factories.plan(tenant, allow_customer_location_selection=False)
    subscription = place(tenant, customer, plan, config={"location": "mars1"})
    assert subscription.requested_config["location"] == "nbg1"


def test_with_location_selection_the_customers_location_is_honoured(tenant, customer, profile, sandbox):
    plan = factories.plan(tenant, allow_customer_location_selection=True)
    subscription = place(tenant, customer, plan, config={"location": "hel1"})
    db.session.expire_all()
    assert subscription.requested_config["location"] == "hel1"
    [item] = items_of(subscription)
    assert item.config["location"] == "hel1"
    assert ("create_server", item.fqdn, "cx22", "hel1") in sandbox.calls


def test_with_location_selection_a_location_outside_the_enum_is_refused(tenant, customer, profile, sandbox):
    plan = factories.plan(tenant, allow_customer_location_selection=True)
    with pytest.raises(ConfigInvalid) as refused:
        place(tenant, customer, plan, config={"location": "ash"})
    assert set(refused.value.errors) == {"location"}
    nothing_created(sandbox)


def test_price_status_and_owner_in_the_request_never_reach_the_subscription(tenant, other_tenant, customer, profile,
                                                                             plan, sandbox):
    """RELIABILITY row 8: extra fields are ignored; prices are always computed."""
    stranger = factories.user(tenant)
    subscription = place(tenant, customer, plan, config={
        "price": 1, "price_minor": 1, "amount": 0, "currency": "USD", "status": "active",
        "tenant_id": other_tenant.id, "user_id": stranger.id, "plan_id": 999, "quantity": 9,
    })
    db.session.expire_all()
    assert subscription.price_minor == plan.price_minor == 990
    assert subscription.currency == "EUR"
    assert subscription.status is SubscriptionStatus.PENDING_FULFILLMENT
    assert (subscription.tenant_id, subscription.user_id, subscription.plan_id) == (tenant.id, customer.id, plan.id)
    assert subscription.quantity == 1
    assert subscription.requested_config == {"serverType": "cx22", "location": "nbg1"}
    assert all(item.tenant_id == tenant.id for item in items_of(subscription))


# --- Which plans can be ordered ------------------------------------------------------------------


@pytest.mark.parametrize("state", [CatalogueState.DRAFT, CatalogueState.DEPRECATED, CatalogueState.RETIRED])
def test_plans_that_are_not_published_are_refused(tenant, customer, profile, sandbox, state):
    """RELIABILITY row 11."""
    plan = factories.plan(tenant, state=state)
    with pytest.raises(InvalidInput) as refused:
        place(tenant, customer, plan)
    assert refused.value.message == ("This plan is no longer available for new orders. "
                                     "Please choose another plan.")
    nothing_created(sandbox)


@pytest.mark.parametrize("state", [CatalogueState.DRAFT, CatalogueState.DEPRECATED, CatalogueState.RETIRED])
def test_a_published_plan_of_an_unpublished_product_is_refused(tenant, customer, profile, sandbox, state):
    plan = factories.plan(tenant, product_=factories.product(tenant, state=state))
    with pytest.raises(InvalidInput, match="no longer available for new orders"):
        place(tenant, customer, plan)
    nothing_created(sandbox)


def test_another_tenants_plan_is_not_found(tenant, other_tenant, customer, profile, sandbox):
    foreign = factories.plan(other_tenant)
    with pytest.raises(NotFound, match="no such plan"):
        place(tenant, customer, foreign)
    nothing_created(sandbox)


def test_an_unknown_plan_id_is_not_found(tenant, customer, profile, sandbox):
    with pytest.raises(NotFound):
        ordering.place_order(tenant=tenant, actor=Actor(customer), plan_id=987654, requested_config={}, quantity=1,
                             auto_backorder=False, idempotency_key="k")
    nothing_created(sandbox)


# --- The customer's profile ----------------------------------------------------------------------


def test_without_a_profile_the_order_is_refused(tenant, customer, plan, sandbox):
    with pytest.raises(ProfileIncomplete, match="complete your billing profile"):
        place(tenant, customer, plan)
    nothing_created(sandbox)


@pytest.mark.parametrize("missing", ["full_name", "billing_email", "address", "city", "country"])
def test_an_incomplete_profile_refuses_the_order(tenant, customer, plan, sandbox, missing):
    profile = complete_profile(customer)
    setattr(profile, missing, "")
    db.session.commit()
    with pytest.raises(ProfileIncomplete):
        place(tenant, customer, plan)
    nothing_created(sandbox)


# --- Idempotency ---------------------------------------------------------------------------------


def test_the_same_order_twice_gives_one_subscription_and_one_server(tenant, customer, profile, plan, sandbox, clock):
    """RELIABILITY row 21 (sequential; tests/services/test_races.py submits it concurrently)."""
    first = place(tenant, customer, plan, key="form-1")
    second = place(tenant, customer, plan, key="form-1")
    db.session.expire_all()

    assert second.id == first.id
    assert count(Subscription) == 1
    assert count(SubscriptionItem) == 1
    assert count(SubscriptionEvent, SubscriptionEvent.kind == "ordered") == 1
    assert sandbox.server_count() == 1
    assert [call[0] for call in sandbox.calls].count("create_server") == 1


def test_a_double_submission_that_loses_the_race_for_its_name_answers_with_the_winners_subscription(
        tenant, customer, profile, plan, sandbox, monkeypatch):
    """The same form submitted twice at once: the other request commits after this one looked its key up and
    before it checks the server name, so the name is taken, by this very order. The answer is that order, not
    "name taken" (seen with two web processes on PostgreSQL)."""
    first = place(tenant, customer, plan, key="form-2", hostname="twice")
    real = ordering._by_idempotency_key
    looked_up: list[str] = []

    def not_yet_on_the_first_look(tenant_, key):  # type: ignore[no-untyped-def]
        looked_up.append(key)
        return None if len(looked_up) == 1 else real(tenant_, key)

    monkeypatch.setattr(ordering, "_by_idempotency_key", not_yet_on_the_first_look)
    second = place(tenant, customer, plan, key="form-2", hostname="twice")
    assert second.id == first.id and len(looked_up) == 2
    assert count(Subscription) == 1


def test_a_retry_after_delivery_returns_the_delivered_subscription(tenant, customer, profile, plan, sandbox, clock):
    first = place(tenant, customer, plan, key="form-1")
    boot(clock)
    again = place(tenant, customer, plan, key="form-1")
    assert again.id == first.id
    assert again.status is SubscriptionStatus.ACTIVE
    assert count(Charge) == 1
    assert sandbox.server_count() == 1


def test_the_same_key_with_a_different_plan_still_returns_the_first_order(tenant, customer, profile, plan, sandbox):
    first = place(tenant, customer, plan, key="form-1")
    other_plan = factories.plan(tenant, price_minor=5000)
    again = place(tenant, customer, other_plan, key="form-1")
    assert again.id == first.id
    assert again.plan_id == plan.id
    assert count(Subscription) == 1


def test_the_same_key_from_another_customer_is_refused(tenant, customer, profile, plan, sandbox):
    first = place(tenant, customer, plan, key="form-1")
    someone_else = factories.user(tenant)
    complete_profile(someone_else)
    with pytest.raises(InvalidInput, match="already been used"):
        place(tenant, someone_else, plan, key="form-1")
    db.session.expire_all()
    assert db.session.scalars(select(Subscription.id)).all() == [first.id]
    assert sandbox.server_count() == 1


def test_keys_are_scoped_to_the_tenant(tenant, other_tenant, customer, profile, plan, sandbox):
    place(tenant, customer, plan, key="form-1")
    foreigner = factories.user(other_tenant)
    complete_profile(foreigner)
    theirs = place(other_tenant, foreigner, factories.plan(other_tenant), key="form-1")
    assert theirs.tenant_id == other_tenant.id
    assert count(Subscription) == 2


# --- Availability --------------------------------------------------------------------------------


def test_a_sold_out_combination_is_refused_with_alternatives(tenant, customer, profile, plan, sandbox):
    sandbox.set_capacity("cx22", "nbg1", 0)
    with pytest.raises(Unavailable) as refused:
        place(tenant, customer, plan)
    availability = refused.value.availability
    assert refused.value.status_code == 409
    assert not availability.available and not availability.permanent
    assert refused.value.message == "cx22 is sold out in Nuremberg, Germany (nbg1) for now."
    # The plan does not let the customer choose a location: only bigger types of its schema, same place.
    assert [(a.kind.value, a.server_type, a.location) for a in availability.alternatives] == [
        ("other_server_type", "cx32", "nbg1")]
    nothing_created(sandbox)


def test_alternatives_offer_other_locations_when_the_customer_may_choose_one(tenant, customer, profile, sandbox):
    plan = factories.plan(tenant, allow_customer_location_selection=True)
    sandbox.set_capacity("cx22", "nbg1", 0)
    with pytest.raises(Unavailable) as refused:
        place(tenant, customer, plan)
    alternatives = [(a.server_type, a.location) for a in refused.value.availability.alternatives]
    assert set(alternatives) == {("cx22", "fsn1"), ("cx22", "hel1"), ("cx32", "nbg1")}
    # Only what the plan's schema offers: never cx42 / cpx21 / cax11, never the sold-out combination.
    assert all(server_type in ("cx22", "cx32") for server_type, _ in alternatives)
    assert ("cx22", "nbg1") not in alternatives
    nothing_created(sandbox)


def test_sold_out_with_auto_backorder_queues_a_backorder_and_no_server(tenant, customer, profile, plan, sandbox,
                                                                       clock):
    sandbox.set_capacity("cx22", "nbg1", 0)
    subscription = place(tenant, customer, plan, auto_backorder=True)
    db.session.expire_all()

    assert subscription.status is SubscriptionStatus.PENDING_BACKORDER
    assert subscription.auto_backorder is True
    [backorder] = db.session.scalars(select(Backorder)).all()
    assert backorder.subscription_id == subscription.id
    assert backorder.status is BackorderStatus.WAITING
    assert (backorder.provider.value, backorder.server_type, backorder.location) == ("hetzner", "cx22", "nbg1")
    assert backorder.created_at == clock.now()
    [item] = items_of(subscription)
    assert item.status is ItemStatus.PENDING and item.server_id is None
    assert sandbox.server_count() == 0
    assert not [call for call in sandbox.calls if call[0] == "create_server"]
    assert count(Charge) == 0


def test_a_combination_the_cloud_never_offers_is_refused_even_with_auto_backorder(tenant, customer, profile,
                                                                                   sandbox):
    service_type = factories.service_type(tenant, config_schema=SCHEMA_WITH_FAR_LOCATIONS)
    plan = factories.plan(tenant, service_type_=service_type, allow_customer_location_selection=True)
    with pytest.raises(Unavailable) as refused:
        place(tenant, customer, plan, config={"serverType": "cx22", "location": "ash"}, auto_backorder=True)
    assert refused.value.availability.permanent is True
    assert "not offered" in refused.value.message
    nothing_created(sandbox)


def test_the_far_location_is_orderable_for_a_type_offered_there(tenant, customer, profile, sandbox):
    service_type = factories.service_type(tenant, config_schema=SCHEMA_WITH_FAR_LOCATIONS)
    plan = factories.plan(tenant, service_type_=service_type, allow_customer_location_selection=True)
    subscription = place(tenant, customer, plan, config={"serverType": "cpx21", "location": "ash"})
    [item] = items_of(subscription)
    assert ("create_server", item.fqdn, "cpx21", "ash") in sandbox.calls
