"""Cancel, resume and expiry (app.services.subscriptions) and server controls (app.services.servers)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from app.domain.catalogue import ChangeRule
from app.domain.subscriptions import BackorderStatus, ItemStatus, SubscriptionStatus
from app.extensions import db
from app.models import Backorder, Subscription, SubscriptionEvent, SubscriptionItem
from app.providers.base import ActionStatus, PowerState
from app.services import servers, subscriptions
from app.services.actors import Actor
from app.services.errors import Conflict, InvalidInput, NotFound, ServiceError
from app.services.servers import PowerCommand
from tests import factories
from tests.services.conftest import boot, complete_profile, count, items_of, place, place_queued

RELOAD = "This subscription changed in the meantime. Please reload the page and try again."


def reloaded(subscription: Subscription) -> Subscription:
    db.session.expire_all()
    fresh = db.session.get(Subscription, subscription.id)
    assert fresh is not None
    return fresh


def cancel(tenant, user, subscription, version=None, reason=""):  # type: ignore[no-untyped-def]
    return subscriptions.cancel(tenant=tenant, actor=Actor(user), subscription_id=subscription.id,
                                version=reloaded(subscription).version if version is None else version,
                                reason=reason)


def resume(tenant, user, subscription, version=None):  # type: ignore[no-untyped-def]
    return subscriptions.resume(tenant=tenant, actor=Actor(user), subscription_id=subscription.id,
                                version=reloaded(subscription).version if version is None else version)


def kinds(subscription: Subscription) -> list[str]:
    return list(db.session.scalars(select(SubscriptionEvent.kind).where(
        SubscriptionEvent.subscription_id == subscription.id).order_by(SubscriptionEvent.id)))


def snapshot(subscription: Subscription) -> tuple[object, ...]:
    fresh = reloaded(subscription)
    return (fresh.status, fresh.version, fresh.effective_at, fresh.canceled_at, count(SubscriptionEvent))


@pytest.fixture
def stranger(tenant):  # type: ignore[no-untyped-def]
    user = factories.user(tenant, email="robin@example.com", name="Robin Other")
    complete_profile(user)
    return user


@pytest.fixture
def item(active_subscription) -> SubscriptionItem:  # type: ignore[no-untyped-def]
    [only] = items_of(active_subscription)
    return only


# --- Cancel and resume ---------------------------------------------------------------------------


def test_cancel_at_period_end_makes_the_subscription_pending_cancel(tenant, customer, active_subscription, clock):
    version = reloaded(active_subscription).version

    result = cancel(tenant, customer, active_subscription, reason="Too expensive")

    fresh = reloaded(active_subscription)
    assert result.id == fresh.id
    assert fresh.status is SubscriptionStatus.PENDING_CANCEL
    assert fresh.effective_at == fresh.current_period_end
    assert fresh.canceled_at is None
    assert fresh.version == version + 1
    event = db.session.scalar(select(SubscriptionEvent).where(SubscriptionEvent.kind == "cancel"))
    assert (event.from_status, event.to_status) == ("active", "pending_cancel")
    assert event.actor_id == customer.id and event.impersonator_id is None
    assert event.reason == "Too expensive"
    assert event.data["effective_at"] == fresh.current_period_end.isoformat()
    assert event.created_at == clock.now()


def test_cancel_records_the_impersonating_support_user(tenant, customer, support, active_subscription):
    subscriptions.cancel(tenant=tenant, actor=Actor(customer, impersonator=support),
                         subscription_id=active_subscription.id, version=reloaded(active_subscription).version)
    event = db.session.scalar(select(SubscriptionEvent).where(SubscriptionEvent.kind == "cancel"))
    assert (event.actor_id, event.impersonator_id) == (customer.id, support.id)


def test_immediate_cancellation_rule_cancels_now(tenant, customer, profile, sandbox, clock):
    plan = factories.plan(tenant, cancellation_rule=ChangeRule.IMMEDIATE)
    subscription = place(tenant, customer, plan)
    boot(clock)

    cancel(tenant, customer, subscription)

    fresh = reloaded(subscription)
    assert fresh.status is SubscriptionStatus.CANCELED
    assert fresh.canceled_at == clock.now()
    assert fresh.effective_at == clock.now()
    history = kinds(subscription)
    # The end of life follows at once: the server is shut down (app/services/decommissioning.py).
    assert history[history.index("cancel"):][:2] == ["cancel", "decommissioning_started"]


def test_resume_before_effective_at_makes_it_active_again(tenant, customer, active_subscription, clock):
    cancel(tenant, customer, active_subscription)
    clock.set(reloaded(active_subscription).effective_at - timedelta(seconds=1))

    resume(tenant, customer, active_subscription)

    fresh = reloaded(active_subscription)
    assert fresh.status is SubscriptionStatus.ACTIVE
    assert fresh.effective_at is None
    assert kinds(active_subscription)[-2:] == ["cancel", "resume"]
    event = db.session.scalar(select(SubscriptionEvent).where(SubscriptionEvent.kind == "resume"))
    assert (event.from_status, event.to_status, event.actor_id) == ("pending_cancel", "active", customer.id)


def test_resume_at_or_after_effective_at_is_refused(tenant, customer, active_subscription, clock):
    cancel(tenant, customer, active_subscription)
    clock.set(reloaded(active_subscription).effective_at)  # the expiry job has not run yet
    before = snapshot(active_subscription)

    with pytest.raises(InvalidInput, match="already took effect"):
        resume(tenant, customer, active_subscription)

    assert snapshot(active_subscription) == before


def test_resume_of_an_active_subscription_is_refused(tenant, customer, active_subscription):
    before = snapshot(active_subscription)
    with pytest.raises(InvalidInput, match="nothing to resume"):
        resume(tenant, customer, active_subscription)
    assert snapshot(active_subscription) == before


def test_cancel_twice_is_refused(tenant, customer, active_subscription):
    cancel(tenant, customer, active_subscription)
    before = snapshot(active_subscription)
    with pytest.raises(InvalidInput, match="already set to cancel"):
        cancel(tenant, customer, active_subscription)
    assert snapshot(active_subscription) == before


def test_expiry_happens_at_effective_at_not_before_and_only_once(tenant, customer, active_subscription, clock):
    cancel(tenant, customer, active_subscription)
    effective_at = reloaded(active_subscription).effective_at

    clock.set(effective_at - timedelta(seconds=1))
    assert subscriptions.expire_due_cancellations() == 0
    assert reloaded(active_subscription).status is SubscriptionStatus.PENDING_CANCEL

    clock.set(effective_at)
    assert subscriptions.expire_due_cancellations() == 1
    fresh = reloaded(active_subscription)
    assert fresh.status is SubscriptionStatus.CANCELED
    assert fresh.canceled_at == effective_at
    after = snapshot(active_subscription)
    history = kinds(active_subscription)
    assert history.count("expired") == 1
    assert history[history.index("expired"):][:2] == ["expired", "decommissioning_started"]  # the end of life

    assert subscriptions.expire_due_cancellations() == 0
    clock.advance(days=3)
    assert subscriptions.expire_due_cancellations() == 0
    assert snapshot(active_subscription) == after


def test_a_late_expiry_run_dates_the_cancellation_at_effective_at(tenant, customer, active_subscription, clock):
    cancel(tenant, customer, active_subscription)
    effective_at = reloaded(active_subscription).effective_at
    clock.set(effective_at)
    clock.advance(days=2)
    assert subscriptions.expire_due_cancellations() == 1
    assert reloaded(active_subscription).canceled_at == effective_at


def test_expiry_leaves_active_and_other_subscriptions_alone(tenant, customer, active_subscription, clock):
    clock.advance(days=400)
    assert subscriptions.expire_due_cancellations() == 0
    assert reloaded(active_subscription).status is SubscriptionStatus.ACTIVE


@pytest.mark.parametrize("action", ["cancel", "resume"])
def test_canceled_is_final(tenant, customer, active_subscription, clock, action):
    cancel(tenant, customer, active_subscription)
    clock.set(reloaded(active_subscription).effective_at)
    subscriptions.expire_due_cancellations()
    before = snapshot(active_subscription)

    change = cancel if action == "cancel" else resume
    expected = ("already canceled" if action == "cancel"
                else "canceled and cannot be reactivated; place a new order instead")
    with pytest.raises(InvalidInput, match=expected):
        change(tenant, customer, active_subscription)

    assert snapshot(active_subscription) == before


@pytest.mark.parametrize("action", ["cancel", "resume"])
def test_a_stale_version_is_a_conflict_and_changes_nothing(tenant, customer, active_subscription, action):
    if action == "resume":
        cancel(tenant, customer, active_subscription)
    seen = reloaded(active_subscription).version
    # Another tab changed it after this one was rendered: the version moved on.
    fresh = reloaded(active_subscription)
    fresh.auto_renew = False
    db.session.commit()
    before = snapshot(active_subscription)

    change = cancel if action == "cancel" else resume
    with pytest.raises(Conflict) as refused:
        change(tenant, customer, active_subscription, version=seen)

    assert refused.value.message == RELOAD
    assert refused.value.status_code == 409
    assert snapshot(active_subscription) == before


def test_a_version_from_the_future_is_a_conflict(tenant, customer, active_subscription):
    before = snapshot(active_subscription)
    with pytest.raises(Conflict):
        cancel(tenant, customer, active_subscription, version=before[1] + 5)
    assert snapshot(active_subscription) == before


def test_another_customers_subscription_is_not_found(tenant, customer, stranger, active_subscription):
    before = snapshot(active_subscription)
    for change in (cancel, resume):
        with pytest.raises(NotFound, match="no such subscription"):
            change(tenant, stranger, active_subscription)
    assert snapshot(active_subscription) == before


def test_a_subscription_of_another_tenant_is_not_found(tenant, other_tenant, customer, active_subscription):
    before = snapshot(active_subscription)
    with pytest.raises(NotFound):
        cancel(other_tenant, customer, active_subscription)
    assert snapshot(active_subscription) == before


def test_cancel_of_a_backorder_cancels_it_and_closes_the_backorder(tenant, customer, profile, plan, sandbox, clock):
    sandbox.set_capacity("cx22", "nbg1", 0)
    subscription = place(tenant, customer, plan, auto_backorder=True)
    clock.advance(minutes=5)

    cancel(tenant, customer, subscription)

    fresh = reloaded(subscription)
    assert fresh.status is SubscriptionStatus.CANCELED
    assert fresh.canceled_at == clock.now()
    backorder = db.session.scalar(select(Backorder).where(Backorder.subscription_id == subscription.id))
    assert backorder.status is BackorderStatus.CANCELED
    assert backorder.closed_at == clock.now()
    assert sandbox.server_count() == 0


def test_cancel_while_setting_up_cancels_at_once(tenant, customer, profile, plan, sandbox):
    subscription = place_queued(tenant, customer, plan)
    cancel(tenant, customer, subscription)
    assert reloaded(subscription).status is SubscriptionStatus.CANCELED


# --- Server controls -----------------------------------------------------------------------------


def power(tenant, user, item, command, subscription_id=None):  # type: ignore[no-untyped-def]
    return servers.power(tenant=tenant, actor=Actor(user), subscription_id=subscription_id or item.subscription_id,
                         item_id=item.id, command=command)


@pytest.mark.parametrize(("command", "call"), [(PowerCommand.STOP, "power_off"), (PowerCommand.RESTART, "reboot"),
                                               (PowerCommand.START, "power_on")])
def test_power_commands_reach_the_cloud(tenant, customer, item, sandbox, command, call):
    before = len(sandbox.calls)

    action = power(tenant, customer, item, command)

    assert sandbox.calls[before:] == [(call, item.server_id)]
    assert action.command == call
    event = db.session.scalar(select(SubscriptionEvent).where(SubscriptionEvent.kind == f"server_{command.value}"))
    assert event.actor_id == customer.id and event.item_id == item.id
    assert event.data["action_id"] == action.id


def test_stop_then_start_changes_the_live_power_state(tenant, customer, item, sandbox, clock):
    power(tenant, customer, item, PowerCommand.STOP)
    clock.advance(seconds=5)
    assert sandbox.list_servers()[0].power is PowerState.OFF
    power(tenant, customer, item, PowerCommand.START)
    clock.advance(seconds=5)
    assert sandbox.list_servers()[0].power is PowerState.RUNNING


def test_a_second_power_action_while_one_runs_is_busy(tenant, customer, item, sandbox, clock):
    """RELIABILITY row 30: answered busy, not doubled."""
    first = power(tenant, customer, item, PowerCommand.RESTART)
    assert first.status is ActionStatus.RUNNING
    events_before = count(SubscriptionEvent)

    with pytest.raises(Conflict, match="Another action is still running"):
        power(tenant, customer, item, PowerCommand.STOP)

    assert count(SubscriptionEvent) == events_before
    assert sandbox.list_servers()[0].power is PowerState.REBOOTING
    clock.advance(seconds=5)
    assert sandbox.list_servers()[0].power is PowerState.RUNNING  # the stop was not applied
    power(tenant, customer, item, PowerCommand.STOP)  # once the first finished, the next one goes through


def test_power_on_another_customers_server_is_not_found_without_a_cloud_call(tenant, stranger, item, sandbox):
    """RELIABILITY row 6."""
    calls = list(sandbox.calls)
    for command in PowerCommand:
        with pytest.raises(NotFound, match="no such server"):
            power(tenant, stranger, item, command)
    with pytest.raises(NotFound):
        servers.live_info(tenant=tenant, viewer=stranger, subscription_id=item.subscription_id, item_id=item.id)
    assert sandbox.calls == calls


def test_an_item_id_under_someone_elses_subscription_id_is_not_found(tenant, customer, stranger, plan, item,
                                                                     sandbox, clock):
    theirs = place(tenant, stranger, plan)
    boot(clock)
    calls = list(sandbox.calls)
    with pytest.raises(NotFound):
        power(tenant, customer, item, PowerCommand.STOP, subscription_id=theirs.id)
    [their_item] = items_of(theirs)
    with pytest.raises(NotFound):
        power(tenant, customer, their_item, PowerCommand.STOP, subscription_id=item.subscription_id)
    assert sandbox.calls == calls


def test_power_from_another_tenant_is_not_found(tenant, other_tenant, customer, item, sandbox):
    calls = list(sandbox.calls)
    with pytest.raises(NotFound):
        power(other_tenant, customer, item, PowerCommand.STOP)
    assert sandbox.calls == calls


@pytest.mark.parametrize(("status", "word"), [(SubscriptionStatus.SUSPENDED, "suspended"),
                                              (SubscriptionStatus.CANCELED, "canceled")])
def test_power_is_off_while_suspended_or_canceled(tenant, customer, active_subscription, item, sandbox, status,
                                                  word):
    fresh = reloaded(active_subscription)
    fresh.status = status  # set directly: the payment and retention jobs are tested elsewhere
    db.session.commit()
    calls = list(sandbox.calls)

    for command in PowerCommand:
        with pytest.raises(InvalidInput, match=f"Server controls are off while the subscription is {word}"):
            power(tenant, customer, item, command)

    assert sandbox.calls == calls


def test_power_still_works_while_a_cancellation_is_pending(tenant, customer, active_subscription, item, sandbox):
    cancel(tenant, customer, active_subscription)
    power(tenant, customer, item, PowerCommand.STOP)
    assert sandbox.calls[-1] == ("power_off", item.server_id)


def test_power_before_the_server_is_ready_is_refused(tenant, customer, profile, plan, sandbox, clock):
    queued = place_queued(tenant, customer, plan)  # no server yet
    booting = place(tenant, customer, plan)  # server created, still booting
    for subscription in (queued, booting):
        [item] = items_of(subscription)
        calls = list(sandbox.calls)
        with pytest.raises(InvalidInput, match="not ready yet"):
            power(tenant, customer, item, PowerCommand.RESTART)
        assert sandbox.calls == calls
    assert items_of(booting)[0].status is ItemStatus.PROVISIONING


def test_live_info_returns_what_the_cloud_says(tenant, customer, item, sandbox, clock):
    info = servers.live_info(tenant=tenant, viewer=customer, subscription_id=item.subscription_id, item_id=item.id)

    assert sandbox.calls[-1] == ("server_info", item.server_id)
    assert info == sandbox.list_servers()[0]
    # The server is named at the cloud by its FQDN (`<name>.<tenant>.<base domain>`), unique across tenants.
    assert (info.server_id, info.name, info.ipv4) == (item.server_id, item.fqdn, item.ipv4)
    assert info.power is PowerState.RUNNING


def test_live_info_shows_a_running_action(tenant, customer, item, sandbox, clock):
    power(tenant, customer, item, PowerCommand.STOP)
    clock.advance(seconds=1)
    info = servers.live_info(tenant=tenant, viewer=customer, subscription_id=item.subscription_id, item_id=item.id)
    assert info.power is PowerState.STOPPING
    assert info.action is not None and info.action.status is ActionStatus.RUNNING and 0 < info.action.progress < 100


def test_live_info_before_the_server_exists_is_refused(tenant, customer, profile, plan, sandbox):
    subscription = place_queued(tenant, customer, plan)
    [item] = items_of(subscription)
    with pytest.raises(InvalidInput, match="not been created yet"):
        servers.live_info(tenant=tenant, viewer=customer, subscription_id=subscription.id, item_id=item.id)
    assert [call for call in sandbox.calls if call[0] == "server_info"] == []


def test_live_info_of_a_server_deleted_in_the_console(tenant, customer, item, sandbox):
    sandbox.delete_out_of_band(item.server_id)
    with pytest.raises(ServiceError, match="no longer knows this server"):
        servers.live_info(tenant=tenant, viewer=customer, subscription_id=item.subscription_id, item_id=item.id)
