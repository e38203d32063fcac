"""The lifecycle for every actor: who may act, suspend and reinstate (row 32), grace end, renewal, retention dates."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.domain.subscriptions import Action, ItemStatus, SubscriptionStatus
from app.extensions import db
from app.models import Charge, Subscription, SubscriptionEvent
from app.providers.base import PowerState
from app.services import lifecycle, servers, subscriptions
from app.services.actors import Actor
from app.services.errors import Conflict, Forbidden, InvalidInput, NotFound
from app.services.servers import PowerCommand
from tests import factories
from tests.helpers import run_scheduled_tasks
from tests.services.conftest import as_worker, count, items_of
from tests.services.test_lifecycle import reloaded

REASON = "Ticket 42: abuse report"


def events_of(subscription: Subscription, kind: str) -> list[SubscriptionEvent]:
    return list(db.session.scalars(select(SubscriptionEvent).where(
        SubscriptionEvent.subscription_id == subscription.id, SubscriptionEvent.kind == kind)
        .order_by(SubscriptionEvent.id)))


def settle(clock, seconds: float = 10) -> None:  # type: ignore[no-untyped-def]
    """Let the sandbox finish power actions and run whatever the queue put aside."""
    clock.advance(seconds=seconds)
    as_worker(run_scheduled_tasks)


def suspend(tenant, actor, subscription, **kwargs):  # type: ignore[no-untyped-def]
    return subscriptions.suspend(tenant=tenant, actor=actor, subscription_id=subscription.id,
                                 reason=kwargs.pop("reason", REASON), **kwargs)


def reinstate(tenant, actor, subscription, **kwargs):  # type: ignore[no-untyped-def]
    return subscriptions.reinstate(tenant=tenant, actor=actor, subscription_id=subscription.id,
                                   reason=kwargs.pop("reason", "Paid in full"), **kwargs)


# --- who may act ---------------------------------------------------------------------------------------------

def test_a_tenant_admin_cancels_a_customers_subscription_and_is_recorded(tenant, admin, active_subscription):
    subscriptions.cancel(tenant=tenant, actor=Actor(admin), subscription_id=active_subscription.id,
                         reason="The customer asked by phone")
    [event] = events_of(active_subscription, "cancel")
    assert event.actor_id == admin.id and event.reason == "The customer asked by phone"
    assert reloaded(active_subscription).status is SubscriptionStatus.PENDING_CANCEL


def test_the_portal_itself_can_act_and_is_named_in_the_history(tenant, active_subscription):
    subscriptions.suspend(tenant=tenant, actor=Actor.system("billing"), subscription_id=active_subscription.id,
                          reason="Payment failed")
    [event] = events_of(active_subscription, "suspend")
    assert event.actor_id is None and event.data["by"] == "billing"


def test_support_as_themselves_cannot_change_a_subscription(tenant, support, active_subscription):
    with pytest.raises(Forbidden):
        subscriptions.cancel(tenant=tenant, actor=Actor(support), subscription_id=active_subscription.id)
    assert reloaded(active_subscription).status is SubscriptionStatus.ACTIVE


def test_customers_cannot_suspend_or_extend_retention_even_their_own(tenant, customer, active_subscription):
    with pytest.raises(Forbidden):
        suspend(tenant, Actor(customer), active_subscription)
    with pytest.raises(Forbidden):
        subscriptions.extend_retention(tenant=tenant, actor=Actor(customer), subscription_id=active_subscription.id,
                                       until=active_subscription.current_period_end, reason="keep it please")


def test_another_customers_subscription_does_not_exist_for_a_customer(tenant, active_subscription):
    stranger = factories.user(tenant, email="stranger@example.com")
    with pytest.raises(NotFound):
        subscriptions.cancel(tenant=tenant, actor=Actor(stranger), subscription_id=active_subscription.id)


def test_an_admin_of_another_tenant_finds_nothing(other_tenant, active_subscription):
    from app.domain.accounts import Role

    foreign_admin = factories.user(other_tenant, email="boss@other.test", role=Role.TENANT_ADMIN)
    with pytest.raises(NotFound):
        suspend(other_tenant, Actor(foreign_admin), active_subscription)


# --- suspend and reinstate (row 32) ----------------------------------------------------------------------------

def test_suspend_then_reinstate_on_day_29_keeps_the_server_and_its_data(tenant, admin, customer, active_subscription,
                                                                       sandbox, clock):
    [item] = items_of(active_subscription)
    server_id, address = item.server_id, item.ipv4

    suspend(tenant, Actor(admin), active_subscription)
    settle(clock)
    fresh = reloaded(active_subscription)
    assert fresh.status is SubscriptionStatus.SUSPENDED
    assert fresh.effective_at == fresh.suspended_at + timedelta(days=30)
    assert sandbox.server_info(server_id).power is PowerState.OFF
    with pytest.raises(InvalidInput, match="controls are off"):
        servers.power(tenant=tenant, actor=Actor(customer), subscription_id=fresh.id, item_id=item.id,
                      command=PowerCommand.START)

    clock.advance(days=29)
    reinstate(tenant, Actor(admin), active_subscription)
    settle(clock)
    fresh = reloaded(active_subscription)
    [item] = items_of(fresh)
    assert fresh.status is SubscriptionStatus.ACTIVE and fresh.suspended_at is None and fresh.effective_at is None
    assert (item.server_id, item.ipv4, item.status) == (server_id, address, ItemStatus.ACTIVE)
    assert sandbox.server_info(server_id).power is PowerState.RUNNING
    assert sandbox.server_count() == 1
    assert [e.kind for e in events_of(fresh, "server_powered_off") + events_of(fresh, "server_powered_on")] == [
        "server_powered_off", "server_powered_on"]


def test_a_suspension_needs_a_reason(tenant, admin, active_subscription):
    with pytest.raises(InvalidInput, match="reason"):
        suspend(tenant, Actor(admin), active_subscription, reason="  ")
    assert reloaded(active_subscription).status is SubscriptionStatus.ACTIVE


def test_reinstating_after_the_grace_period_is_refused(tenant, admin, active_subscription, clock):
    suspend(tenant, Actor(admin), active_subscription)
    clock.advance(days=31)
    with pytest.raises(InvalidInput, match="grace period ended"):
        reinstate(tenant, Actor(admin), active_subscription)


def test_the_end_of_grace_cancels_and_the_end_of_life_follows(tenant, admin, active_subscription, clock):
    suspend(tenant, Actor(admin), active_subscription)
    grace_end = reloaded(active_subscription).effective_at
    clock.advance(days=29)
    assert as_worker(subscriptions.end_grace_periods) == 0
    clock.advance(days=2)
    assert as_worker(subscriptions.end_grace_periods) == 1
    assert as_worker(subscriptions.end_grace_periods) == 0
    fresh = reloaded(active_subscription)
    assert fresh.status is SubscriptionStatus.CANCELED
    assert fresh.canceled_at == grace_end  # retention counts from the end of grace, however late the job ran
    assert fresh.servers_delete_at == fresh.canceled_at + timedelta(days=tenant.retention_days)
    assert [item.status for item in items_of(fresh)] in ([ItemStatus.DECOMMISSIONING], [ItemStatus.DECOMMISSIONED])
    [event] = events_of(fresh, "grace_ended")
    assert event.data["by"] == "grace-end"


def test_a_stale_version_changes_nothing(tenant, admin, active_subscription):
    version = reloaded(active_subscription).version
    suspend(tenant, Actor(admin), active_subscription, version=version)
    with pytest.raises(Conflict):
        reinstate(tenant, Actor(admin), active_subscription, version=version)
    assert reloaded(active_subscription).status is SubscriptionStatus.SUSPENDED


# --- renewal ---------------------------------------------------------------------------------------------------

def test_renewal_moves_to_the_next_period_with_one_charge_however_often_it_runs(active_subscription, clock):
    first_end = reloaded(active_subscription).current_period_end
    clock.advance(days=31)
    assert as_worker(subscriptions.renew_due) == 1
    assert as_worker(subscriptions.renew_due) == 0
    fresh = reloaded(active_subscription)
    assert fresh.current_period_start == first_end and fresh.current_period_end > clock.now()
    charges = db.session.scalars(select(Charge).where(Charge.subscription_id == fresh.id)
                                 .order_by(Charge.period_start)).all()
    assert [c.kind.value for c in charges] == ["first_period", "renewal"]
    assert charges[1].period_start == first_end and charges[1].amount_minor == fresh.price_minor


def test_a_renewal_job_that_was_down_catches_up_one_period_at_a_time(active_subscription, clock):
    clock.advance(days=95)
    assert as_worker(subscriptions.renew_due) == 3
    assert count(Charge, Charge.subscription_id == active_subscription.id) == 4
    assert reloaded(active_subscription).current_period_end > clock.now()


def test_the_same_period_is_never_charged_twice_even_if_applied_twice(tenant, active_subscription, clock):
    clock.advance(days=31)
    subscription = lifecycle.lock(tenant, active_subscription.id)
    lifecycle.apply(subscription, Action.RENEW, actor=Actor.system("renewal"))
    subscription.current_period_end = subscription.current_period_start  # as if the renewal were applied again
    with pytest.raises(IntegrityError):
        lifecycle.apply(subscription, Action.RENEW, actor=Actor.system("renewal"))
        db.session.flush()
    db.session.rollback()


def test_a_pending_cancellation_ends_at_the_period_end_instead_of_renewing(tenant, customer, active_subscription,
                                                                           clock):
    subscriptions.cancel(tenant=tenant, actor=Actor(customer), subscription_id=active_subscription.id)
    clock.advance(days=31)
    assert as_worker(subscriptions.renew_due) == 0
    assert as_worker(subscriptions.expire_due_cancellations) == 1
    fresh = reloaded(active_subscription)
    assert fresh.status is SubscriptionStatus.CANCELED
    assert count(Charge, Charge.subscription_id == fresh.id) == 1


def test_a_subscription_that_does_not_renew_by_itself_ends(active_subscription, clock):
    subscription = reloaded(active_subscription)
    subscription.auto_renew = False
    db.session.commit()
    clock.advance(days=31)
    assert as_worker(subscriptions.renew_due) == 1
    assert reloaded(active_subscription).status is SubscriptionStatus.CANCELED


def test_free_plans_renew_without_charges(tenant, customer, profile, sandbox, clock):
    from tests.services.conftest import boot, place

    free = place(tenant, customer, factories.plan(tenant, price_minor=0, name="Free"))
    boot(clock)
    clock.advance(days=31)
    assert as_worker(subscriptions.renew_due) == 1
    assert count(Charge, Charge.subscription_id == free.id) == 0


# --- retention -------------------------------------------------------------------------------------------------

def test_an_admin_keeps_a_canceled_subscriptions_servers_longer_with_a_reason(tenant, admin, active_subscription,
                                                                              clock):
    subscriptions.cancel(tenant=tenant, actor=Actor(admin), subscription_id=active_subscription.id)
    clock.advance(days=31)
    as_worker(subscriptions.expire_due_cancellations)
    planned = reloaded(active_subscription).servers_delete_at
    later = planned + timedelta(days=14)

    with pytest.raises(InvalidInput, match="after the current deletion date"):
        subscriptions.extend_retention(tenant=tenant, actor=Actor(admin), subscription_id=active_subscription.id,
                                       until=planned - timedelta(days=1), reason="Legal hold")
    subscriptions.extend_retention(tenant=tenant, actor=Actor(admin), subscription_id=active_subscription.id,
                                   until=later, reason="Legal hold")
    assert reloaded(active_subscription).servers_delete_at == later
    [event] = events_of(active_subscription, "retention_extended")
    assert event.actor_id == admin.id and event.reason == "Legal hold"


def test_only_canceled_subscriptions_can_be_kept_longer(tenant, admin, active_subscription, clock):
    with pytest.raises(InvalidInput, match="Only a canceled subscription"):
        subscriptions.extend_retention(tenant=tenant, actor=Actor(admin), subscription_id=active_subscription.id,
                                       until=clock.now() + timedelta(days=60), reason="Legal hold")


def test_an_immediate_cancel_starts_retention_now(tenant, customer, active_subscription, clock):
    from app.domain.catalogue import ChangeRule

    plan = active_subscription.plan
    plan.cancellation_rule = ChangeRule.IMMEDIATE
    db.session.commit()
    subscriptions.cancel(tenant=tenant, actor=Actor(customer), subscription_id=active_subscription.id)
    fresh = reloaded(active_subscription)
    assert fresh.status is SubscriptionStatus.CANCELED and fresh.canceled_at == clock.now()
    assert fresh.servers_delete_at == clock.now() + timedelta(days=tenant.retention_days)
    assert [item.status for item in items_of(fresh)] in ([ItemStatus.DECOMMISSIONING], [ItemStatus.DECOMMISSIONED])


def test_canceling_an_order_never_started_ends_its_items_at_once(tenant, customer, profile, plan, clock):
    from tests.services.conftest import place_queued

    subscription = place_queued(tenant, customer, plan)
    subscriptions.cancel(tenant=tenant, actor=Actor(customer), subscription_id=subscription.id)
    [item] = items_of(subscription)
    assert item.status is ItemStatus.DECOMMISSIONED and item.server_id is None
    assert [e.kind for e in events_of(subscription, "server_not_created")] == ["server_not_created"]


@pytest.mark.parametrize("days", [-1, 0, 3661])
def test_a_grace_period_ends_in_the_future_and_within_ten_years(tenant, admin, active_subscription, clock, days):
    with pytest.raises(InvalidInput, match="grace period must end in the future"):
        suspend(tenant, Actor(admin), active_subscription, grace_ends_at=clock.now() + timedelta(days=days))
    assert reloaded(active_subscription).status is SubscriptionStatus.ACTIVE


def test_servers_are_kept_longer_for_ten_years_at_most(tenant, admin, active_subscription, clock):
    from app.domain.catalogue import ChangeRule

    active_subscription.plan.cancellation_rule = ChangeRule.IMMEDIATE
    db.session.commit()
    subscriptions.cancel(tenant=tenant, actor=Actor(admin), subscription_id=active_subscription.id)
    with pytest.raises(InvalidInput, match="within ten years"):
        subscriptions.extend_retention(tenant=tenant, actor=Actor(admin), subscription_id=active_subscription.id,
                                       until=clock.now() + timedelta(days=3661), reason="Legal hold")
    stale = reloaded(active_subscription).version - 1
    with pytest.raises(Conflict):
        subscriptions.extend_retention(tenant=tenant, actor=Actor(admin), subscription_id=active_subscription.id,
                                       until=clock.now() + timedelta(days=60), reason="Legal hold", version=stale)
