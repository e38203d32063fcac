"""Sending email: one task per logged message, retried with backoff (the periodic jobs that keep the log true
are in app/tasks/jobs.py)."""

from __future__ import annotations

from app.services.work import Job
from app.tasks import app_context, huey


@huey.task()
def send_email(message_id: int) -> None:
    """Send one logged email; reschedules itself while the mail server refuses, until it is sent or failed."""
    from app.services import notifications

    with app_context():
        delay = notifications.deliver(message_id)
    if delay is not None:
        send_email.schedule((message_id,), delay=delay)


@huey.task()
def send_emails(message_ids: list[int]) -> None:
    """Send logged emails written in bulk, one after the other; one the mail server refuses is retried on its
    own, as `send_email` retries."""
    from app.services import notifications

    with app_context():
        for message_id in message_ids:
            delay = notifications.deliver(message_id)
            if delay is not None:
                send_email.schedule((message_id,), delay=delay)


TASKS = {Job.SEND_EMAIL: send_email, Job.SEND_EMAILS: send_emails}
