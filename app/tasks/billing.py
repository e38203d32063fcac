"""The billing run at once for one customer whose first period started (the periodic run: app/tasks/jobs.py)."""

from __future__ import annotations

from app.services.work import Job
from app.tasks import app_context, huey


@huey.task()
def bill_customer(user_id: int) -> None:
    """The billing run for one customer (their first invoice is made and collected now)."""
    from app.services import billing_run

    with app_context():
        billing_run.run(user_id=user_id)


TASKS = {Job.BILL_CUSTOMER: bill_customer}

