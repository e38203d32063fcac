"""Background work at the end of a subscription's life: shutting servers down, powering them off and on."""

from __future__ import annotations

from app.services.work import Job
from app.tasks import app_context, huey


@huey.task()
def decommission_item(item_id: int, attempt: int = 1) -> None:
    """Shut a canceled subscription's server down (or delete one never delivered); reschedules until done."""
    from app.services import decommissioning

    with app_context():
        step = decommissioning.advance(item_id, attempt)
    if step is not None:
        decommission_item.schedule((item_id, step.attempt), delay=step.delay)


@huey.task()
def power_off_item(item_id: int, attempt: int = 1) -> None:
    """Power a suspended subscription's server off; retried while the cloud is busy."""
    from app.services import servers

    with app_context():
        step = servers.lifecycle_power(item_id, on=False, attempt=attempt)
    if step is not None:
        power_off_item.schedule((item_id, step.attempt), delay=step.delay)


@huey.task()
def power_on_item(item_id: int, attempt: int = 1) -> None:
    """Power a reinstated subscription's server back on; retried while the cloud is busy."""
    from app.services import servers

    with app_context():
        step = servers.lifecycle_power(item_id, on=True, attempt=attempt)
    if step is not None:
        power_on_item.schedule((item_id, step.attempt), delay=step.delay)


TASKS = {Job.DECOMMISSION_ITEM: decommission_item, Job.POWER_OFF_ITEM: power_off_item,
         Job.POWER_ON_ITEM: power_on_item}
