"""The periodic jobs: one registry, run on schedule by the worker and by hand with `flask jobs run`.

A job is a function that does its work once, inside an app context, and returns a short summary such as
"3 cancellations took effect". `@periodic` registers it with a name, a one-line description and a
schedule, and returns the Huey periodic task that runs it on that schedule. Both ways go through
`run_job`, so a job runs the same code whoever starts it, and every run is recorded in `job_runs`. Every
worker process keeps the schedule; a scheduled run is first `claim`ed, so one of them runs it.

Adding a job is one decorated function in `app/tasks/jobs.py`:

    @periodic("renewal", daily(hour=0, minute=5), "Renew the subscriptions whose paid period ends")
    def renew_subscriptions() -> str:
        from app.services import subscriptions

        return counted(subscriptions.renew_due(), "subscription renewed", "subscriptions renewed")

Schedules are in UTC (the queue runs with `utc=True`): `every_minute()`, `every_minutes(10)`,
`hourly(minute=5)`, `daily(hour=3, minute=30)`.

Running "as of" a time sets the app's clock to that time for the run, and lets it run on from there at
the normal rate rather than freezing it: the run sees what it would have seen had it started then, and
time still passes inside it, so records made one after another keep their order and "older than" checks
within the run behave as they do on schedule. The clock is the app's, shared by the threads of the
process, so only `flask jobs run` (a process of its own) runs jobs as of another time; the worker never does.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import Flask
from huey import crontab
from huey.api import TaskWrapper
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from app.clock import now
from app.extensions import db
from app.models import JobClaim, JobRun, JobTrigger
from app.tasks import app_context, huey

log = logging.getLogger(__name__)

KEEP_RUNS = 50  # per job; older runs are deleted when a new one is recorded
SUMMARY_LENGTH = 200  # JobRun.summary


@dataclass(frozen=True)
class Schedule:
    """When a job runs, as Huey's crontab fields (in UTC), and the same said in words."""

    text: str
    minute: str = "*"
    hour: str = "*"
    day: str = "*"
    day_of_week: str = "*"

    def crontab(self) -> Callable[[datetime], bool]:
        return crontab(minute=self.minute, hour=self.hour, day=self.day, day_of_week=self.day_of_week)


def every_minute() -> Schedule:
    return Schedule("every minute")


def every_minutes(minutes: int) -> Schedule:
    """Every `minutes` minutes, from the full hour (60 must be divisible by it)."""
    if minutes < 1 or 60 % minutes:
        raise ValueError("every_minutes needs a divisor of 60")
    return every_minute() if minutes == 1 else Schedule(f"every {minutes} minutes", minute=f"*/{minutes}")


def hourly(minute: int = 0) -> Schedule:
    return Schedule(f"every hour at :{minute:02d}", minute=str(minute))


def daily(hour: int = 0, minute: int = 0) -> Schedule:
    return Schedule(f"every day at {hour:02d}:{minute:02d} UTC", minute=str(minute), hour=str(hour))


@dataclass(frozen=True)
class PeriodicJob:
    name: str
    description: str
    schedule: Schedule
    body: Callable[[], str]  # runs the job once, inside an app context; returns a short summary
    task: TaskWrapper  # the Huey periodic task that runs it on schedule


JOBS: dict[str, PeriodicJob] = {}


class UnknownJob(LookupError):
    def __init__(self, name: str) -> None:
        super().__init__(f"There is no job named {name!r}. Known jobs: {', '.join(JOBS)}.")


class JobFailed(RuntimeError):
    """The job raised; the run is recorded as failed with `error`."""

    def __init__(self, name: str, error: str) -> None:
        super().__init__(f"Job {name} failed: {error}")
        self.error = error


def periodic(name: str, schedule: Schedule, description: str) -> Callable[[Callable[[], str]], TaskWrapper]:
    """Register the decorated job under `name`; returns the Huey task that runs it on `schedule`."""

    def register(body: Callable[[], str]) -> TaskWrapper:
        if name in JOBS:
            raise ValueError(f"two periodic jobs are named {name!r}")

        def run_on_schedule() -> None:
            if claim(name):
                run_job(name, trigger=JobTrigger.SCHEDULE)

        run_on_schedule.__doc__ = description
        task = huey.periodic_task(schedule.crontab(), name=f"periodic_{name.replace('-', '_')}")(run_on_schedule)
        JOBS[name] = PeriodicJob(name, description, schedule, body, task)
        return task

    return register


def run_job(name: str, *, trigger: JobTrigger, as_of: datetime | None = None) -> str:
    """Run the job once, as of `as_of` (else now), and record the run; returns its summary.

    Raises UnknownJob, or JobFailed once the failure is recorded (chained to what the job raised).
    """
    job = JOBS.get(name)
    if job is None:
        raise UnknownJob(name)
    with app_context() as app:
        started_at = now()
        try:
            with _clock_at(app, as_of):
                summary = job.body()
        except Exception as error:
            db.session.rollback()
            message = _one_line(error)
            _record(name, trigger, started_at, as_of, ok=False, summary=f"failed: {message}", error=message)
            raise JobFailed(name, message) from error
        _record(name, trigger, started_at, as_of, ok=True, summary=summary)
    return summary


def claim(name: str) -> bool:
    """Take this minute's scheduled run of the job for this process; False when another process has it.

    Every worker process runs the schedule and they all fire at the start of the minute; the claim's
    primary key (job, minute) lets one insert win. Claims older than a day are forgotten as new ones come.
    """
    with app_context():
        due_at = now().replace(second=0, microsecond=0)
        db.session.execute(delete(JobClaim).where(JobClaim.job == name, JobClaim.due_at < due_at - timedelta(days=1)))
        db.session.add(JobClaim(job=name, due_at=due_at, claimed_by=f"{socket.gethostname()}:{os.getpid()}"[:200]))
        try:
            db.session.commit()
        except IntegrityError:
            db.session.rollback()
            log.info("job %s due at %s was run by another worker", name, due_at.isoformat())
            return False
    return True


def latest_runs() -> dict[str, JobRun]:
    """The latest recorded run of each job that has run, by job name."""
    latest = select(func.max(JobRun.id)).group_by(JobRun.job).scalar_subquery()
    return {run.job: run for run in db.session.scalars(select(JobRun).where(JobRun.id.in_(latest)))}


def counted(count: int, one: str, many: str) -> str:
    """`3 cancellations took effect` from (3, "cancellation took effect", "cancellations took effect")."""
    return f"{count} {one if count == 1 else many}"


class _AsOfClock:
    """Reads `start` when the run begins and runs on from there at the normal rate."""

    def __init__(self, start: datetime) -> None:
        self._start = start
        self._began = time.monotonic()

    def now(self) -> datetime:
        return self._start + timedelta(seconds=time.monotonic() - self._began)


@contextmanager
def _clock_at(app: Flask, moment: datetime | None) -> Iterator[None]:
    if moment is None:
        yield
        return
    usual = app.extensions["clock"]
    app.extensions["clock"] = _AsOfClock(moment)
    try:
        yield
    finally:
        app.extensions["clock"] = usual


def _one_line(error: Exception) -> str:
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _record(name: str, trigger: JobTrigger, started_at: datetime, as_of: datetime | None, *, ok: bool,
            summary: str, error: str | None = None) -> None:
    """Write the finished run and forget all but the latest KEEP_RUNS of the job, in one transaction."""
    db.session.add(JobRun(job=name, trigger=trigger, started_at=started_at, finished_at=now(), as_of=as_of, ok=ok,
                          summary=_shortened(summary), error=error))
    db.session.flush()
    oldest_kept = db.session.scalar(select(JobRun.id).where(JobRun.job == name).order_by(JobRun.id.desc())
                                    .offset(KEEP_RUNS - 1).limit(1))
    if oldest_kept is not None:
        db.session.execute(delete(JobRun).where(JobRun.job == name, JobRun.id < oldest_kept))
    db.session.commit()


def _shortened(text: str) -> str:
    return text if len(text) <= SUMMARY_LENGTH else text[:SUMMARY_LENGTH - 1] + "…"
