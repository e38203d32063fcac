"""`flask jobs list` and `flask jobs run`: every periodic job by hand, as of any time, each run recorded."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from app.clock import now
from app.domain.subscriptions import SubscriptionStatus
from app.extensions import db
from app.models import JobClaim, JobRun, JobTrigger, Subscription
from app.providers.base import ErrorKind
from app.sandbox.cloud import sandbox_for
from app.services import subscriptions
from app.services.actors import Actor
from app.tasks import huey, schedule
from app.tasks.jobs import serve_backorders  # noqa: F401  (importing the jobs registers them)
from app.tasks.schedule import JOBS
from tests import factories
from tests.services.conftest import boot, complete_profile, place

EVERY_MINUTE = {"expiry", "renewal", "grace-end", "backorders", "stuck-provisioning", "impersonations",
                "catalogue-operations", "emails"}
UTC_TIME = "%Y-%m-%d %H:%M:%S UTC"


def jobs(runner, *args: str):  # type: ignore[no-untyped-def]
    db.session.commit()  # the command works in sessions of its own
    result = runner.invoke(args=["jobs", *args])
    db.session.expire_all()
    return result


def runs(name: str) -> list[JobRun]:
    return list(db.session.scalars(select(JobRun).where(JobRun.job == name).order_by(JobRun.id)))


@pytest.fixture
def sandbox(tenant, clock):  # type: ignore[no-untyped-def]
    return sandbox_for(tenant.id, "hetzner", now)


@pytest.fixture
def pending_cancel(tenant, customer, sandbox, clock) -> Subscription:
    """An active monthly subscription whose customer canceled it for the end of the paid period."""
    complete_profile(customer)
    subscription = place(tenant, customer, factories.plan(tenant))
    boot(clock)
    subscriptions.cancel(tenant=tenant, actor=Actor(customer), subscription_id=subscription.id)
    db.session.expire_all()
    subscription = db.session.get(Subscription, subscription.id)
    assert subscription.status is SubscriptionStatus.PENDING_CANCEL and subscription.effective_at > clock.now()
    return subscription


def test_the_registry_has_every_periodic_job():
    assert list(JOBS) == ["expiry", "renewal", "grace-end", "retention", "decommissioning", "backorders",
                          "stuck-provisioning", "resizing", "marketplace-sync", "impersonations", "account-purge",
                          "reconciler", "catalogue-operations", "emails",
                          "email-bodies", "deletion-ahead", "billing"]


def test_jobs_list_shows_every_job_with_its_schedule_and_last_run(runner, clock):
    listing = jobs(runner, "list")
    assert listing.exit_code == 0, listing.output
    for job in JOBS.values():
        assert f"{job.name}  ({job.schedule.text})" in listing.output
        assert job.description in listing.output
    assert "reconciler  (every 10 minutes)" in listing.output and "expiry  (every minute)" in listing.output
    assert listing.output.count("Last run: never") == len(JOBS)

    assert jobs(runner, "run", "impersonations", "--as-of", "2027-01-15T00:00:00Z").exit_code == 0
    listing = jobs(runner, "list")
    assert ("Last run: succeeded: 0 impersonations closed; ran 2026-03-15 10:00:00 UTC to 10:00:00, "
            "as of 2027-01-15 00:00:00 UTC, by command") in listing.output
    assert listing.output.count("Last run: never") == len(JOBS) - 1


def test_expiry_as_of_a_time_after_the_end_date_cancels_and_a_second_run_does_nothing(runner, pending_cancel,
                                                                                    clock):
    effective_at, before = pending_cancel.effective_at, clock.now()
    early = effective_at - timedelta(minutes=1)
    result = jobs(runner, "run", "expiry", "--as-of", early.isoformat())
    assert result.output == f"expiry: 0 cancellations took effect (as of {early.strftime(UTC_TIME)})\n"
    assert db.session.get(Subscription, pending_cancel.id).status is SubscriptionStatus.PENDING_CANCEL

    later = effective_at + timedelta(days=1)
    result = jobs(runner, "run", "expiry", "--as-of", later.isoformat())
    assert result.exit_code == 0, result.output
    assert result.output == f"expiry: 1 cancellation took effect (as of {later.strftime(UTC_TIME)})\n"
    canceled = db.session.get(Subscription, pending_cancel.id)
    assert canceled.status is SubscriptionStatus.CANCELED and canceled.canceled_at == effective_at

    again = jobs(runner, "run", "expiry", "--as-of", later.isoformat())
    assert again.output == f"expiry: 0 cancellations took effect (as of {later.strftime(UTC_TIME)})\n"
    assert db.session.get(Subscription, pending_cancel.id).version == canceled.version
    assert clock.now() == before  # the app's clock is back


def test_without_as_of_the_job_runs_at_the_current_time(runner, pending_cancel, clock):
    assert jobs(runner, "run", "expiry").output == "expiry: 0 cancellations took effect\n"
    clock.set(pending_cancel.effective_at)
    assert jobs(runner, "run", "expiry").output == "expiry: 1 cancellation took effect\n"
    assert [run.as_of for run in runs("expiry")] == [None, None]


def test_a_run_is_recorded_with_its_as_of_and_trigger(runner, clock):
    clock.set(datetime(2026, 5, 1, 8, 30, tzinfo=UTC))
    assert jobs(runner, "run", "stuck-provisioning", "--as-of", "2027-01-15").exit_code == 0
    assert jobs(runner, "run", "stuck-provisioning", "--as-of", "2027-01-15T09:30:00+01:00").exit_code == 0

    first, second = runs("stuck-provisioning")
    assert (first.as_of, second.as_of) == (datetime(2027, 1, 15, tzinfo=UTC), datetime(2027, 1, 15, 8, 30, tzinfo=UTC))
    assert (first.trigger, first.ok, first.summary, first.error) == (JobTrigger.COMMAND, True,
                                                                     "0 stuck servers queued again", None)
    assert first.started_at == first.finished_at == clock.now()  # the run's own times are the real ones


@pytest.mark.parametrize("name", ["nope", "Expiry", ""])
def test_an_unknown_job_is_a_clear_error_listing_the_known_ones(runner, name):
    result = jobs(runner, "run", name)
    assert result.exit_code == 2
    assert f"there is no job named {name!r}" in result.output
    assert f"Known jobs: {', '.join(JOBS)}." in result.output
    assert "Traceback" not in result.output
    assert db.session.scalar(select(func.count()).select_from(JobRun)) == 0


@pytest.mark.parametrize(("as_of", "message"), [
    ("garbage", "is not an ISO 8601 time"),
    ("2027-13-01", "is not an ISO 8601 time"),
    ("2027-01-15 25:00Z", "is not an ISO 8601 time"),
    ("2027-01-15T10:00:00", "does not say which timezone it is in"),
])
def test_a_bad_time_is_a_clear_error(runner, as_of, message):
    result = jobs(runner, "run", "expiry", "--as-of", as_of)
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output
    assert runs("expiry") == []


def test_a_failing_job_is_recorded_as_failed_and_the_command_exits_non_zero(runner, pending_cancel, sandbox, clock):
    before = clock.now()
    sandbox.fail_next("find", ErrorKind.TRANSIENT, message="The cloud did not answer in time.")

    result = jobs(runner, "run", "reconciler", "--as-of", "2027-01-15T00:00:00Z")

    assert result.exit_code == 1
    assert "Job reconciler failed: RuntimeError: 1 cloud account: 0 servers adopted" in result.output
    assert "The cloud did not answer in time." in result.output and "Traceback" not in result.output
    [run] = runs("reconciler")
    assert (run.ok, run.trigger, run.as_of) == (False, JobTrigger.COMMAND, datetime(2027, 1, 15, tzinfo=UTC))
    assert run.finished_at is not None and run.summary.startswith("failed: RuntimeError: 1 cloud account")
    assert "The cloud did not answer in time." in run.error
    assert clock.now() == before
    assert "Last run: failed: RuntimeError" in jobs(runner, "list").output

    assert jobs(runner, "run", "reconciler").output.startswith("reconciler: 1 cloud account: 0 servers adopted")


def test_the_backorders_job_serves_the_queue_and_provisions(runner, tenant, customer, sandbox, clock):
    complete_profile(customer)
    sandbox.set_capacity("cx22", "nbg1", 0)
    waiting = place(tenant, customer, factories.plan(tenant), auto_backorder=True)
    sandbox.set_capacity("cx22", "nbg1", None)

    result = jobs(runner, "run", "backorders")

    assert result.output == "backorders: 1 backordered server queued for provisioning\n"
    boot(clock)
    assert db.session.get(Subscription, waiting.id).status is SubscriptionStatus.ACTIVE


def test_only_the_latest_runs_of_each_job_are_kept(runner, monkeypatch):
    monkeypatch.setattr(schedule, "KEEP_RUNS", 3)
    assert jobs(runner, "run", "expiry").exit_code == 0
    for _ in range(4):
        assert jobs(runner, "run", "impersonations").exit_code == 0
    kept = runs("impersonations")
    assert len(kept) == 3 and len(runs("expiry")) == 1
    assert kept[0].id > min(run.id for run in runs("expiry")) + 1  # the oldest ones went


def test_the_worker_schedule_is_the_registry():
    at = {minute: {task.name for task in huey.read_periodic(datetime(2027, 1, 15, 3, minute))} for minute in (0, 7)}
    names = {job.name: job.task.name for job in JOBS.values()}
    assert at[0] == set(names.values())  # on the full hour every job is due
    assert at[7] == {names[name] for name in EVERY_MINUTE}


def test_the_scheduled_task_runs_the_registered_job_and_records_it(app, pending_cancel, clock):
    clock.set(pending_cancel.effective_at)
    db.session.commit()

    JOBS["expiry"].task.call_local()  # what the worker runs when the schedule says so

    db.session.expire_all()
    assert db.session.get(Subscription, pending_cancel.id).status is SubscriptionStatus.CANCELED
    [run] = runs("expiry")
    assert (run.trigger, run.ok, run.as_of, run.summary) == (JobTrigger.SCHEDULE, True, None,
                                                             "1 cancellation took effect")


def test_a_failing_scheduled_job_is_recorded_and_raised_to_the_worker(app, monkeypatch):
    from app.services import impersonation

    def broken() -> int:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(impersonation, "close_all_finished", broken)
    with pytest.raises(schedule.JobFailed, match="Job impersonations failed: RuntimeError: the database went away"):
        JOBS["impersonations"].task.call_local()
    [run] = runs("impersonations")
    assert (run.ok, run.trigger, run.error) == (False, JobTrigger.SCHEDULE, "RuntimeError: the database went away")


def test_a_retention_run_that_could_not_delete_is_recorded_as_failed_and_the_next_one_finishes(
        tenant, customer, sandbox, clock, runner):
    from app.domain.catalogue import ChangeRule
    from app.providers.base import ErrorKind

    complete_profile(customer)
    subscription = place(tenant, customer, factories.plan(tenant, cancellation_rule=ChangeRule.IMMEDIATE))
    boot(clock)
    subscriptions.cancel(tenant=tenant, actor=Actor(customer), subscription_id=subscription.id)
    db.session.expire_all()
    delete_at = db.session.get(Subscription, subscription.id).servers_delete_at
    sandbox.fail_next("find", ErrorKind.TRANSIENT)

    failed = jobs(runner, "run", "retention", "--as-of", delete_at.isoformat())
    assert failed.exit_code == 1 and "not deleted yet: subscription" in failed.output
    assert [run.ok for run in runs("retention")] == [False]
    assert sandbox.server_count() == 1

    done = jobs(runner, "run", "retention", "--as-of", delete_at.isoformat())
    assert done.exit_code == 0 and "1 subscription purged" in done.output
    assert sandbox.server_count() == 0


def test_each_scheduled_minute_is_run_by_one_worker_process(app, clock):
    clock.set(datetime(2026, 3, 15, 10, 0, 1, tzinfo=UTC))
    JOBS["impersonations"].task.call_local()
    clock.advance(seconds=2)
    JOBS["impersonations"].task.call_local()  # a second worker process, firing in the same minute
    assert len(runs("impersonations")) == 1
    clock.advance(minutes=1)
    JOBS["impersonations"].task.call_local()
    JOBS["expiry"].task.call_local()  # another job's claim is its own
    assert len(runs("impersonations")) == 2 and len(runs("expiry")) == 1
    claims = db.session.scalars(select(JobClaim).where(JobClaim.job == "impersonations")
                                .order_by(JobClaim.due_at)).all()
    assert [c.due_at for c in claims] == [datetime(2026, 3, 15, 10, 0, tzinfo=UTC),
                                          datetime(2026, 3, 15, 10, 1, tzinfo=UTC)]
    assert all(c.claimed_by.endswith(f":{os.getpid()}") for c in claims)


def test_claims_older_than_a_day_are_forgotten(app, clock):
    JOBS["impersonations"].task.call_local()
    clock.advance(days=1, minutes=1)
    JOBS["impersonations"].task.call_local()
    assert db.session.scalar(select(func.count()).select_from(JobClaim)) == 1
