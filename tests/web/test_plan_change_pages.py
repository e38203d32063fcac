"""The customer's plan change pages: the buttons, the preview, confirming, the card gate, scheduled changes."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import delete, select

from app.clock import now
from app.domain.billing import ChargeKind
from app.domain.catalogue import CatalogueState
from app.domain.pricing import period_end
from app.extensions import db
from app.models import Charge, PaymentMethod, Subscription
from tests import factories
from tests.helpers import post_form


@pytest.fixture
def plans(tenant):
    service_type = factories.service_type(tenant)
    product = factories.product(tenant)
    return {name: factories.plan(tenant, product_=product, service_type_=service_type, name=name, price_minor=price)
            for name, price in (("Medium", 1000), ("Big", 3000), ("Small", 400))}


@pytest.fixture
def active(tenant, logged_in, plans, clock):
    """Ten days into a monthly period of Medium (10.00 EUR); the customer has a card (from `logged_in`)."""
    start = now() - timedelta(days=10)
    return factories.subscription(tenant, logged_in, plans["Medium"], price_minor=1000, activated_at=start,
                                  current_period_start=start, current_period_end=period_end(start, plans["Medium"].interval))


def reload(subscription: Subscription) -> Subscription:
    db.session.expire_all()
    return db.session.get(Subscription, subscription.id)


def prorations(subscription: Subscription) -> list[int]:
    return list(db.session.scalars(select(Charge.amount_minor).where(
        Charge.subscription_id == subscription.id,
        Charge.kind.in_([ChargeKind.PRORATION_CREDIT, ChargeKind.PRORATION_DEBIT]))))


def test_the_subscription_page_and_the_list_offer_the_changes(client, active, plans):
    page = client.get(f"/subscriptions/{active.id}").get_data(as_text=True)
    assert "Change plan" in page and "Migrate this subscription" not in page
    plans["Medium"].migration_target_id = plans["Big"].id
    db.session.commit()
    for path in (f"/subscriptions/{active.id}", "/subscriptions/"):
        page = client.get(path).get_data(as_text=True)
        assert f"/subscriptions/{active.id}/change/migrate" in page and "Migrate this subscription" in page


def test_choose_preview_and_confirm_an_upgrade_charges_what_was_shown(client, active, plans):
    choose = client.get(f"/subscriptions/{active.id}/change/plan").get_data(as_text=True)
    assert "Big" in choose and "Small" in choose

    preview = client.get(f"/subscriptions/{active.id}/change/plan?plan={plans['Big'].id}")
    text = preview.get_data(as_text=True)
    assert preview.status_code == 200 and "Due now" in text and "Confirm the change" in text

    response = post_form(client, f"/subscriptions/{active.id}/change/plan",
                         {"version": active.version, "plan": plans["Big"].id})
    assert response.status_code == 303
    assert "now on Big" in client.get(response.headers["Location"]).get_data(as_text=True)
    changed = reload(active)
    credit, debit = sorted(prorations(changed))
    assert changed.plan_id == plans["Big"].id
    assert f"€{(credit + debit) / 100:.2f}" in text  # what the preview said is due now


def test_a_downgrade_is_scheduled_shown_and_can_be_canceled(client, active, plans):
    response = post_form(client, f"/subscriptions/{active.id}/change/plan",
                         {"version": active.version, "plan": plans["Small"].id})
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "is scheduled for" in page and "Change scheduled" in page and "Cancel scheduled change" in page
    assert reload(active).plan_id == plans["Medium"].id and prorations(active) == []

    response = post_form(client, f"/subscriptions/{active.id}/scheduled-change/cancel",
                         {"version": reload(active).version})
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "scheduled change is canceled" in page and "Cancel scheduled change" not in page


def test_bad_choices_are_explained_and_change_nothing(client, active, plans, other_tenant):
    foreign = factories.plan(other_tenant)
    for query, message in ((f"plan={foreign.id}", "There is no such plan."), ("plan=abc", "Choose a plan"),
                           (f"plan={plans['Medium'].id}", "plan you have already"),
                           ("plan=99999999999999999999", "Choose a plan")):
        response = client.get(f"/subscriptions/{active.id}/change/plan?{query}")
        assert response.status_code in (400, 404, 422) and message in response.get_data(as_text=True), query
    plans["Big"].state = CatalogueState.DEPRECATED
    db.session.commit()
    response = post_form(client, f"/subscriptions/{active.id}/change/plan",
                         {"version": active.version, "plan": plans["Big"].id})
    assert "not available for new orders" in client.get(response.headers["Location"]).get_data(as_text=True)
    response = post_form(client, f"/subscriptions/{active.id}/change/plan",
                         {"version": active.version - 1, "plan": plans["Small"].id})
    assert "changed in the meantime" in client.get(response.headers["Location"]).get_data(as_text=True)
    assert client.get(f"/subscriptions/{active.id}/change/sideways").status_code == 404
    assert reload(active).plan_id == plans["Medium"].id and prorations(active) == []


def test_confirming_without_csrf_or_version_is_refused(client, active, plans):
    path = f"/subscriptions/{active.id}/change/plan"
    assert client.post(path, data={"version": active.version, "plan": plans["Big"].id}).status_code == 400
    assert post_form(client, path, {"plan": plans["Big"].id}).status_code == 400
    assert client.post(f"/subscriptions/{active.id}/scheduled-change/cancel",
                       data={"version": active.version}).status_code == 400
    assert reload(active).plan_id == plans["Medium"].id


def test_another_customers_subscription_is_not_found(client, active, tenant, plans):
    someone = factories.user(tenant, email="someone@example.com")
    theirs = factories.subscription(tenant, someone, plans["Medium"], current_period_start=now())
    assert client.get(f"/subscriptions/{theirs.id}/change/plan").status_code == 404
    assert post_form(client, f"/subscriptions/{theirs.id}/change/plan",
                     {"version": theirs.version, "plan": plans["Big"].id}).status_code == 404
    assert reload(theirs).plan_id == plans["Medium"].id


def test_a_paid_target_without_a_card_sends_the_customer_to_add_one_and_back(client, tenant, logged_in, clock):
    db.session.execute(delete(PaymentMethod).where(PaymentMethod.user_id == logged_in.id))
    db.session.commit()
    service_type = factories.service_type(tenant)
    free = factories.plan(tenant, service_type_=service_type, price_minor=0, name="Free")
    paid = factories.plan(tenant, service_type_=service_type, price_minor=500, name="Paid")
    subscription = factories.subscription(tenant, logged_in, free, price_minor=0, current_period_start=now(),
                                          current_period_end=now() + timedelta(days=30))
    preview = f"/subscriptions/{subscription.id}/change/plan?plan={paid.id}"
    response = client.get(preview)
    assert response.status_code == 303 and "/billing/payment-methods" in response.headers["Location"]
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "continue with your plan change" in page
    factories.payment_method(tenant, logged_in)
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert f'href="{preview}"' in page
    assert client.get(preview).status_code == 200


def test_the_preview_shows_the_server_type_and_location_kept_and_the_price_for_them(client, tenant, active, plans):
    from app.models import PlanLocation, PlanPrice, SubscriptionItem

    big = plans["Big"]
    big.allow_customer_location_selection = True
    big.prices = [PlanPrice(server_type="cx32", price_minor=3000, is_default=True),
                  PlanPrice(server_type="cx22", price_minor=1800)]
    big.locations = [PlanLocation(location="nbg1", is_default=True), PlanLocation(location="hel1", surcharge_minor=150)]
    db.session.add(SubscriptionItem(tenant_id=tenant.id, subscription_id=active.id, status="active",
                                    provider="hetzner", config={"serverType": "cx22", "location": "hel1"},
                                    server_id="42", hostname="kept"))
    db.session.commit()

    choices = client.get(f"/subscriptions/{active.id}/change/plan").get_data(as_text=True)
    assert "<strong>Big</strong> · €19.50" in choices  # priced as the preview prices it
    assert "<strong>Small</strong> · not offered where your server is" in choices  # it places servers in nbg1 only
    text = client.get(f"/subscriptions/{active.id}/change/plan?plan={big.id}").get_data(as_text=True)
    assert "cx22, as now" in text and "Helsinki, Finland (hel1), as now" in text
    assert "€19.50" in text and "its surcharge, €1.50, is in the new price" in text
    assert "will be resized" not in text
