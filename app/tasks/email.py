"""Sending email: one task per message, retried with backoff, and the periodic jobs that keep the log true."""

from __future__ import annotations

from app.services.work import Job
from app.tasks import app_context, huey
from app.tasks.schedule import counted, every_minute, hourly, periodic


@huey.task()
def send_email(message_id: int) -> None:
    """Send one logged email; reschedules itself while the mail server refuses, until it is sent or failed."""
    from app.services import notifications

    with app_context():
        delay = notifications.deliver(message_id)
    if delay is not None:
        send_email.schedule((message_id,), delay=delay)


TASKS = {Job.SEND_EMAIL: send_email}


@periodic("emails", every_minute(), "Send the queued emails the queue lost (a worker that died mid-send)")
def send_lost_emails() -> str:
    from app.services import notifications

    lost = notifications.due()
    for message_id in lost:
        send_email(message_id)
    return counted(len(lost), "queued email handed to the queue again", "queued emails handed to the queue again")


@periodic("email-bodies", hourly(17), "Forget the bodies of logged emails past EMAIL_BODY_RETENTION_DAYS")
def forget_email_bodies() -> str:
    from flask import current_app

    from app.services import notifications

    return counted(notifications.forget_old_bodies(current_app.config["EMAIL_BODY_RETENTION_DAYS"]),
                   "email body forgotten", "email bodies forgotten")


@periodic("deletion-ahead", hourly(41),
          "Tell the owners of canceled subscriptions whose servers are deleted within 3 days (once each)")
def warn_of_deletions() -> str:
    from app.services import decommissioning

    return counted(decommissioning.warn_of_deletions(), "owner told of a deletion ahead",
                   "owners told of a deletion ahead")
