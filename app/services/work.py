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
    DECOMMISSION_ITEM = "decommission_item"  # shut a canceled subscription's server down, or delete it
    POWER_OFF_ITEM = "power_off_item"  # suspended
    POWER_ON_ITEM = "power_on_item"  # reinstated
    SEND_EMAIL = "send_email"  # one logged email (app/services/notifications.py)
    SEND_EMAILS = "send_emails"  # logged emails written in bulk, by their ids (notifications.notify_later)
    ADVANCE_CATALOGUE_OPERATION = "advance_catalogue_operation"  # a replace or retire, chunk by chunk
    BILL_CUSTOMER = "bill_customer"  # the billing run for one customer, now (app/services/billing_run.py)
    RESIZE_ITEM = "resize_item"  # change a server's type to its config's server_type
    MARKETPLACE_ACTIVATE = "marketplace_activate"  # tell the marketplace a delivered subscription may be billed


_PENDING = "work_after_commit"
_runners: dict[Job, Callable[..., object]] = {}


def bind(job: Job, runner: Callable[..., object]) -> None:
    """Called by the queue at start-up: `runner(*args)` queues `job`."""
    _runners[job] = runner


def later(job: Job, *args: object) -> None:
    """Queue `job(*args)` once the current transaction commits."""
    db.session.info.setdefault(_PENDING, []).append((job, args))


def _after_commit(session: Session) -> None:
    for job, args in session.info.pop(_PENDING, []):
        if job not in _runners:
            raise RuntimeError(f"no task is bound to run {job} (app.tasks.init_app)")
        _runners[job](*args)


event.listen(Session, "after_commit", _after_commit)
event.listen(Session, "after_soft_rollback", lambda session, previous: session.info.pop(_PENDING, None))
