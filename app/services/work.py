"""The one port through which services ask for background work.

A service calls `later(Job.PROVISION_ITEM, item_id)`; the work is handed to the queue once the current
transaction commits, and dropped if it rolls back, so a worker never looks for rows that it cannot see yet
or that never came to exist. The queue (`app/tasks`) binds itself as the runner when the app starts;
services never import it.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum

from sqlalchemy import event
from sqlalchemy.orm import Session

from app.extensions import db


class Job(StrEnum):
    """Background work a service may ask for; `app/tasks/jobs.py` has a task for each."""

    PROVISION_ITEM = "provision_item"


Runner = Callable[[Job, tuple[object, ...]], None]
_PENDING = "work_after_commit"
_runner: Runner | None = None


def bind(runner: Runner) -> None:
    """Called once by the queue: `runner(job, args)` queues the job."""
    global _runner
    _runner = runner


def later(job: Job, *args: object) -> None:
    """Queue `job(*args)` once the current transaction commits."""
    db.session.info.setdefault(_PENDING, []).append((job, args))


def _after_commit(session: Session) -> None:
    pending = session.info.pop(_PENDING, [])
    if pending and _runner is None:
        raise RuntimeError("no queue is bound to run background work (app.tasks.init_app)")
    for job, args in pending:
        _runner(job, args)  # type: ignore[misc]


event.listen(Session, "after_commit", _after_commit)
event.listen(Session, "after_soft_rollback", lambda session, previous: session.info.pop(_PENDING, None))
