"""The portal's background jobs. Each is thin: call a service in an app context, maybe reschedule or queue more.

The periodic jobs are registered with `@periodic` (app/tasks/schedule.py), which also schedules them with Huey.
"""

from __future__ import annotations

import logging

from app.services.work import Job
from app.tasks import app_context, huey
from app.tasks.email import send_email
from app.tasks.schedule import counted, every_minute, every_minutes, hourly, periodic

log = logging.getLogger(__name__)


@huey.task()
def provision_item(item_id: int, attempt: int = 1) -> None:
    """Advance one item's provisioning; reschedules itself until the item is settled."""
    from app.services import provisioning

    with app_context() as app:
        step = provisioning.advance(item_id, attempt, dns_base_domain=app.config["DNS_BASE_DOMAIN"])
    if step is not None:
        provision_item.schedule((item_id, step.attempt), delay=step.delay)


@huey.task()
def resize_item(item_id: int, attempt: int = 1) -> None:
    """Move one item's change of server type a step; reschedules itself until it is done or has failed."""
    from app.services import resizing

    with app_context():
        step = resizing.advance(item_id, attempt)
    if step is not None:
        resize_item.schedule((item_id, step.attempt), delay=step.delay)


@huey.task()
def marketplace_activate(subscription_id: int, attempt: int = 1) -> None:
    """Tell the marketplace a delivered subscription may be billed; reschedules itself while it cannot be asked."""
    from app.services import marketplaces

    with app_context():
        step = marketplaces.activate(subscription_id, attempt)
    if step is not None:
        marketplace_activate.schedule((subscription_id, step.attempt), delay=step.delay)


TASKS = {Job.PROVISION_ITEM: provision_item, Job.RESIZE_ITEM: resize_item,
         Job.MARKETPLACE_ACTIVATE: marketplace_activate}


# --- Periodic jobs (the registry and how to add one: app/tasks/schedule.py) ------------------------


@periodic("expiry", every_minute(), "Pending cancellations whose end date has come take effect")
def expire_cancellations() -> str:
    from app.services import subscriptions

    return counted(subscriptions.expire_due_cancellations(), "cancellation took effect",
                   "cancellations took effect")


@periodic("renewal", every_minute(),
          "Active subscriptions whose paid period has ended move to the next one, with its charge (once)")
def renew_subscriptions() -> str:
    from app.services import subscriptions

    return counted(subscriptions.renew_due(), "subscription renewed or ended", "subscriptions renewed or ended")


@periodic("grace-end", every_minute(), "Suspended subscriptions whose grace period is over are canceled")
def end_grace_periods() -> str:
    from app.services import subscriptions

    return counted(subscriptions.end_grace_periods(), "grace period ended", "grace periods ended")


@periodic("retention", every_minutes(10),
          "Canceled subscriptions past their retention: servers deleted at the cloud, data purged, once")
def delete_retained_servers() -> str:
    from app.services import decommissioning

    failures: list[str] = []
    summary = counted(decommissioning.delete_due(failures=failures), "subscription purged", "subscriptions purged")
    if failures:  # recorded as a failure: those are tried again on the next run
        raise RuntimeError(f"{summary}; not deleted yet: {'; '.join(failures)}")
    return summary


@periodic("decommissioning", every_minutes(10), "Take up server shutdowns that a worker left half done")
def requeue_stalled_decommissioning() -> str:
    from app.services import decommissioning
    from app.tasks.end_of_life import decommission_item

    stalled = decommissioning.stalled()
    for item_id in stalled:
        decommission_item(item_id)
    return counted(len(stalled), "server's end of life queued again", "servers' ends of life queued again")


@periodic("backorders", every_minute(), "Serve the backorder queues where capacity is free again, oldest first")
def serve_backorders() -> str:
    from app.services import backorders

    released = backorders.serve_backorders()
    for item_id in released:
        provision_item(item_id)
    return counted(len(released), "backordered server queued for provisioning",
                   "backordered servers queued for provisioning")


@periodic("stuck-provisioning", every_minute(), "Provision again the servers whose worker died on the way")
def requeue_stuck_items() -> str:
    from app.services import provisioning

    stuck = provisioning.unsettled_items()
    for item_id in stuck:
        provision_item(item_id)
    return counted(len(stuck), "stuck server queued again", "stuck servers queued again")


@periodic("resizing", every_minutes(5),
          "Carry on with server type changes that a worker left half done, or that were never queued")
def requeue_stalled_resizes() -> str:
    from app.services import resizing

    stalled = resizing.stalled()
    for item_id in stalled:
        resize_item(item_id)
    return counted(len(stalled), "server type change queued again", "server type changes queued again")


@periodic("marketplace-sync", every_minutes(5),
          "Read every marketplace subscription's state from its marketplace (STACKIT is polled; missed Microsoft "
          "webhooks are caught up) and bring the subscriptions in line")
def sync_marketplaces() -> str:
    from app.services import marketplace_sync

    outcome = marketplace_sync.sync_all()
    if outcome.failures:  # recorded as a failure; the rest was applied, and the next run tries again
        raise RuntimeError(f"{outcome.summary()}: {'; '.join(outcome.failures[:5])}")
    return outcome.summary()


@periodic("impersonations", every_minute(), "Close the support impersonations that are over")
def close_impersonations() -> str:
    from app.services import impersonation

    return counted(impersonation.close_all_finished(), "impersonation closed", "impersonations closed")


@periodic("account-purge", hourly(),
          "Deleted accounts whose purge date has come: personal data purged, once")
def purge_deleted_accounts() -> str:
    from app.services import deletion

    return counted(deletion.purge_due(), "account purged", "accounts purged")


@periodic("reconciler", every_minutes(10),
          "Adopt servers the portal lost track of, delete orphans, flag servers deleted at the cloud")
def reconcile_clouds() -> str:
    from app.providers.base import ProviderError
    from app.services import reconcile

    clouds = reconcile.clouds_in_use()
    total, unreachable = reconcile.Report(), []
    for tenant_id, provider in clouds:
        try:
            report = reconcile.reconcile(tenant_id, provider)
        except ProviderError as error:  # one cloud being down must not stop the others
            log.warning("reconcile tenant %s on %s failed: %s", tenant_id, provider, error)
            unreachable.append(f"tenant {tenant_id} on {provider}: {error}")
            continue
        total.adopted += report.adopted
        total.deleted += report.deleted
        total.missing += report.missing
    summary = (f"{counted(len(clouds), 'cloud account', 'cloud accounts')}: "
               f"{counted(len(total.adopted), 'server', 'servers')} adopted, "
               f"{counted(len(total.deleted), 'orphan', 'orphans')} deleted, "
               f"{counted(len(total.missing), 'vanished server', 'vanished servers')} flagged")
    if unreachable:  # recorded as a failure, after the others were reconciled
        raise RuntimeError(f"{summary}; not reconciled: {'; '.join(unreachable)}")
    return summary


@periodic("catalogue-operations", every_minute(),
          "Take up the catalogue's replace and retire operations that a worker left running")
def resume_catalogue_operations() -> str:
    from app.services import catalogue_lifecycle
    from app.tasks.catalogue import advance_catalogue_operation

    stalled = catalogue_lifecycle.stalled()
    for operation_id in stalled:
        advance_catalogue_operation(operation_id)
    return counted(len(stalled), "catalogue operation taken up again", "catalogue operations taken up again")


@periodic("emails", every_minute(), "Send the queued emails the queue lost (a worker that died mid-send)")
def send_lost_emails() -> str:
    from app.services import notifications

    lost = notifications.due()
    for message_id in lost:
        send_email(message_id)
    return counted(len(lost), "queued email handed to the queue again", "queued emails handed to the queue again")


@periodic("email-bodies", hourly(), "Forget the bodies of logged emails past EMAIL_BODY_RETENTION_DAYS")
def forget_email_bodies() -> str:
    from flask import current_app

    from app.services import notifications

    return counted(notifications.forget_old_bodies(current_app.config["EMAIL_BODY_RETENTION_DAYS"]),
                   "email body forgotten", "email bodies forgotten")


@periodic("deletion-ahead", hourly(),
          "Tell the owners of canceled subscriptions whose servers are deleted within 3 days (once each)")
def warn_of_deletions() -> str:
    from app.services import decommissioning

    return counted(decommissioning.warn_of_deletions(), "owner told of a deletion ahead",
                   "owners told of a deletion ahead")


@periodic("billing", hourly(),
          "Bill what is due: usage of closed periods, invoices finalized and numbered, cards charged, "
          "overdue invoices suspend and the end of grace cancels")
def run_billing() -> str:
    from app.services import billing_run

    return billing_run.run() or "nothing was due"
