"""The portal's background jobs. Each is thin: open the app context, call a service, maybe reschedule."""

from __future__ import annotations

import logging

from huey import crontab

from app.services.work import Job
from app.tasks import app_context, huey

log = logging.getLogger(__name__)


def run(job: Job, args: tuple[object, ...]) -> None:
    """Queue the task of `job` (services ask for work through `app.services.work`)."""
    TASKS[job](*args)


@huey.task()
def provision_item(item_id: int, attempt: int = 1) -> None:
    """Advance one item's provisioning; reschedules itself until the item is settled."""
    from app.services import provisioning

    with app_context() as app:
        step = provisioning.advance(item_id, attempt, dns_base_domain=app.config["DNS_BASE_DOMAIN"])
    if step is not None:
        provision_item.schedule((item_id, step.attempt), delay=step.delay)


TASKS = {Job.PROVISION_ITEM: provision_item}


@huey.periodic_task(crontab(minute="*"))
def every_minute() -> None:
    """Time-driven lifecycle: cancellations that take effect, backorders that can be served, stuck items."""
    from app.services import backorders, impersonation, provisioning, subscriptions

    with app_context():
        expired = subscriptions.expire_due_cancellations()
        served = backorders.serve_backorders()
        stuck = provisioning.unsettled_items()
        impersonation.close_all_finished()
    for item_id in [*served, *stuck]:
        provision_item(item_id)
    if expired or served:
        log.info("periodic: %s cancellations took effect, %s backordered items queued", expired, len(served))


@huey.periodic_task(crontab(minute="*/10"))
def reconcile_clouds() -> None:
    """Adopt servers the portal lost track of, delete orphans, and flag servers deleted at the cloud."""
    from app.providers.base import ProviderError
    from app.services import reconcile

    with app_context():
        for tenant_id, provider in reconcile.clouds_in_use():
            try:
                reconcile.reconcile(tenant_id, provider)
            except ProviderError as error:  # one cloud being down must not stop the others
                log.warning("reconcile tenant %s on %s failed: %s", tenant_id, provider, error)
