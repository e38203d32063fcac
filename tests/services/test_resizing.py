"""Changing a server's type to the one its configuration wants: stopped, resized, started again as it was;
retried while the cloud may recover, failed with a message otherwise; resumed after a worker dies."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from app.clock import now
from app.domain.resizing import SHUTDOWN_TIMEOUT, ResizeStep
from app.domain.retry import MAX_ATTEMPTS
from app.domain.subscriptions import SubscriptionStatus
from app.extensions import db
from app.models import SubscriptionEvent, SubscriptionItem
from app.providers.base import ErrorKind, PowerState
from app.services import resizing, servers, work
from app.services.actors import Actor
from app.services.errors import InvalidInput
from app.services.servers import PowerCommand
from app.services.work import Job
from app.tasks.jobs import requeue_stalled_resizes
from tests.services.conftest import as_worker, items_of

ACTION_SECONDS = 3.0  # SandboxCloud's default


@pytest.fixture
def item(active_subscription) -> SubscriptionItem:  # type: ignore[no-untyped-def]
    [item] = items_of(active_subscription)
    return item


def want(item: SubscriptionItem, server_type: str, **config: object) -> None:
    """What a plan change does: the wanted type in the configuration (the task is run by the test)."""
    item.config = {**item.config, "server_type": server_type, **config}
    db.session.commit()


def step(item: SubscriptionItem, attempt: int = 1) -> resizing.Next | None:
    result = resizing.advance(item.id, attempt)
    db.session.expire_all()
    return result


def drive(item: SubscriptionItem, clock, limit: int = 30) -> int:  # type: ignore[no-untyped-def]
    """Run the steps a worker would, moving the clock past each action; answers how many ran."""
    attempt = 1
    for n in range(1, limit + 1):
        result = step(item, attempt)
        if result is None:
            return n
        attempt = result.attempt
        clock.advance(seconds=ACTION_SECONDS)
    raise AssertionError("the resize did not settle")


def kinds(item: SubscriptionItem) -> list[str]:
    return list(db.session.scalars(select(SubscriptionEvent.kind).where(
        SubscriptionEvent.item_id == item.id, SubscriptionEvent.kind.like("server_resize%"))
        .order_by(SubscriptionEvent.id)))


def test_provisioning_records_the_type_the_server_has(item):
    assert item.server_type_actual == "cx22"


def test_nothing_happens_while_the_type_is_the_wanted_one(item, sandbox):
    want(item, "cx22")

    assert step(item) is None
    assert not [c for c in sandbox.calls if c[0] in ("resize", "shutdown")]
    assert item.resize_step is None


def test_a_running_server_is_stopped_resized_and_started_again(item, sandbox, clock, tenant, customer):
    want(item, "cx32")

    assert step(item) is not None
    assert (item.resize_step, item.resizing, item.resize_target) == ("stopping", True, "cx32")
    assert ("shutdown", item.server_id) in sandbox.calls
    with pytest.raises(InvalidInput, match="being changed"):
        servers.power(tenant=tenant, actor=Actor(customer),
                      subscription_id=item.subscription_id, item_id=item.id, command=PowerCommand.START)
    clock.advance(seconds=ACTION_SECONDS)
    step(item)
    assert item.resize_step == "resizing"
    assert ("resize", item.server_id, "cx32", "True") in sandbox.calls
    clock.advance(seconds=1)
    step(item)
    assert 0 < item.resize_progress < 100

    drive(item, clock)

    info = sandbox.server_info(item.server_id)
    assert (info.server_type, info.power) == ("cx32", PowerState.RUNNING)
    assert sandbox.disk_gb(item.server_id) == 80  # the disk grew: the default
    assert (item.server_type_actual, item.resize_step, item.resize_error) == ("cx32", None, None)
    assert item.config["serverType"] == "cx32"
    assert kinds(item) == ["server_resize_started", "server_resized"]


def test_the_disk_is_kept_when_the_configuration_says_so(item, sandbox, clock):
    want(item, "cx32", upgrade_disk=False)

    drive(item, clock)

    assert sandbox.server_info(item.server_id).server_type == "cx32"
    assert sandbox.disk_gb(item.server_id) == 40


def test_a_stopped_server_is_resized_and_stays_off(item, sandbox, clock):
    sandbox.power_off(item.server_id)
    clock.advance(seconds=ACTION_SECONDS)
    want(item, "cx32")

    drive(item, clock)

    info = sandbox.server_info(item.server_id)
    assert (info.server_type, info.power) == ("cx32", PowerState.OFF)
    assert not [c for c in sandbox.calls if c[0] in ("shutdown", "power_on")]


def test_a_guest_that_ignores_the_shutdown_has_its_power_cut(item, sandbox, clock):
    sandbox.ignore_shutdown()
    want(item, "cx32")
    step(item)
    clock.advance(seconds=ACTION_SECONDS)
    step(item)
    assert item.resize_step == "stopping"
    assert ("power_off", item.server_id) not in sandbox.calls

    clock.advance(seconds=SHUTDOWN_TIMEOUT.total_seconds() + 1)
    step(item)

    assert ("power_off", item.server_id) in sandbox.calls
    drive(item, clock)
    assert sandbox.server_info(item.server_id).power is PowerState.RUNNING
    assert "server_resize_power_cut" in kinds(item)


def test_cloud_hiccups_are_retried_with_backoff(item, sandbox, clock):
    sandbox.fail_next("resize", ErrorKind.TRANSIENT, times=2)
    want(item, "cx32")

    drive(item, clock)

    assert sandbox.server_info(item.server_id).server_type == "cx32"
    assert kinds(item).count("server_resize_retry") == 2


def test_a_cloud_that_keeps_failing_fails_the_resize_and_powers_the_server_on_again(item, sandbox, clock):
    sandbox.fail_next("resize", ErrorKind.TRANSIENT, times=MAX_ATTEMPTS)
    want(item, "cx32")

    drive(item, clock)

    assert (item.resize_step, item.resize_target) == ("failed", "cx32")
    assert "kept failing" in item.resize_error
    assert kinds(item)[-1] == "server_resize_failed"
    clock.advance(seconds=ACTION_SECONDS)
    info = sandbox.server_info(item.server_id)
    assert (info.server_type, info.power) == ("cx22", PowerState.RUNNING)
    assert [c for c in sandbox.calls if c[0] == "resize"] == [("resize", item.server_id, "cx32", "True")] * MAX_ATTEMPTS


def test_a_refusal_fails_at_once_and_the_same_type_is_not_tried_again(item, sandbox, clock):
    want(item, "cx32")
    drive(item, clock)  # 80 GB now
    want(item, "cx22")  # a smaller disk: never

    drive(item, clock)

    assert item.resize_step == "failed"
    assert "disk cannot shrink" in item.resize_error
    clock.advance(seconds=ACTION_SECONDS)
    assert sandbox.server_info(item.server_id).power is PowerState.RUNNING
    assert step(item) is None  # not again for cx22
    assert resizing.stalled() == []

    want(item, "cx42")  # another type starts afresh
    drive(item, clock)
    assert (item.server_type_actual, item.resize_step, item.resize_error) == ("cx42", None, None)


def test_a_resize_left_half_done_is_found_and_finished(item, sandbox, clock):
    want(item, "cx32")
    step(item)
    clock.advance(seconds=ACTION_SECONDS)
    step(item)  # the type change runs; then the worker dies
    assert item.resize_step == "resizing"
    assert resizing.stalled() == []  # not yet: it may still be moving

    clock.advance(seconds=resizing.STALLED_AFTER.total_seconds() + 1)
    assert resizing.stalled() == [item.id]
    as_worker(requeue_stalled_resizes)  # queues it again: the task runs one step

    drive(item, clock)
    assert (item.server_type_actual, item.resize_step) == ("cx32", None)
    assert sandbox.server_info(item.server_id).power is PowerState.RUNNING


def test_a_wanted_type_whose_task_was_lost_is_found(item, clock):
    want(item, "cx32")  # the plan change committed; its task never ran

    clock.advance(seconds=resizing.STALLED_AFTER.total_seconds() + 1)

    assert resizing.stalled() == [item.id]


def test_a_crash_before_the_shutdown_was_sent_sends_it(item, sandbox, clock):
    want(item, "cx32")
    item.resize_step, item.resize_target, item.resize_was_on = ResizeStep.STOPPING.value, "cx32", True
    item.resize_step_at = now()
    db.session.commit()

    step(item)

    assert ("shutdown", item.server_id) in sandbox.calls
    drive(item, clock)
    assert item.server_type_actual == "cx32"


def test_the_task_runs_the_resize_the_configuration_asks_for(item, sandbox, clock):
    item.config = {**item.config, "server_type": "cx32"}
    work.later(Job.RESIZE_ITEM, item.id)
    db.session.commit()  # the task runs now (immediate mode) and schedules its next steps

    db.session.expire_all()
    assert item.resize_step == "stopping"


def test_a_canceled_subscription_is_not_resized(item, sandbox):
    item.subscription.status = SubscriptionStatus.CANCELED
    want(item, "cx32")

    assert step(item) is None
    assert not [c for c in sandbox.calls if c[0] == "resize"]


def test_later_type_wanted_during_a_resize_is_taken_up_after_it(item, sandbox, clock):
    want(item, "cx32")
    step(item)
    want(item, "cx42")

    drive(item, clock, limit=60)

    assert item.server_type_actual == "cx42"
    assert sandbox.server_info(item.server_id).server_type == "cx42"


def test_the_periodic_job_ignores_settled_items(item, clock):
    clock.advance(seconds=timedelta(hours=1).total_seconds())

    assert resizing.stalled() == []
