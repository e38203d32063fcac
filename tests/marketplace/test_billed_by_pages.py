"""A subscription a marketplace bills: the customer's pages say who bills it and where it is managed, promise no
charge of the portal's, and (STACKIT) leave its plan, quantity and cancellation to the marketplace."""

from __future__ import annotations

import pytest

from app.domain.marketplaces import Marketplace
from app.domain.subscriptions import SubscriptionStatus
from app.extensions import db
from app.models import Subscription
from tests import factories
from tests.helpers import complete_profile, post_form


@pytest.fixture
def shopper(client, auth, customer, clock):  # type: ignore[no-untyped-def]
    complete_profile(customer, card=False)
    auth.login(customer.email)
    return customer


def bought(tenant, customer, marketplace: Marketplace | None, **values) -> Subscription:  # type: ignore[no-untyped-def]
    plan = factories.plan(tenant, name=f"Cloud {marketplace.label if marketplace else 'direct'}", price_minor=1234,
                          **values)
    return factories.subscription(tenant, customer, plan, marketplace=marketplace, price_minor=1234)


def test_a_stackit_subscription_page_names_who_bills_and_offers_no_portal_changes(client, tenant, shopper):
    subscription = bought(tenant, shopper, Marketplace.STACKIT)
    page = client.get(f"/subscriptions/{subscription.id}").get_data(as_text=True)
    assert "Billed by the STACKIT Marketplace" in page
    assert "are changed on the STACKIT Portal, where you bought it" in page
    assert "The portal sends no invoice for it and charges no card." in page
    assert "12.34" not in page and "Next charge" not in page
    assert "Change plan" not in page and "Cancel subscription" not in page and "Change quantity" not in page


def test_a_microsoft_subscription_page_names_who_bills_and_promises_no_portal_charge(client, tenant, shopper):
    subscription = bought(tenant, shopper, Marketplace.MICROSOFT)
    page = client.get(f"/subscriptions/{subscription.id}").get_data(as_text=True)
    assert "Billed by the Microsoft commercial marketplace" in page
    assert "cancel it in the Azure portal or the Microsoft 365 admin center, where you bought it" in page
    assert "12.34" not in page and "Next charge" not in page
    assert "Cancel subscription" not in page  # canceled at Microsoft; plan changes are asked of Microsoft


def test_a_subscription_the_portal_bills_still_shows_its_price_and_next_charge(client, tenant, shopper):
    subscription = bought(tenant, shopper, None)
    page = client.get(f"/subscriptions/{subscription.id}").get_data(as_text=True)
    assert "12.34" in page and "Next charge" in page and "Billed by" not in page
    assert "Change plan" in page and "Cancel subscription" in page


@pytest.mark.parametrize("path", ["cancel", "change/plan", "change/quantity", "change/migrate"])
def test_stackit_changes_and_cancellation_are_sent_to_the_stackit_portal(client, tenant, shopper, path):
    subscription = bought(tenant, shopper, Marketplace.STACKIT)
    for answer in (client.get(f"/subscriptions/{subscription.id}/{path}"),
                   post_form(client, f"/subscriptions/{subscription.id}/{path}",
                             {"version": subscription.version, "plan": subscription.plan_id, "quantity": 2})):
        assert answer.status_code == 303 and answer.location.endswith(f"/subscriptions/{subscription.id}")
    page = client.get(f"/subscriptions/{subscription.id}").get_data(as_text=True)
    assert "are changed on the STACKIT Portal" in page  # said, in the flash message and on the page
    db.session.expire_all()
    kept = db.session.get(Subscription, subscription.id)
    assert kept.status is SubscriptionStatus.ACTIVE and kept.version == subscription.version


@pytest.mark.parametrize("marketplace", list(Marketplace))
def test_cancel_and_resume_are_the_marketplaces(client, tenant, shopper, marketplace):
    subscription = bought(tenant, shopper, marketplace)
    answer = post_form(client, f"/subscriptions/{subscription.id}/cancel", {"version": subscription.version})
    assert answer.status_code == 303
    assert "where you bought it" in client.get(answer.location).get_data(as_text=True)
    subscription.status = SubscriptionStatus.PENDING_CANCEL
    subscription.effective_at = subscription.current_period_end
    db.session.commit()
    assert "Resume subscription" not in client.get(f"/subscriptions/{subscription.id}").get_data(as_text=True)
    answer = post_form(client, f"/subscriptions/{subscription.id}/resume", {"version": subscription.version})
    assert answer.status_code == 303
    db.session.expire_all()
    assert db.session.get(Subscription, subscription.id).status is SubscriptionStatus.PENDING_CANCEL


def test_the_subscriptions_list_says_who_bills_instead_of_a_charge(client, tenant, shopper):
    stackit = bought(tenant, shopper, Marketplace.STACKIT)
    microsoft = bought(tenant, shopper, Marketplace.MICROSOFT)
    direct = bought(tenant, shopper, None)
    page = client.get("/subscriptions/").get_data(as_text=True)
    rows = {s.id: page.split(f'href="/subscriptions/{s.id}"')[1].split("</tr>")[0] for s in (stackit, microsoft, direct)}
    assert "Billed by the STACKIT Marketplace" in rows[stackit.id] and "Change or cancel it in the STACKIT Portal" in \
        rows[stackit.id]
    assert "Change plan" not in rows[stackit.id] and "12.34" not in rows[stackit.id]
    assert "Billed by the Microsoft commercial marketplace" in rows[microsoft.id]
    assert "Cancel it in the Azure portal" in rows[microsoft.id] and "Next charge" not in rows[microsoft.id]
    assert "Next charge" in rows[direct.id] and "12.34" in rows[direct.id] and "Change plan" in rows[direct.id]


def test_the_billing_overview_lists_what_marketplaces_bill(client, tenant, shopper, other_tenant):
    assert "Billed by a marketplace" not in client.get("/billing").get_data(as_text=True)
    stackit = bought(tenant, shopper, Marketplace.STACKIT)
    ended = bought(tenant, shopper, Marketplace.MICROSOFT, )
    ended.status = SubscriptionStatus.CANCELED
    db.session.commit()
    page = client.get("/billing").get_data(as_text=True)
    assert "Billed by a marketplace" in page and "no invoice of ours, no card here" in page
    assert f"Cloud STACKIT Marketplace #{stackit.id}</a>: billed by the STACKIT Marketplace, managed in the STACKIT Portal" \
        in page
    assert f"#{ended.id}" not in page  # ended: nothing to say about it
    assert "Your marketplace subscriptions are invoiced by their marketplace, never here." in page


def test_the_admins_subscription_page_says_who_bills_it(client, auth, tenant, customer, admin, clock):
    subscription = bought(tenant, customer, Marketplace.MICROSOFT)
    auth.login(admin.email)
    page = client.get(f"/admin/subscriptions/{subscription.id}").get_data(as_text=True)
    assert "Billed by the Microsoft commercial marketplace" in page and "the portal invoices nothing for it" in page
    direct = bought(tenant, customer, None)
    assert "Billed by" not in client.get(f"/admin/subscriptions/{direct.id}").get_data(as_text=True)
