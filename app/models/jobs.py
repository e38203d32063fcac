"""Runs of the periodic jobs: when each ran, as of when, who started it and how it ended.

A row is written once, when the run has finished (successfully or not), so there is never a run without
an end. Only the latest runs of each job are kept (`app.tasks.schedule.KEEP_RUNS`).

Every worker process runs the schedule, so each scheduled run is first claimed: one `job_claims` row per job
and scheduled minute, which only one process can insert (its primary key). The others skip that minute.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Index, PrimaryKeyConstraint, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.base import UTCDateTime, enum_type


class JobTrigger(StrEnum):
    """What started a run."""

    SCHEDULE = "schedule"  # the worker, on the job's schedule
    COMMAND = "command"  # someone, with `flask jobs run`


class JobRun(db.Model):
    """One finished run of one periodic job."""

    __tablename__ = "job_runs"
    __table_args__ = (Index("ix_job_runs_job_id", "job", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    job: Mapped[str] = mapped_column(String(50))
    trigger: Mapped[JobTrigger] = mapped_column(enum_type(JobTrigger, "job_run_trigger"))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime] = mapped_column(UTCDateTime)
    as_of: Mapped[datetime | None] = mapped_column(UTCDateTime)  # the time the clock read, when one was given
    ok: Mapped[bool] = mapped_column()
    summary: Mapped[str] = mapped_column(String(200))
    error: Mapped[str | None] = mapped_column(Text)

    def __repr__(self) -> str:
        return f"<JobRun {self.id} {self.job} {'ok' if self.ok else 'failed'}>"


class JobClaim(db.Model):
    """A scheduled run taken by one worker process: the job, the minute it was due, and who took it."""

    __tablename__ = "job_claims"
    __table_args__ = (PrimaryKeyConstraint("job", "due_at"),)

    job: Mapped[str] = mapped_column(String(50))
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    claimed_by: Mapped[str] = mapped_column(String(200))  # host and process id
