"""The end of life at the cloud (app.services.decommissioning), on the in-process sandbox.

A canceled subscription's delivered server is shut down and kept, off, until its retention ends, then deleted
and the subscription purged, once. A server never delivered is deleted at once. A worker that dies between
any two steps leaves nothing behind once the sweeper, the reconciler and the retention job have run.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from flask import current_app
from sqlalchemy import select

from app.domain.catalogue import ChangeRule, Provider
from app.domain.retry import MAX_ATTEMPTS
from app.domain.subscriptions import Action, ItemStatus, SubscriptionStatus
from app.extensions import db
from app.models import Charge, Subscription, SubscriptionEvent, SubscriptionItem
from app.providers.base import ErrorKind, PowerState
from app.sandbox.cloud import SandboxCloud
from app.services import decommissioning, lifecycle, provisioning, reconcile
from app.services.actors import Actor
from app.tasks.end_of_life import decommission_item
from app.tasks.jobs import provision_item
from tests import factories
from tests.helpers import run_scheduled_tasks
from tests.services.conftest import (
    BOOT_SECONDS,
    as_worker,
    boot,
    count,
    items_of,
    place,
    place_queued,
    step,
    worker_down,
)

ACTION_SECONDS = 3.0  # the sandbox's power actions


class WorkerDied(Exception):
    """The worker process ended here: whatever it had not committed is lost."""


@pytest.fixture
def plan(tenant):  # type: ignore[no-untyped-def]
    """A monthly Hetzner plan whose cancellations take effect at once."""
    return factories.plan(tenant, cancellation_rule=ChangeRule.IMMEDIATE)


@pytest.fixture
def live(tenant, customer, profile, plan, sandbox, clock) -> Subscription:  # type: ignore[no-untyped-def]
    """An active subscription of the immediate-cancel plan with one running server."""
    subscription = place(tenant, customer, plan)
    boot(clock)
    assert reloaded(subscription).status is SubscriptionStatus.ACTIVE
    return subscription


def reloaded(subscription: Subscription) -> Subscription:
    db.session.expire_all()
    fresh = db.session.get(Subscription, subscription.id)
    assert fresh is not None
    return fresh


def only_item(subscription: Subscription) -> SubscriptionItem:
    db.session.expire_all()
    [item] = items_of(subscription)
    return item


def cancel(tenant, customer, subscription, reason: str = "") -> None:  # type: ignore[no-untyped-def]
    lifecycle.change(tenant=tenant, actor=Actor(customer), subscription_id=subscription.id, action=Action.CANCEL,
                     reason=reason)
    db.session.expire_all()


def kinds(subscription: Subscription) -> list[str]:
    return list(db.session.scalars(select(SubscriptionEvent.kind).where(
        SubscriptionEvent.subscription_id == subscription.id).order_by(SubscriptionEvent.id)))


def advance(item_id: int, attempt: int = 1) -> decommissioning.Next | None:
    result = decommissioning.advance(item_id, attempt)
    db.session.expire_all()
    return result


def run_worker(clock, seconds: float = ACTION_SECONDS + 1) -> None:  # type: ignore[no-untyped-def]
    """Let `seconds` pass and run what the worker put aside meanwhile."""
    clock.advance(seconds=seconds)
    as_worker(run_scheduled_tasks)


def sweep() -> list[int]:
    """The decommissioning sweeper: stalled items queued again (run inline)."""
    stalled = decommissioning.stalled()
    for item_id in stalled:
        as_worker(decommission_item, item_id)
    return stalled


def reconcile_now(tenant) -> reconcile.Report:  # type: ignore[no-untyped-def]
    report = reconcile.reconcile(tenant.id, Provider.HETZNER)
    db.session.expire_all()
    return report


def dies_after(monkeypatch: pytest.MonkeyPatch, sandbox: SandboxCloud, operation: str) -> None:
    """The next call of `operation` reaches the cloud, then the worker dies before it can record the answer."""
    original = getattr(sandbox, operation)

    def then_die(*args: Any) -> Any:
        setattr(sandbox, operation, original)  # once
        original(*args)
        raise WorkerDied(operation)

    monkeypatch.setattr(sandbox, operation, then_die)


def elsewhere(job: Callable[..., Any], *args: Any) -> Any:
    """Run `job` as another process would, in the middle of this one: its own app context and session."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]

    def run() -> Any:
        with app.app_context():
            return job(*args)

    return contextvars.Context().run(run)


# --- A delivered server: shut down, kept off, deleted after retention ------------------------------------------


def test_cancel_shuts_the_server_down_keeps_it_off_then_deletes_it_and_purges_once(tenant, customer, live, sandbox,
                                                                                    clock):
    item = only_item(live)
    server_id = item.server_id

    cancel(tenant, customer, live)

    item = only_item(live)
    assert item.status is ItemStatus.DECOMMISSIONING and item.shutdown_at == clock.now()
    assert ("shutdown", server_id) in sandbox.calls
    assert sandbox.server_info(server_id).power is PowerState.STOPPING

    run_worker(clock)  # the shutdown completes; the next poll sees the server off

    item = only_item(live)
    assert item.powered_off_at is not None and item.status is ItemStatus.DECOMMISSIONING
    assert sandbox.server_info(server_id).power is PowerState.OFF
    assert [k for k in kinds(live) if k.startswith("server_")][-2:] == ["server_shutdown", "server_off"]
    assert decommissioning.stalled() == []

    subscription = reloaded(live)
    assert subscription.servers_delete_at == subscription.canceled_at + timedelta(days=tenant.retention_days)
    clock.set(subscription.servers_delete_at - timedelta(seconds=1))
    assert decommissioning.delete_due() == 0
    assert reconcile_now(tenant).deleted == []  # kept, off, through the retention period
    assert sandbox.server_count() == 1

    clock.set(subscription.servers_delete_at)
    assert decommissioning.delete_due() == 1

    assert sandbox.managed_servers("portal-tenant", tenant.slug) == []
    item = only_item(live)
    assert item.status is ItemStatus.DECOMMISSIONED and item.deleted_at == clock.now()
    subscription = reloaded(live)
    assert subscription.purged_at == clock.now()
    calls = list(sandbox.calls)
    events = count(SubscriptionEvent)

    clock.advance(days=30)
    assert decommissioning.delete_due() == 0  # RELIABILITY row 33: a rerun does nothing more
    assert decommissioning.delete_due() == 0
    assert sandbox.calls == calls and count(SubscriptionEvent) == events
    assert kinds(live).count("purged") == 1 and kinds(live).count("server_deleted") == 1


def test_the_purge_forgets_personal_and_provisioning_data_but_keeps_history_and_charges(tenant, customer, live,
                                                                                        sandbox, clock):
    cancel(tenant, customer, live, reason="Moving to Mars; call me on +41 79 000 00 00")
    run_worker(clock)
    charges = count(Charge, Charge.subscription_id == live.id)
    history = kinds(live)
    clock.set(reloaded(live).servers_delete_at)

    assert decommissioning.delete_due() == 1

    subscription = reloaded(live)
    item = only_item(live)
    assert (item.ipv4, item.ipv6, item.fqdn, item.hostname, item.error_message, item.config) == (
        None, None, None, None, None, {})
    assert subscription.requested_config == {} and subscription.idempotency_key is None
    assert kinds(live)[:len(history)] == history  # every event is kept, with its kind
    canceled = db.session.scalar(select(SubscriptionEvent).where(SubscriptionEvent.subscription_id == live.id,
                                                                 SubscriptionEvent.kind == "cancel"))
    assert canceled.reason == "" and canceled.actor_id == customer.id
    [purged] = db.session.scalars(select(SubscriptionEvent).where(SubscriptionEvent.kind == "purged")).all()
    assert purged.actor_id is None and purged.data["by"] == "retention"
    assert count(Charge, Charge.subscription_id == live.id) == charges > 0  # legal records


def test_a_guest_that_ignores_the_shutdown_is_powered_off_after_the_timeout(tenant, customer, live, sandbox, clock):
    sandbox.ignore_shutdown()
    item = only_item(live)
    with worker_down():
        cancel(tenant, customer, live)
    assert advance(item.id) == decommissioning.Next(decommissioning.POLL_SECONDS, 1)  # shutdown sent

    clock.advance(seconds=decommissioning.SHUTDOWN_TIMEOUT.total_seconds() - 1)
    assert advance(item.id) is not None
    assert [call[0] for call in sandbox.calls].count("power_off") == 0  # still giving the guest time

    clock.advance(seconds=1)
    assert advance(item.id) is not None  # the power is cut
    assert sandbox.calls[-1] == ("power_off", item.server_id)
    clock.advance(seconds=ACTION_SECONDS)
    assert advance(item.id) is None

    item = only_item(live)
    assert item.powered_off_at == clock.now()
    assert "server_forced_off" in kinds(live)
    assert sandbox.server_info(item.server_id).power is PowerState.OFF


def test_a_server_that_never_goes_off_is_shut_down_again_later_not_polled_forever(tenant, customer, live, sandbox,
                                                                                   clock):
    sandbox.ignore_shutdown()
    item = only_item(live)
    with worker_down():
        cancel(tenant, customer, live)
    advance(item.id)  # the shutdown is sent; then the chain is lost and nothing cuts the power

    clock.advance(seconds=decommissioning.GIVE_UP_AFTER.total_seconds() + 1)
    assert advance(item.id) is None
    assert only_item(live).shutdown_at is None  # to start over
    assert decommissioning.stalled() == []
    clock.advance(seconds=decommissioning.STALLED_AFTER.total_seconds() + 1)
    assert sweep() == [item.id]
    assert only_item(live).shutdown_at == clock.now()
    assert [call[0] for call in sandbox.calls].count("shutdown") == 2


def test_a_server_that_was_off_already_is_not_shut_down_again(tenant, customer, live, sandbox, clock):
    item = only_item(live)
    sandbox.power_off(item.server_id)
    clock.advance(seconds=ACTION_SECONDS)

    cancel(tenant, customer, live)

    assert "shutdown" not in [call[0] for call in sandbox.calls]
    assert only_item(live).powered_off_at == clock.now()


def test_a_busy_server_is_retried_with_backoff_then_left_for_the_sweeper(tenant, customer, live, sandbox, clock):
    item = only_item(live)
    with worker_down():
        cancel(tenant, customer, live)
    sandbox.fail_next("info", ErrorKind.BUSY, times=MAX_ATTEMPTS)

    attempt, steps = 1, 0
    while (next_step := advance(item.id, attempt)) is not None:
        assert next_step.attempt == attempt + 1 and next_step.delay > 0
        attempt, steps = next_step.attempt, steps + 1
    assert attempt == MAX_ATTEMPTS and steps == MAX_ATTEMPTS - 1
    assert only_item(live).shutdown_at is None

    clock.advance(seconds=decommissioning.STALLED_AFTER.total_seconds() + 1)
    assert sweep() == [item.id]  # the cloud answers again
    run_worker(clock)
    assert only_item(live).powered_off_at is not None


def test_a_server_gone_at_the_cloud_ends_the_item(tenant, customer, live, sandbox, clock):
    item = only_item(live)
    sandbox.delete_out_of_band(item.server_id)

    cancel(tenant, customer, live)

    item = only_item(live)
    assert item.status is ItemStatus.DECOMMISSIONED and item.deleted_at == clock.now()
    assert "server_gone" in kinds(live)


def test_advance_leaves_other_items_alone(tenant, customer, live, sandbox, clock):
    item = only_item(live)
    calls = list(sandbox.calls)
    assert advance(item.id) is None  # active: not decommissioning
    assert advance(123456) is None
    assert sandbox.calls == calls


# --- A server never delivered: deleted at once -----------------------------------------------------------------


def test_cancel_while_the_server_boots_deletes_it_at_once(tenant, customer, profile, plan, sandbox, clock):
    subscription = place(tenant, customer, plan)  # the server is made and boots
    assert sandbox.server_count() == 1

    cancel(tenant, customer, subscription)

    assert sandbox.server_count() == 0
    item = only_item(subscription)
    assert item.status is ItemStatus.DECOMMISSIONED and item.ready_at is None
    boot(clock)  # the provisioning poll that was put aside finds the order canceled
    assert sandbox.server_count() == 0
    assert count(Charge) == 0
    assert reloaded(subscription).status is SubscriptionStatus.CANCELED


@pytest.mark.parametrize("cancel_when", ["before the cloud made it", "after the cloud made it"])
def test_cancel_while_the_create_is_in_flight_leaves_no_server(tenant, customer, profile, plan, sandbox, clock,
                                                               monkeypatch, cancel_when):
    subscription = place_queued(tenant, customer, plan)
    item = only_item(subscription)
    create = sandbox.create_server

    def create_racing_a_cancel(spec):  # type: ignore[no-untyped-def]
        if cancel_when == "before the cloud made it":
            elsewhere(cancel, tenant, customer, subscription)
        made = create(spec)
        if cancel_when == "after the cloud made it":
            elsewhere(cancel, tenant, customer, subscription)
        return made

    monkeypatch.setattr(sandbox, "create_server", create_racing_a_cancel)
    assert step(item.id) is None

    assert sandbox.server_count() == 0
    item = only_item(subscription)
    assert item.status is ItemStatus.DECOMMISSIONED and item.server_id is not None  # recorded, then deleted
    assert ("delete_server", item.server_id) in sandbox.calls
    assert "server_ready" not in kinds(subscription) and item.ready_at is None
    assert reloaded(subscription).status is SubscriptionStatus.CANCELED and count(Charge) == 0
    run_worker(clock, 60)
    assert sandbox.server_count() == 0


@pytest.mark.parametrize("then_canceled", [False, True])
def test_a_second_worker_finding_the_server_delivered_by_the_first_leaves_it_alone(tenant, customer, profile, plan,
                                                                                    sandbox, clock, monkeypatch,
                                                                                    then_canceled):
    subscription = place_queued(tenant, customer, plan)
    item = only_item(subscription)
    create = sandbox.create_server

    def create_while_another_worker_delivers(spec):  # type: ignore[no-untyped-def]
        sandbox.create_server = create  # once
        made = create(spec)
        clock.advance(seconds=BOOT_SECONDS + 1)
        elsewhere(lambda: [provisioning.advance(item.id, dns_base_domain="d.test") for _ in range(2)])
        if then_canceled:
            elsewhere(cancel, tenant, customer, subscription)
        return made

    monkeypatch.setattr(sandbox, "create_server", create_while_another_worker_delivers)
    assert step(item.id) is None

    assert sandbox.server_count() == 1 and ("delete_server", item.server_id) not in sandbox.calls
    item = only_item(subscription)
    assert item.ready_at is not None and count(Charge) == 1
    if then_canceled:  # shut down and kept for the retention period, not deleted at once
        assert item.status is ItemStatus.DECOMMISSIONING and item.shutdown_at is not None
    else:
        assert item.status is ItemStatus.ACTIVE


def test_an_order_canceled_before_its_worker_ran_makes_no_server(tenant, customer, profile, plan, sandbox, clock):
    with worker_down() as queue:
        subscription = place(tenant, customer, plan)
        cancel(tenant, customer, subscription)
        assert queue.queue_size() == 2  # the provisioning, still queued, and the email about the cancellation
    item = only_item(subscription)
    assert item.status is ItemStatus.DECOMMISSIONED

    as_worker(provision_item, item.id)

    assert [call[0] for call in sandbox.calls].count("create_server") == 0
    assert sandbox.server_count() == 0


# --- A worker that dies between any two steps -------------------------------------------------------------------


def after_retention(tenant, live, clock) -> None:  # type: ignore[no-untyped-def]
    """The periodic jobs, until the retention has passed: sweeper, reconciler, retention."""
    clock.advance(seconds=decommissioning.STALLED_AFTER.total_seconds() + 1)
    sweep()
    run_worker(clock)
    reconcile_now(tenant)
    clock.set(reloaded(live).servers_delete_at + timedelta(minutes=1))
    reconcile_now(tenant)
    decommissioning.delete_due()


@pytest.mark.parametrize("operation", ["shutdown", "server_info", "power_off"])
def test_a_worker_dying_during_the_shutdown_leaves_the_server_off_then_gone(tenant, customer, live, sandbox, clock,
                                                                           monkeypatch, operation):
    if operation == "power_off":
        sandbox.ignore_shutdown()
    item = only_item(live)
    with worker_down():
        cancel(tenant, customer, live)
    if operation == "power_off":
        advance(item.id)  # the shutdown is sent, and ignored
        clock.advance(seconds=decommissioning.SHUTDOWN_TIMEOUT.total_seconds())
    dies_after(monkeypatch, sandbox, operation)
    with pytest.raises(WorkerDied):
        decommissioning.advance(item.id)
    db.session.rollback()

    clock.advance(seconds=decommissioning.STALLED_AFTER.total_seconds() + 1)
    assert sweep() == [item.id]
    run_worker(clock)
    item = only_item(live)
    assert item.powered_off_at is not None
    assert sandbox.server_info(item.server_id).power is PowerState.OFF
    assert reconcile_now(tenant).deleted == []  # off, within retention: kept

    after_retention(tenant, live, clock)
    assert sandbox.server_count() == 0
    assert reloaded(live).purged_at is not None


def test_a_worker_dying_after_deleting_an_undelivered_server_leaves_nothing(tenant, customer, profile, plan, sandbox,
                                                                           clock, monkeypatch):
    subscription = place(tenant, customer, plan)  # booting, not delivered
    item = only_item(subscription)
    with worker_down():
        cancel(tenant, customer, subscription)
    dies_after(monkeypatch, sandbox, "delete_server")
    with pytest.raises(WorkerDied):
        decommissioning.advance(item.id)
    db.session.rollback()
    assert sandbox.server_count() == 0 and only_item(subscription).status is ItemStatus.DECOMMISSIONING

    clock.advance(seconds=decommissioning.STALLED_AFTER.total_seconds() + 1)
    assert sweep() == [item.id]

    assert only_item(subscription).status is ItemStatus.DECOMMISSIONED
    assert decommissioning.stalled() == []


def test_a_decommissioning_job_that_was_lost_is_found_by_the_sweeper(tenant, customer, live, sandbox, clock):
    with worker_down():  # the job is queued, and the queue is lost
        cancel(tenant, customer, live)
    item = only_item(live)
    assert decommissioning.stalled() == []  # not yet: it may still be on its way
    clock.advance(seconds=decommissioning.STALLED_AFTER.total_seconds() + 1)

    assert sweep() == [item.id]
    run_worker(clock)

    assert only_item(live).powered_off_at is not None
    assert decommissioning.stalled() == []


def test_a_server_made_by_a_worker_that_died_before_recording_it_is_deleted_on_cancel(tenant, customer, profile, plan,
                                                                                      sandbox, clock, monkeypatch):
    subscription = place_queued(tenant, customer, plan)
    item = only_item(subscription)
    dies_after(monkeypatch, sandbox, "create_server")
    with pytest.raises(WorkerDied):
        step(item.id)
    db.session.rollback()
    assert sandbox.server_count() == 1 and only_item(subscription).server_id is None

    cancel(tenant, customer, subscription)

    assert sandbox.server_count() == 0  # found by its labels
    assert only_item(subscription).status is ItemStatus.DECOMMISSIONED


def test_the_reconciler_deletes_an_undelivered_server_of_a_canceled_order_at_once(tenant, customer, profile, plan,
                                                                                  sandbox, clock, monkeypatch):
    subscription = place_queued(tenant, customer, plan)
    item = only_item(subscription)
    dies_after(monkeypatch, sandbox, "create_server")
    with pytest.raises(WorkerDied):
        step(item.id)
    db.session.rollback()
    with worker_down():  # and the decommissioning job is lost too
        cancel(tenant, customer, subscription)

    report = reconcile_now(tenant)  # no grace: the item is known to be canceled

    assert len(report.deleted) == 1 and report.adopted == []
    assert sandbox.server_count() == 0
    assert only_item(subscription).server_id is None  # never adopted into life


def test_the_reconciler_deletes_a_late_server_of_a_decommissioned_item(tenant, customer, profile, plan, sandbox,
                                                                       clock):
    subscription = place_queued(tenant, customer, plan)
    item = only_item(subscription)
    cancel(tenant, customer, subscription)
    assert only_item(subscription).status is ItemStatus.DECOMMISSIONED
    from app.services.provisioning import server_spec

    sandbox.create_server(server_spec(item, tenant, "cloud.example.test"))  # a create that arrived late

    report = reconcile_now(tenant)

    assert len(report.deleted) == 1 and sandbox.server_count() == 0


def test_the_reconciler_deletes_servers_whose_retention_has_passed(tenant, customer, live, sandbox, clock):
    cancel(tenant, customer, live)
    run_worker(clock)
    assert reconcile_now(tenant).deleted == []
    clock.set(reloaded(live).servers_delete_at)

    report = reconcile_now(tenant)

    assert report.deleted == [only_item(live).server_id] and sandbox.server_count() == 0
    assert decommissioning.delete_due() == 1  # the purge follows; the server is gone already
    assert only_item(live).status is ItemStatus.DECOMMISSIONED


# --- Retention: exactly once, whatever fails ---------------------------------------------------------------------


def test_a_cloud_error_during_retention_leaves_the_subscription_for_the_next_run(tenant, customer, live, sandbox,
                                                                                 clock):
    cancel(tenant, customer, live)
    run_worker(clock)
    clock.set(reloaded(live).servers_delete_at)
    sandbox.fail_next("delete", ErrorKind.TRANSIENT)

    assert decommissioning.delete_due() == 0

    assert reloaded(live).purged_at is None and sandbox.server_count() == 1
    assert only_item(live).status is ItemStatus.DECOMMISSIONING
    assert decommissioning.delete_due() == 1
    assert sandbox.server_count() == 0 and kinds(live).count("purged") == 1


def test_a_retention_run_that_died_after_the_delete_is_finished_by_the_next(tenant, customer, live, sandbox, clock,
                                                                            monkeypatch):
    cancel(tenant, customer, live)
    run_worker(clock)
    clock.set(reloaded(live).servers_delete_at)
    dies_after(monkeypatch, sandbox, "delete_server")
    with pytest.raises(WorkerDied):
        decommissioning.delete_due()
    db.session.rollback()
    assert sandbox.server_count() == 0 and reloaded(live).purged_at is None

    assert decommissioning.delete_due() == 1
    assert decommissioning.delete_due() == 0
    assert kinds(live).count("purged") == 1 and kinds(live).count("server_deleted") == 1


def test_retention_waits_for_an_extended_date_and_leaves_live_subscriptions_alone(tenant, customer, admin, live,
                                                                                   sandbox, clock):
    from app.services import subscriptions

    other = place(tenant, customer, factories.plan(tenant))
    boot(clock)
    cancel(tenant, customer, live)
    run_worker(clock)
    first_date = reloaded(live).servers_delete_at
    subscriptions.extend_retention(tenant=tenant, actor=Actor(admin), subscription_id=live.id,
                                   until=first_date + timedelta(days=5), reason="Customer asked for a copy")
    clock.set(first_date + timedelta(days=1))

    assert decommissioning.delete_due() == 0
    assert reconcile_now(tenant).deleted == []
    assert sandbox.server_count() == 2

    clock.set(first_date + timedelta(days=5))
    assert decommissioning.delete_due() == 1
    assert sandbox.server_count() == 1
    assert reloaded(other).status is SubscriptionStatus.ACTIVE and reloaded(other).purged_at is None


def test_stalled_lists_only_items_that_stopped_moving(tenant, customer, live, sandbox, clock):
    cancel(tenant, customer, live)
    clock.advance(seconds=decommissioning.STALLED_AFTER.total_seconds() + 1)
    item = only_item(live)
    assert decommissioning.stalled() == [item.id]  # the poll was put aside and never ran
    run_worker(clock)
    clock.advance(hours=1)
    assert decommissioning.stalled() == []  # off, waiting for retention: nothing to do
