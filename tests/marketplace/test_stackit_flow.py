"""A purchase on the STACKIT Marketplace, end to end through the real adapter and the fake vendor API on loopback:
the sign-up link, set-up, approval within the pending hour (and too late), polling into cancelling, cancelled,
inactive and back, and a plan change (a new subscription id) linked to the same portal subscription."""

from __future__ import annotations

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import select

from app.domain.marketplaces import ExternalState, Marketplace
from app.domain.subscriptions import ItemStatus, SubscriptionStatus
from app.extensions import db
from app.models import (
    Charge,
    MarketplaceOperation,
    MarketplacePlanMapping,
    MarketplaceSubscription,
    Plan,
    PlanPrice,
    Subscription,
    SubscriptionEvent,
    SubscriptionItem,
)
from app.sandbox.stackit_api import PENDING_TTL, StackitFake
from app.services import marketplace_stackit, marketplace_sync, marketplaces
from app.services.actors import Actor
from app.services.errors import Conflict, Forbidden, InvalidInput
from tests import factories
from tests.marketplace import stackit_helpers
from tests.marketplace.stackit_helpers import CUSTOMER_PROJECT, sandbox_project
from tests.services.conftest import boot, count

stackit_served, stackit_fake, stackit_url, stackit = (stackit_helpers.stackit_served, stackit_helpers.stackit_fake,
                                                      stackit_helpers.stackit_url, stackit_helpers.stackit)
OTHER_PROJECT = "7a7a7a7a-1111-4222-8333-944444444444"
SIGNUP = "/marketplace/stackit/signup?x-stackit-marketplace-token="


@pytest.fixture
def pro(tenant, plan) -> Plan:  # type: ignore[no-untyped-def]
    """A bigger plan of the same product: cx32 servers only."""
    bigger = factories.plan(tenant, product_=plan.product, service_type_=plan.service_type, price_minor=2990,
                            config_defaults={"serverType": "cx32", "location": "nbg1"})
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


def purchase_row(external_id: str) -> MarketplaceSubscription:
    db.session.expire_all()
    row = db.session.scalar(select(MarketplaceSubscription).where(MarketplaceSubscription.external_id == external_id))
    assert row is not None
    return row


def signed_up(client, tenant, stackit: StackitFake, plan: str = "standard",  # type: ignore[no-untyped-def]
              project: str = CUSTOMER_PROJECT) -> tuple[str, MarketplaceSubscription]:
    """The customer subscribes at STACKIT and follows the sign-up link to the portal."""
    external_id, token = stackit.purchase(sandbox_project(tenant.slug), plan, project=project)
    arrived = client.get(SIGNUP + token)
    assert arrived.status_code == 303, arrived.data.decode().split('id="signup-problem"')[-1][:300]
    row = purchase_row(external_id)
    assert arrived.headers["Location"].endswith(f"/marketplace/purchases/{row.id}")
    return external_id, row


def delivered(client, tenant, customer, stackit: StackitFake, clock,  # type: ignore[no-untyped-def]
              plan: str = "standard") -> tuple[str, Subscription]:
    """Signed up, set up and delivered: the portal approved it at STACKIT."""
    external_id, row = signed_up(client, tenant, stackit, plan)
    subscription = marketplaces.claim(tenant=tenant, actor=Actor(customer), purchase_id=row.id)
    boot(clock)
    db.session.expire_all()
    return external_id, db.session.get(Subscription, subscription.id)


def poll(tenant) -> marketplace_sync.Outcome:  # type: ignore[no-untyped-def]
    outcome = marketplace_sync.sync(tenant, Marketplace.STACKIT)
    db.session.expire_all()
    return outcome


def operations(**where) -> list[MarketplaceOperation]:  # type: ignore[no-untyped-def]
    return list(db.session.scalars(select(MarketplaceOperation).filter_by(**where).order_by(MarketplaceOperation.id)))


# --- sign-up and approval ---------------------------------------------------------------------------------------


def test_a_purchase_is_set_up_and_approved_within_its_hour_with_the_subscription_page(
        client, tenant, customer, stackit, mapped, sandbox, clock):
    external_id, subscription = delivered(client, tenant, customer, stackit, clock)

    assert subscription.status is SubscriptionStatus.ACTIVE and subscription.marketplace is Marketplace.STACKIT
    at_stackit = stackit.subscription(external_id)
    assert at_stackit["lifecycleState"] == "SUBSCRIPTION_ACTIVE"
    assert at_stackit["instanceTarget"].endswith(f"/subscriptions/{subscription.id}")
    row = purchase_row(external_id)
    assert row.activated_at is not None and row.subscription_id == subscription.id
    assert row.customer_ref == CUSTOMER_PROJECT and row.external_plan_id == "standard"
    assert [(o.source, o.action, o.ok) for o in operations()] == [
        ("landing", "resolve", True), ("landing", "claim", True), ("activate", "activate", True)]
    assert count(Charge, Charge.subscription_id == subscription.id) == 0  # STACKIT bills it

    assert purchase_row(external_id).state is ExternalState.ACTIVE  # read back from STACKIT once approved
    assert poll(tenant).changed == 0  # the poll finds it as it is: nothing to do
    assert db.session.get(Subscription, subscription.id).status is SubscriptionStatus.ACTIVE


def test_an_approval_after_the_pending_hour_fails_clearly_and_the_poll_ends_the_subscription(
        client, tenant, customer, stackit, mapped, sandbox, clock):
    external_id, row = signed_up(client, tenant, stackit)
    subscription = marketplaces.claim(tenant=tenant, actor=Actor(customer), purchase_id=row.id)
    clock.advance(seconds=PENDING_TTL)  # delivery took longer than STACKIT waits
    boot(clock)

    [failed] = operations(source="activate")
    assert not failed.ok and failed.http_status == 409 and "SUBSCRIPTION_REJECTED" in failed.outcome
    assert db.session.scalar(select(SubscriptionEvent).where(
        SubscriptionEvent.subscription_id == subscription.id,
        SubscriptionEvent.kind == "not_activated_at_marketplace")) is not None

    poll(tenant)
    subscription = db.session.get(Subscription, subscription.id)
    assert subscription.status is SubscriptionStatus.CANCELED and subscription.servers_delete_at is not None
    assert purchase_row(external_id).state is ExternalState.REJECTED
    [ended] = operations(source="poll")
    assert ended.ok and ended.action == "terminate" and "SUBSCRIPTION_REJECTED" in ended.outcome


# --- polling --------------------------------------------------------------------------------------------------


def test_cancelling_schedules_the_cancellation_and_cancelled_ends_it_with_retention(
        client, tenant, customer, stackit, mapped, sandbox, clock):
    external_id, subscription = delivered(client, tenant, customer, stackit, clock)
    poll(tenant)
    logged = len(operations())

    stackit.cancel(external_id)
    poll(tenant)
    subscription = db.session.get(Subscription, subscription.id)
    assert subscription.status is SubscriptionStatus.PENDING_CANCEL and subscription.effective_at is not None
    assert [o.action for o in operations(source="poll")][-1] == "cancel"

    assert poll(tenant).changed == 0 and len(operations()) == logged + 1  # unchanged: nothing logged

    stackit.cancel(external_id, final=True)
    poll(tenant)
    subscription = db.session.get(Subscription, subscription.id)
    assert subscription.status is SubscriptionStatus.CANCELED
    assert (subscription.servers_delete_at - subscription.canceled_at).days == tenant.retention_days
    assert purchase_row(external_id).raw_state == "SUBSCRIPTION_CANCELLED"


def test_inactive_suspends_and_active_again_reinstates(client, tenant, customer, stackit, mapped, sandbox, clock):
    external_id, subscription = delivered(client, tenant, customer, stackit, clock)
    stackit.set_state(external_id, "SUBSCRIPTION_INACTIVE", allowed=("SUBSCRIPTION_ACTIVE",))
    poll(tenant)
    assert db.session.get(Subscription, subscription.id).status is SubscriptionStatus.SUSPENDED

    stackit.set_state(external_id, "SUBSCRIPTION_ACTIVE", allowed=("SUBSCRIPTION_INACTIVE",))
    poll(tenant)
    assert db.session.get(Subscription, subscription.id).status is SubscriptionStatus.ACTIVE
    assert [o.action for o in operations(source="poll")] == ["suspend", "reinstate"]


def test_the_poll_reads_every_page_and_records_pending_purchases_it_did_not_know(tenant, stackit, mapped):
    stackit.set_page_size(2)
    vendor = sandbox_project(tenant.slug)
    bought = [stackit.purchase(vendor, "standard")[0] for _ in range(5)]
    stackit.purchase("someone-else", "pro")

    outcome = poll(tenant)
    assert (outcome.seen, outcome.discovered, outcome.failures) == (5, 5, [])
    assert sorted(r.external_id for r in db.session.scalars(select(MarketplaceSubscription))) == sorted(bought)
    assert len([c for c in stackit.calls() if c["path"].endswith("/subscriptions")]) == 3

    logged = len(operations())
    assert poll(tenant).discovered == 0 and len(operations()) == logged


def test_a_marketplace_that_cannot_be_reached_is_a_logged_failure(app, tenant, mapped, monkeypatch):
    monkeypatch.setitem(app.config, "SANDBOX_STACKIT_URL", "http://127.0.0.1:9")
    outcome = poll(tenant)
    assert len(outcome.failures) == 1 and "could not be reached" in outcome.failures[0]
    [failed] = operations()
    assert (failed.source, failed.action, failed.ok) == ("poll", "list", False)


# --- a plan change: a new subscription id -----------------------------------------------------------------------


def test_a_plan_change_is_linked_to_the_same_subscription_and_its_servers(
        client, tenant, customer, admin, stackit, mapped, pro, sandbox, clock):
    old_id, subscription = delivered(client, tenant, customer, stackit, clock)
    [item] = subscription.items
    server_id = item.server_id
    new_id, _ = stackit.change_plan(old_id, "pro")  # the customer buys pro; standard ends with its term

    poll(tenant)
    assert db.session.get(Subscription, subscription.id).status is SubscriptionStatus.PENDING_CANCEL
    new_row = purchase_row(new_id)
    assert new_row.state is ExternalState.PENDING and new_row.subscription_id is None
    assert [o.action for o in operations(source="poll")] == ["cancel", "discovered"]

    marketplace_stackit.relink(tenant=tenant, actor=Actor(admin), new_purchase_id=new_row.id,
                               subscription_id=subscription.id)
    db.session.expire_all()

    subscription = db.session.get(Subscription, subscription.id)
    assert subscription.status is SubscriptionStatus.ACTIVE and subscription.plan_id == pro.id
    item = db.session.get(SubscriptionItem, item.id)
    assert item.status is ItemStatus.ACTIVE and item.server_id == server_id
    assert item.config["server_type"] == "cx32"  # resized to what pro offers
    old_row, new_row = purchase_row(old_id), purchase_row(new_id)
    assert old_row.retired_at is not None and old_row.replaced_by_id == new_row.id
    assert new_row.subscription_id == subscription.id and new_row.activated_at is not None
    assert stackit.subscription(new_id)["lifecycleState"] == "SUBSCRIPTION_ACTIVE"
    assert stackit.subscription(new_id)["instanceTarget"].endswith(f"/subscriptions/{subscription.id}")
    assert marketplaces.linked(tenant, subscription.id).external_id == new_id
    kinds = list(db.session.scalars(select(SubscriptionEvent.kind).where(
        SubscriptionEvent.subscription_id == subscription.id)))
    assert "marketplace_relinked" in kinds
    assert count(Charge, Charge.subscription_id == subscription.id) == 0

    stackit.cancel(old_id, final=True)  # the old term ends: that no longer ends anything here
    poll(tenant)
    assert db.session.get(Subscription, subscription.id).status is SubscriptionStatus.ACTIVE
    assert purchase_row(old_id).raw_state == "SUBSCRIPTION_CANCELLED"
    assert "retired" in operations(source="poll")[-1].outcome


def test_linking_refuses_with_nothing_changed(client, tenant, customer, admin, stackit, mapped, sandbox, clock):
    old_id, subscription = delivered(client, tenant, customer, stackit, clock)
    vendor = sandbox_project(tenant.slug)
    foreign_id, _ = stackit.purchase(vendor, "pro", project=OTHER_PROJECT)
    new_id, _ = stackit.change_plan(old_id, "pro")
    poll(tenant)
    foreign, new = purchase_row(foreign_id), purchase_row(new_id)

    def link(purchase_id: int, actor: Actor | None = None) -> None:
        marketplace_stackit.relink(tenant=tenant, actor=actor or Actor(admin), new_purchase_id=purchase_id,
                                   subscription_id=subscription.id)

    with pytest.raises(Forbidden):
        link(new.id, Actor(customer))
    with pytest.raises(InvalidInput, match="another customer project"):
        link(foreign.id)
    db.session.execute(MarketplacePlanMapping.__table__.delete().where(
        MarketplacePlanMapping.external_plan_id == "pro"))
    db.session.commit()
    with pytest.raises(InvalidInput, match="not mapped"):
        link(new.id)
    db.session.expire_all()
    assert db.session.get(Subscription, subscription.id).plan_id == mapped.id
    assert purchase_row(old_id).retired_at is None and purchase_row(new_id).subscription_id is None
    assert stackit.subscription(new_id)["lifecycleState"] == "SUBSCRIPTION_PENDING"
    assert [o.ok for o in operations(source="change")] == [False, False]

    stackit.advance(PENDING_TTL)  # the admin was too late: STACKIT rejected the new purchase
    poll(tenant)
    with pytest.raises(InvalidInput, match="rejected, not waiting for approval"):
        link(new.id)


def test_a_purchase_linked_already_or_a_canceled_subscription_is_refused(
        client, tenant, customer, admin, stackit, mapped, pro, sandbox, clock):
    old_id, subscription = delivered(client, tenant, customer, stackit, clock)
    new_id, _ = stackit.change_plan(old_id, "pro")
    poll(tenant)
    new = purchase_row(new_id)
    marketplace_stackit.relink(tenant=tenant, actor=Actor(admin), new_purchase_id=new.id,
                               subscription_id=subscription.id)
    with pytest.raises(Conflict, match="linked already"):
        marketplace_stackit.relink(tenant=tenant, actor=Actor(admin), new_purchase_id=new.id,
                                   subscription_id=subscription.id)

    later_id, _ = stackit.change_plan(new_id, "standard")
    stackit.cancel(new_id, final=True)
    poll(tenant)
    assert db.session.get(Subscription, subscription.id).status is SubscriptionStatus.CANCELED
    with pytest.raises(InvalidInput, match="canceled"):
        marketplace_stackit.relink(tenant=tenant, actor=Actor(admin), new_purchase_id=purchase_row(later_id).id,
                                   subscription_id=subscription.id)


# --- the sign-up link's token -----------------------------------------------------------------------------------


def test_expired_reused_forged_and_foreign_tokens_get_a_clear_page(client, tenant, stackit, stackit_url, mapped):
    vendor = sandbox_project(tenant.slug)
    external_id, token = stackit.purchase(vendor, "standard")
    assert client.get(SIGNUP + token).status_code == 303
    reused = client.get(SIGNUP + token)
    assert reused.status_code == 400 and b"used already" in reused.data

    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cases = {
        "expired": stackit.token(external_id, expires_in=-1),
        "not signed by the STACKIT Marketplace": stackit.token(external_id, key=forger),
        "issued by someone else": stackit.token(external_id, issuer="https://keys.example/keys.json"),
        "not signed by the STACKIT Marketplace ": stackit.token(external_id, kid="unknown-kid"),
        "not a STACKIT Marketplace token": "not-a-jwt",
        "has no valid STACKIT Marketplace token": "",
        "not signed by the STACKIT Marketplace  ": jwt.encode({"iss": "x", "exp": 9999999999}, "s" * 32,
                                                              algorithm="HS256",
                                                              headers={"kid": stackit.kid}),
    }
    for message, bad in cases.items():
        page = client.get(SIGNUP + bad)
        assert page.status_code == 400, message
        assert message.strip().encode() in page.data and b"STACKIT Portal" in page.data, message
    assert count(MarketplaceSubscription) == 1
    assert [(o.action, o.ok) for o in operations(source="landing")] == [("resolve", True), ("resolve", False)]


def test_a_tenant_not_connected_to_stackit_gets_a_clear_page(app, client, stackit, monkeypatch):
    monkeypatch.setitem(app.config, "SANDBOX_STACKIT_URL", None)
    page = client.get(SIGNUP + "whatever")
    assert page.status_code == 503 and b"does not sell on the STACKIT Marketplace" in page.data
