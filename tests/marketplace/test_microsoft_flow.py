"""A purchase on the Microsoft commercial marketplace from start to end, through the real adapter and the fake
marketplace on 127.0.0.1: purchase, landing, resolve, set-up, provisioning, activation; the customer's changes in
the Azure portal (accepted and refused), suspension, reinstatement, renewal, cancellation and retention."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from app.domain.marketplaces import MINIMUM_RETENTION_DAYS, ExternalState
from app.domain.subscriptions import ItemStatus, SubscriptionStatus
from app.extensions import db
from app.models import Charge, MarketplaceOperation, MarketplaceSubscription, Subscription, SubscriptionEvent
from app.services import marketplace_microsoft
from app.services.actors import Actor
from app.services.errors import Conflict, InvalidInput, NotFound
from tests import factories
from tests.marketplace.microsoft_helpers import buy_and_set_up, microsoft  # noqa: F401  (a fixture)
from tests.services.conftest import boot, count
from tests.services.test_plan_changes import offer


def fresh(subscription: Subscription) -> Subscription:
    db.session.expire_all()
    return db.session.get(Subscription, subscription.id)


def external(external_id: str) -> MarketplaceSubscription:
    db.session.expire_all()
    return db.session.scalar(select(MarketplaceSubscription).where(MarketplaceSubscription.external_id == external_id))


def at_microsoft(world, external_id: str) -> dict:
    return world.fake.subscriptions[external_id]


def events(subscription: Subscription, kind: str) -> list[SubscriptionEvent]:
    return list(db.session.scalars(select(SubscriptionEvent).where(SubscriptionEvent.subscription_id == subscription.id,
                                                                  SubscriptionEvent.kind == kind)))


def delivered(client, auth, microsoft, customer, clock) -> tuple[str, Subscription]:  # noqa: F811
    external_id, subscription = buy_and_set_up(client, auth, microsoft, customer)
    boot(clock)
    subscription = fresh(subscription)
    assert subscription.status is SubscriptionStatus.ACTIVE
    return external_id, subscription


def test_bought_landed_set_up_delivered_then_activated_at_microsoft_and_never_charged_here(
        client, auth, customer, microsoft, clock):  # noqa: F811
    external_id, subscription = buy_and_set_up(client, auth, microsoft, customer)
    assert at_microsoft(microsoft, external_id)["saasSubscriptionStatus"] == "PendingFulfillmentStart"
    assert subscription.plan_id == microsoft.standard.id and subscription.marketplace.value == "microsoft"

    boot(clock)

    assert fresh(subscription).status is SubscriptionStatus.ACTIVE
    assert at_microsoft(microsoft, external_id)["saasSubscriptionStatus"] == "Subscribed"
    assert [a["subscription"] for a in microsoft.fake.activations] == [external_id]
    assert external(external_id).activated_at is not None
    assert count(Charge, Charge.subscription_id == subscription.id) == 0


def test_a_change_of_plan_in_the_azure_portal_is_accepted_at_once_and_applied_without_a_charge(
        client, auth, customer, microsoft, clock):  # noqa: F811
    external_id, subscription = delivered(client, auth, microsoft, customer, clock)

    answer = microsoft.fake.send(external_id, "ChangePlan", plan_id="pro")

    assert answer["delivered"] == 200 and answer["operation"]["status"] == "Succeeded"
    [patch] = microsoft.fake.patches
    assert patch["status"] == "Success" and patch["seconds_after_webhook"] < 10
    subscription = fresh(subscription)
    assert (subscription.plan_id, subscription.price_minor) == (microsoft.pro.id, 2990)
    assert at_microsoft(microsoft, external_id)["planId"] == "pro" and external(external_id).external_plan_id == "pro"
    assert count(Charge, Charge.subscription_id == subscription.id) == 0  # Microsoft bills
    [changed] = events(subscription, "plan_changed")
    assert changed.data["by"] == "microsoft" and changed.actor_id is None


def test_a_change_the_portal_cannot_honour_is_refused_and_nothing_changes_on_either_side(
        client, auth, customer, microsoft, clock):  # noqa: F811
    external_id, subscription = delivered(client, auth, microsoft, customer, clock)
    version = subscription.version

    deprecated = microsoft.fake.send(external_id, "ChangePlan", plan_id="legacy")  # mapped to a plan not sold now
    unmapped = microsoft.fake.send(external_id, "ChangePlan", plan_id="unmapped")
    seats = microsoft.fake.send(external_id, "ChangePlan", plan_id="pro")  # accepted: the control
    assert seats["operation"]["status"] == "Succeeded"

    for refused in (deprecated, unmapped):
        assert refused["delivered"] == 400 and refused["operation"]["status"] == "Failed"
    assert [p["status"] for p in microsoft.fake.patches] == ["Failure", "Failure", "Success"]
    outcomes = [o.outcome for o in db.session.scalars(select(MarketplaceOperation).where(
        MarketplaceOperation.source == "webhook").order_by(MarketplaceOperation.id))]
    assert "not available for new orders" in outcomes[0] and "not mapped" in outcomes[1]
    assert fresh(subscription).version > version  # only the accepted one changed it
    assert len(events(subscription, "plan_changed")) == 1


def test_a_refused_change_keeps_the_old_plan_at_microsoft(client, auth, customer, microsoft, clock):  # noqa: F811
    external_id, subscription = delivered(client, auth, microsoft, customer, clock)
    microsoft.fake.send(external_id, "ChangePlan", plan_id="legacy")
    assert at_microsoft(microsoft, external_id)["planId"] == "standard"
    assert fresh(subscription).plan_id == microsoft.standard.id and events(subscription, "plan_changed") == []


def test_a_quantity_change_of_a_subscription_with_servers_is_refused(client, auth, customer, microsoft, clock):  # noqa: F811
    external_id, subscription = delivered(client, auth, microsoft, customer, clock)
    at_microsoft(microsoft, external_id)["offerId"] = "seats"  # as if the offer sold seats of servers
    at_microsoft(microsoft, external_id)["planId"] = "team"
    row = external(external_id)
    row.offer_id, row.external_plan_id = "seats", "team"
    db.session.commit()
    answer = microsoft.fake.send(external_id, "ChangeQuantity", quantity=3)
    assert answer["delivered"] == 400 and answer["operation"]["status"] == "Failed"
    assert fresh(subscription).quantity == 1


def test_suspend_keeps_the_servers_powered_off_and_reinstate_brings_them_back(
        client, auth, customer, microsoft, clock, sandbox):  # noqa: F811
    external_id, subscription = delivered(client, auth, microsoft, customer, clock)

    assert microsoft.fake.send(external_id, "Suspend")["delivered"] == 200
    subscription = fresh(subscription)
    assert subscription.status is SubscriptionStatus.SUSPENDED
    assert subscription.effective_at >= clock.now() + timedelta(days=29)  # Microsoft's 30 days of grace
    [item] = subscription.items
    assert item.status is ItemStatus.ACTIVE and sandbox.server_count() == 1  # kept, data and all
    assert sandbox.server_info(item.server_id).power.value in ("off", "stopping")
    assert external(external_id).state is ExternalState.SUSPENDED

    answer = microsoft.fake.send(external_id, "Reinstate")
    assert answer["delivered"] == 200 and answer["operation"]["status"] == "Succeeded"
    assert fresh(subscription).status is SubscriptionStatus.ACTIVE
    assert external(external_id).state is ExternalState.ACTIVE


def test_renew_starts_the_next_period_without_a_charge(client, auth, customer, microsoft, clock):  # noqa: F811
    external_id, subscription = delivered(client, auth, microsoft, customer, clock)
    end = subscription.current_period_end
    clock.advance(seconds=(end - clock.now()).total_seconds() + 60)

    assert microsoft.fake.send(external_id, "Renew")["delivered"] == 200

    subscription = fresh(subscription)
    assert subscription.current_period_start == end and subscription.current_period_end > end
    assert count(Charge, Charge.subscription_id == subscription.id) == 0


def test_unsubscribe_ends_the_subscription_and_keeps_the_servers_at_least_seven_days(
        client, auth, customer, microsoft, clock, tenant):  # noqa: F811
    tenant.retention_days = 1  # shorter than Microsoft asks for
    db.session.commit()
    external_id, subscription = delivered(client, auth, microsoft, customer, clock)

    assert microsoft.fake.send(external_id, "Unsubscribe")["delivered"] == 200

    subscription = fresh(subscription)
    assert subscription.status is SubscriptionStatus.CANCELED
    assert subscription.servers_delete_at >= subscription.canceled_at + timedelta(days=MINIMUM_RETENTION_DAYS)
    assert external(external_id).state is ExternalState.CANCELLED


def test_a_change_asked_for_here_is_applied_only_when_microsoft_confirms_it(
        client, auth, customer, microsoft, clock, tenant):  # noqa: F811
    external_id, subscription = delivered(client, auth, microsoft, customer, clock)
    row = marketplace_microsoft.request_change(tenant, Actor(customer), subscription.id, plan_id=microsoft.pro.id)

    assert row.pending_change["plan_id"] == "pro"
    assert fresh(subscription).plan_id == microsoft.standard.id  # not yet
    [operation] = [o for o in microsoft.fake.operations.values() if o["action"] == "ChangePlan"]
    assert operation["operationRequestSource"] == "Partner"

    assert microsoft.courier.flush(microsoft.fake) == [200]

    assert fresh(subscription).plan_id == microsoft.pro.id
    assert external(external_id).pending_change is None
    assert at_microsoft(microsoft, external_id)["planId"] == "pro"


def test_a_cancellation_asked_for_here_ends_the_subscription_when_microsoft_confirms_it(
        client, auth, customer, microsoft, clock, tenant):  # noqa: F811
    external_id, subscription = delivered(client, auth, microsoft, customer, clock)
    marketplace_microsoft.request_unsubscribe(tenant, Actor(customer), subscription.id)
    assert at_microsoft(microsoft, external_id)["saasSubscriptionStatus"] == "Unsubscribed"
    assert fresh(subscription).status is SubscriptionStatus.ACTIVE  # until the webhook

    assert microsoft.courier.flush(microsoft.fake) == [200]

    assert fresh(subscription).status is SubscriptionStatus.CANCELED
    assert external(external_id).pending_change is None


def test_a_change_to_a_plan_with_a_smaller_disk_is_refused(client, auth, customer, microsoft, clock):  # noqa: F811
    offer(microsoft.pro, [("cx32", 2990)])  # Pro servers are cx32 (80 GB), Standard ones cx22 (40 GB)
    offer(microsoft.standard, [("cx22", 990)])
    external_id, subscription = buy_and_set_up(client, auth, microsoft, customer, plan_id="pro")
    boot(clock)
    assert fresh(subscription).status is SubscriptionStatus.ACTIVE

    answer = microsoft.fake.send(external_id, "ChangePlan", plan_id="standard")

    assert answer["delivered"] == 400 and answer["operation"]["status"] == "Failed"
    assert at_microsoft(microsoft, external_id)["planId"] == "pro" and fresh(subscription).plan_id == microsoft.pro.id
    [logged] = db.session.scalars(select(MarketplaceOperation).where(MarketplaceOperation.source == "webhook")).all()
    assert "disk can never shrink" in logged.outcome


def test_a_change_asked_for_here_is_checked_first_and_only_one_waits_at_a_time(
        client, auth, customer, microsoft, clock, tenant):  # noqa: F811
    _, subscription = delivered(client, auth, microsoft, customer, clock)
    unsold = factories.plan(tenant, product_=microsoft.standard.product,
                            service_type_=microsoft.standard.service_type)
    with pytest.raises(InvalidInput, match="not sold through the Microsoft"):
        marketplace_microsoft.request_change(tenant, Actor(customer), subscription.id, plan_id=unsold.id)
    with pytest.raises(InvalidInput, match="not available for new orders"):
        marketplace_microsoft.request_change(tenant, Actor(customer), subscription.id, plan_id=microsoft.legacy.id)
    assert [o for o in microsoft.fake.operations.values() if o["action"] == "ChangePlan"] == []  # never asked

    marketplace_microsoft.request_change(tenant, Actor(customer), subscription.id, plan_id=microsoft.pro.id)
    with pytest.raises(Conflict, match="waiting for its confirmation"):
        marketplace_microsoft.request_change(tenant, Actor(customer), subscription.id, plan_id=microsoft.pro.id)
    other = factories.user(tenant)
    with pytest.raises(NotFound):
        marketplace_microsoft.request_unsubscribe(tenant, Actor(other), subscription.id)


def test_a_renew_that_comes_before_the_portal_s_period_end_follows_microsoft_s_term(
        client, auth, customer, microsoft, clock):  # noqa: F811
    external_id, subscription = delivered(client, auth, microsoft, customer, clock)
    clock.advance(seconds=(subscription.current_period_end - clock.now()).total_seconds() - 120)  # a little early

    assert microsoft.fake.send(external_id, "Renew")["delivered"] == 200

    term = next(s for s in microsoft.fake.state()["subscriptions"] if s["id"] == external_id)["term"]
    subscription = fresh(subscription)
    assert subscription.current_period_end.isoformat().startswith(term["endDate"][:16])
    assert count(Charge, Charge.subscription_id == subscription.id) == 0
    first_end = subscription.current_period_end
    assert microsoft.fake.send(external_id, "Renew")["delivered"] == 200  # the next term: renewed again, once
    assert fresh(subscription).current_period_end > first_end
