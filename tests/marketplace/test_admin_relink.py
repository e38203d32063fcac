"""A STACKIT plan change on the admin's page: the new subscription id, waiting for approval, is linked to the
portal subscription it continues (app/services/marketplace_stackit.py `relink`), through the real adapter and the
fake STACKIT Marketplace on loopback."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.domain.marketplaces import ExternalState, Marketplace
from app.domain.subscriptions import SubscriptionStatus
from app.extensions import db
from app.models import MarketplacePlanMapping, MarketplaceSubscription, Plan, PlanPrice, Subscription
from app.sandbox.stackit_api import StackitFake
from app.services import marketplace_sync, marketplaces
from app.services.actors import Actor
from tests import factories
from tests.helpers import post_form
from tests.marketplace import stackit_helpers
from tests.marketplace.stackit_helpers import CUSTOMER_PROJECT, sandbox_project
from tests.services.conftest import boot

stackit_served, stackit_fake, stackit_url, stackit = (stackit_helpers.stackit_served, stackit_helpers.stackit_fake,
                                                      stackit_helpers.stackit_url, stackit_helpers.stackit)
OTHER_PROJECT = "7a7a7a7a-1111-4222-8333-944444444444"
SIGNUP = "/marketplace/stackit/signup?x-stackit-marketplace-token="
PAGE = "/admin/marketplaces/subscriptions"


@pytest.fixture
def pro(tenant, plan) -> Plan:  # type: ignore[no-untyped-def]
    bigger = factories.plan(tenant, name="Pro", product_=plan.product, service_type_=plan.service_type,
                            price_minor=2990, config_defaults={"serverType": "cx32", "location": "nbg1"})
    bigger.prices = [PlanPrice(server_type="cx32", price_minor=2990, sort=0, is_default=True)]
    db.session.commit()
    return bigger


@pytest.fixture
def mapped(tenant, plan, pro):  # type: ignore[no-untyped-def]
    for external, portal in (("standard", plan), ("pro", pro)):
        db.session.add(MarketplacePlanMapping(tenant_id=tenant.id, marketplace=Marketplace.STACKIT,
                                              offer_id="cloudportal-servers", external_plan_id=external,
                                              plan_id=portal.id))
    db.session.commit()
    return plan


def row_of(external_id: str) -> MarketplaceSubscription:
    db.session.expire_all()
    return db.session.scalars(select(MarketplaceSubscription).where(
        MarketplaceSubscription.external_id == external_id)).one()


def delivered(client, tenant, customer, fake: StackitFake, clock,  # type: ignore[no-untyped-def]
              project: str = CUSTOMER_PROJECT) -> tuple[str, Subscription]:
    external_id, token = fake.purchase(sandbox_project(tenant.slug), "standard", project=project)
    assert client.get(SIGNUP + token).status_code == 303
    subscription = marketplaces.claim(tenant=tenant, actor=Actor(customer), purchase_id=row_of(external_id).id)
    boot(clock)
    db.session.expire_all()
    return external_id, db.session.get(Subscription, subscription.id)


def poll(tenant) -> None:  # type: ignore[no-untyped-def]
    marketplace_sync.sync(tenant, Marketplace.STACKIT)
    db.session.expire_all()


def test_the_admin_links_a_plan_change_to_the_subscription_it_continues(
        client, auth, tenant, customer, admin, stackit, mapped, pro, sandbox, clock):
    old_id, subscription = delivered(client, tenant, customer, stackit, clock)
    new_id, _ = stackit.change_plan(old_id, "pro")
    poll(tenant)
    new = row_of(new_id)
    assert new.state is ExternalState.PENDING and new.subscription_id is None
    auth.login(admin.email)

    page = client.get(f"{PAGE}/{new.id}").get_data(as_text=True)
    assert "Link to an existing subscription" in page
    assert f'<option value="{subscription.id}"' in page and "same customer project" in page
    assert "Link to an existing subscription" not in client.get(f"{PAGE}/{row_of(old_id).id}").get_data(as_text=True)

    answer = post_form(client, f"{PAGE}/{new.id}/link", {"subscription_id": subscription.id}, follow_redirects=True)
    assert answer.status_code == 200
    text = answer.get_data(as_text=True)
    assert f"Linked: subscription #{subscription.id} continues on this STACKIT subscription, now on Pro" in text
    assert f"Replaces <a href=\"{PAGE}/{row_of(old_id).id}\"><code>{old_id}</code></a>" in text
    assert "Link to an existing subscription" not in text  # linked: nothing left to link
    old, new = row_of(old_id), row_of(new_id)
    assert old.retired_at is not None and old.replaced_by_id == new.id and new.subscription_id == subscription.id
    assert db.session.get(Subscription, subscription.id).plan_id == pro.id
    assert stackit.subscription(new_id)["lifecycleState"] == "SUBSCRIPTION_ACTIVE"


def test_a_link_the_service_refuses_is_said_on_the_page_and_nothing_changes(
        client, auth, tenant, customer, admin, stackit, mapped, sandbox, clock, other_tenant):
    old_id, subscription = delivered(client, tenant, customer, stackit, clock)
    foreign_id, _ = stackit.purchase(sandbox_project(tenant.slug), "pro", project=OTHER_PROJECT)
    poll(tenant)
    foreign = row_of(foreign_id)
    auth.login(admin.email)
    answer = post_form(client, f"{PAGE}/{foreign.id}/link", {"subscription_id": subscription.id})
    assert answer.status_code == 400
    assert "was bought for another customer project" in answer.get_data(as_text=True)
    assert "Nothing was changed." in answer.get_data(as_text=True)
    assert row_of(foreign_id).subscription_id is None and row_of(old_id).retired_at is None

    missing = post_form(client, f"{PAGE}/{foreign.id}/link", {"subscription_id": ""})
    assert missing.status_code == 400 and "Choose the subscription." in missing.get_data(as_text=True)

    theirs = MarketplaceSubscription(tenant_id=other_tenant.id, marketplace=Marketplace.STACKIT, external_id="x-1",
                                     offer_id="p", external_plan_id="p", raw_state="SUBSCRIPTION_PENDING",
                                     state=ExternalState.PENDING)
    db.session.add(theirs)
    db.session.commit()
    assert post_form(client, f"{PAGE}/{theirs.id}/link", {"subscription_id": subscription.id}).status_code == 404
    assert db.session.get(Subscription, subscription.id).status is SubscriptionStatus.ACTIVE


def test_only_the_tenants_admins_link(client, auth, tenant, customer, stackit, mapped, sandbox, clock):
    old_id, subscription = delivered(client, tenant, customer, stackit, clock)
    new_id, _ = stackit.change_plan(old_id, "pro")
    poll(tenant)
    auth.login(customer.email)
    assert post_form(client, f"{PAGE}/{row_of(new_id).id}/link",
                     {"subscription_id": subscription.id}).status_code == 403
    assert row_of(new_id).subscription_id is None
