"""The end of a server's life at the cloud once its subscription is canceled (DESIGN.md, "End of life").

Each entry point is safe to run again at any moment, also after a worker died between any two of its steps:

- `advance(item_id, attempt)` takes a `decommissioning` item one step further; the worker calls it again with
  the `Next` it returns until it answers None. A server never delivered (canceled while it was being made) is
  deleted at once, with every other server carrying the item's labels, and the item is `decommissioned`. A
  delivered server is shut down gracefully, polled until it is off, powered off hard when the guest has not
  shut down within SHUTDOWN_TIMEOUT, and then kept, off, until the retention period ends (`powered_off_at`).
  A server the cloud no longer knows ends the item.
- `delete_due()`, the retention job, deletes the servers of every canceled subscription whose
  `servers_delete_at` has passed and then purges its personal and provisioning data, exactly once, and tells
  its owner (DELETION_DONE).
- `warn_of_deletions()` emails the owner of each canceled subscription whose servers are deleted within
  DELETION_WARNING, once per subscription (DELETION_AHEAD).
- `stalled()`, the decommissioning sweeper, finds the items whose worker died between steps, to queue again.

Writes lock the subscription row first, as every lifecycle change does, and read the item again.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import exists, select, update
from sqlalchemy.orm import selectinload
from sqlalchemy.orm.exc import StaleDataError

from app.clock import now
from app.domain.catalogue import Provider
from app.domain.notifications import Event
from app.domain.retry import MAX_ATTEMPTS, backoff_delay
from app.domain.subscriptions import ITEM_TRANSITIONS, ItemStatus, SubscriptionStatus
from app.extensions import db
from app.models import EmailMessage, Subscription, SubscriptionEvent, SubscriptionItem, Tenant, TenantLike
from app.providers.base import CloudProvider, ErrorKind, PowerState, ProviderError
from app.services import events, lifecycle
from app.services.actors import Actor
from app.services.clouds import provider_for
from app.services.notifications import notify
from app.services.provisioning import Next, delete_servers, delivered

log = logging.getLogger(__name__)

DECOMMISSIONING = Actor.system("decommissioning")
RETENTION = Actor.system("retention")
POLL_SECONDS = 5.0
SHUTDOWN_TIMEOUT = timedelta(minutes=2)  # from `shutdown_at`: then the power is cut
GIVE_UP_AFTER = timedelta(minutes=15)  # from `shutdown_at`: stop polling; the sweeper starts over later
STALLED_AFTER = timedelta(minutes=5)
DELETION_WARNING = timedelta(days=3)  # how long before the deletion its owner is told (once)


# --- advance: one item, step by step ------------------------------------------------------------------------

def advance(item_id: int, attempt: int = 1) -> Next | None:
    """Move one `decommissioning` item one step on. Returns when to call again, or None when there is no more
    to do now (deleted, off and waiting for retention, or left to the sweeper after repeated cloud errors)."""
    item = _load(item_id)
    if item is None or item.status is not ItemStatus.DECOMMISSIONING:
        return None
    if item.provider is Provider.NONE or (delivered(item) and not item.server_id):
        return _end(item, "server_deleted", DECOMMISSIONING, "There was no server to shut down.")
    if delivered(item) and item.powered_off_at is not None:
        return None  # off: it waits for the retention job
    tenant = db.session.get(Tenant, item.tenant_id)
    assert tenant is not None
    try:
        cloud = provider_for(tenant, item.provider)
        if not delivered(item):
            return _delete_undelivered(cloud, item, tenant)
        return _shut_down(cloud, item, attempt)
    except ProviderError as error:
        return _on_error(item_id, error, attempt)


def _load(item_id: int) -> SubscriptionItem | None:
    return db.session.scalar(select(SubscriptionItem).where(SubscriptionItem.id == item_id)
                             .options(selectinload(SubscriptionItem.subscription)))


def _locked(item: SubscriptionItem) -> bool:
    """Lock the item's subscription, read the item again: is it still decommissioning?"""
    db.session.scalar(select(Subscription).where(Subscription.id == item.subscription_id).with_for_update()
                      .execution_options(populate_existing=True))
    db.session.refresh(item)
    return item.status is ItemStatus.DECOMMISSIONING


def _delete_undelivered(cloud: CloudProvider, item: SubscriptionItem, tenant: TenantLike) -> None:
    deleted = delete_servers(cloud, item, tenant)
    return _end(item, "server_deleted", DECOMMISSIONING, "The order was canceled before the server was delivered.",
                server_ids=deleted)


def _shut_down(cloud: CloudProvider, item: SubscriptionItem, attempt: int) -> Next | None:
    server_id = item.server_id or ""
    info = cloud.server_info(server_id)
    if info.power is PowerState.OFF and info.action is None:
        return _off(item)
    if item.shutdown_at is None:
        if info.action is not None:  # a boot or a customer's action still runs: the shutdown would be refused
            return _wait(item, attempt)
        action = cloud.shutdown(server_id)
        if not _locked(item):
            return _done()
        item.shutdown_at = now()
        events.record(item.subscription, "server_shutdown", actor=DECOMMISSIONING, item=item, server_id=server_id,
                      action_id=action.id, reason="The subscription ended: the server is being shut down.")
        db.session.commit()
        return Next(POLL_SECONDS, attempt)
    waited = now() - item.shutdown_at
    if waited > GIVE_UP_AFTER:
        return _start_over(item, waited)
    if waited < SHUTDOWN_TIMEOUT or info.action is not None:
        return _wait(item, attempt)
    action = cloud.power_off(server_id)
    events.record(item.subscription, "server_forced_off", actor=DECOMMISSIONING, item=item, server_id=server_id,
                  action_id=action.id, reason=f"The server did not shut down within "
                                              f"{int(SHUTDOWN_TIMEOUT.total_seconds() // 60)} minutes; "
                                              "its power was cut.")
    db.session.commit()
    return Next(POLL_SECONDS, attempt)


def _start_over(item: SubscriptionItem, waited: timedelta) -> None:
    """Still not off long after the power was cut: stop polling; the sweeper starts the shutdown again later."""
    log.warning("item %s: server %s still not off %s after its shutdown; starting over later", item.id,
                item.server_id, waited)
    if _locked(item):
        item.shutdown_at = None
    db.session.commit()
    return None


def _wait(item: SubscriptionItem, attempt: int) -> Next:
    item.updated_at = now()  # alive: the sweeper leaves it alone
    db.session.commit()
    return Next(POLL_SECONDS, attempt)


def _off(item: SubscriptionItem) -> None:
    if not _locked(item):
        return _done()
    if item.powered_off_at is None:
        item.powered_off_at = now()
        delete_at = item.subscription.servers_delete_at
        events.record(item.subscription, "server_off", actor=DECOMMISSIONING, item=item, server_id=item.server_id,
                      delete_at=delete_at.isoformat() if delete_at else None,
                      reason="The server is off. It is kept until the retention period ends, then deleted.")
    db.session.commit()
    return None


def _done() -> None:
    db.session.rollback()
    return None


def _end(item: SubscriptionItem, kind: str, actor: Actor, reason: str, **data: object) -> None:
    """The item is done (its servers are gone): `decommissioned`, if nobody got there first."""
    if _locked(item):
        lifecycle.move_item(item, ItemStatus.DECOMMISSIONED, kind, actor=actor, reason=reason, **data)
    db.session.commit()
    return None


def _on_error(item_id: int, error: ProviderError, attempt: int) -> Next | None:
    db.session.rollback()
    item = _load(item_id)
    if item is None or item.status is not ItemStatus.DECOMMISSIONING:
        return None
    if error.kind is ErrorKind.NOT_FOUND:
        return _end(item, "server_gone", DECOMMISSIONING, "The server no longer existed at the cloud.",
                    server_id=item.server_id)
    if error.retryable and attempt < MAX_ATTEMPTS:
        log.info("decommissioning item %s: %s (attempt %s), retrying", item_id, error, attempt)
        return Next(backoff_delay(attempt, retry_after=error.retry_after), attempt + 1)
    log.warning("decommissioning item %s: %s (attempt %s); left for the sweeper", item_id, error, attempt)
    return None


# --- stalled: the sweeper ------------------------------------------------------------------------------------

def stalled(limit: int = 200) -> list[int]:
    """Items still being decommissioned (not yet off, or never delivered) with no progress for STALLED_AFTER:
    their worker died or gave up. To be queued again as `Job.DECOMMISSION_ITEM`."""
    return list(db.session.scalars(
        select(SubscriptionItem.id)
        .where(SubscriptionItem.status == ItemStatus.DECOMMISSIONING, SubscriptionItem.powered_off_at.is_(None),
               SubscriptionItem.updated_at < now() - STALLED_AFTER)
        .order_by(SubscriptionItem.id).limit(limit)
    ))


# --- delete_due: the retention job ---------------------------------------------------------------------------

def delete_due(limit: int = 100, *, failures: list[str] | None = None) -> int:
    """Delete the servers of every canceled subscription whose retention has ended, then purge it, once.

    Each subscription is locked (others skip it) and handled in its own transaction. A cloud error leaves
    it, unpurged, for the next run; a purged subscription is never touched again. Returns how many were
    purged; those left for the next run are added to `failures` (when given) with the reason.
    """
    ids = db.session.scalars(select(Subscription.id).where(*_due()).order_by(Subscription.servers_delete_at)
                             .limit(limit)).all()
    db.session.rollback()  # end the read; each subscription gets a transaction of its own
    return sum(_retire(subscription_id, failures) for subscription_id in ids)


def _due() -> tuple[object, ...]:
    return (Subscription.status == SubscriptionStatus.CANCELED, Subscription.servers_delete_at <= now(),
            Subscription.purged_at.is_(None))


def _retire(subscription_id: int, failures: list[str] | None) -> int:
    subscription = db.session.scalar(select(Subscription).where(Subscription.id == subscription_id, *_due())
                                     .with_for_update(skip_locked=True))
    if subscription is None:  # purged, extended, or another worker has it
        db.session.rollback()
        return 0
    try:
        for item in subscription.items:
            _delete_for_good(item)
    except ProviderError as error:
        db.session.rollback()
        log.warning("retention of subscription %s: %s; trying again on the next run", subscription_id, error)
        if failures is not None:
            failures.append(f"subscription {subscription_id}: {error.message}")
        return 0
    _purge(subscription)
    try:
        if subscription.activated_at is not None:  # servers were delivered: tell their owner they are gone
            notify(Event.DELETION_DONE, user=subscription.user, subscription=subscription)
        db.session.commit()
    except StaleDataError:  # changed under us (SQLite has no row locks): the next run sees it afresh
        db.session.rollback()
        return 0
    log.info("subscription %s: servers deleted and data purged", subscription_id)
    return 1


def _delete_for_good(item: SubscriptionItem) -> None:
    """Every server of the item deleted at the cloud (however it ended before), and the item decommissioned."""
    deleted: list[str] = []
    if item.provider is not Provider.NONE:
        tenant = db.session.get(Tenant, item.tenant_id)
        assert tenant is not None
        deleted = delete_servers(provider_for(tenant, item.provider), item, tenant)
    reason = "The retention period ended: the server was deleted."
    if item.status is ItemStatus.DECOMMISSIONED:
        if deleted:  # a leftover (a create that finished after the item ended)
            events.record(item.subscription, "server_deleted", actor=RETENTION, item=item, reason=reason,
                          server_ids=deleted)
        return
    if ItemStatus.DECOMMISSIONED not in ITEM_TRANSITIONS[item.status]:
        lifecycle.move_item(item, ItemStatus.DECOMMISSIONING, "decommissioning_started", actor=RETENTION)
    lifecycle.move_item(item, ItemStatus.DECOMMISSIONED, "server_deleted", actor=RETENTION, reason=reason,
                        server_ids=deleted)


def _purge(subscription: Subscription) -> None:
    """Forget what identifies the customer and their servers; keep the history's rows and kinds, and the
    charges (legal records)."""
    for item in subscription.items:
        item.hostname = item.fqdn = item.ipv4 = item.ipv6 = item.error_message = item.root_password_sealed = None
        item.config = {}  # its SSH keys too
    subscription.requested_config = {}
    subscription.idempotency_key = None
    db.session.execute(
        update(SubscriptionEvent)
        .where(SubscriptionEvent.subscription_id == subscription.id,
               SubscriptionEvent.actor_id == subscription.user_id, SubscriptionEvent.reason != "")
        .values(reason="")
    )
    subscription.purged_at = now()
    events.record(subscription, "purged", actor=RETENTION,
                  reason="The retention period ended: the servers were deleted and the subscription's personal "
                         "and provisioning data removed.")


# --- warn_of_deletions: the owner is told ahead ---------------------------------------------------------------

def warn_of_deletions(limit: int = 500) -> int:
    """Email the owner of every canceled subscription whose kept servers are deleted within DELETION_WARNING,
    exactly once per subscription, however often this runs and on however many workers: each subscription is
    locked (others skip it) and checked again for the email in the email log, in the transaction that adds it.
    Returns how many were told."""
    ids = db.session.scalars(select(Subscription.id).where(*_to_warn()).order_by(Subscription.servers_delete_at)
                             .limit(limit)).all()
    db.session.rollback()  # end the read; each subscription gets a transaction of its own
    return sum(_warn(subscription_id) for subscription_id in ids)


def _to_warn() -> tuple[object, ...]:
    moment = now()
    warned = exists().where(  # by tenant and user first: the email log's index holds those
        EmailMessage.tenant_id == Subscription.tenant_id, EmailMessage.user_id == Subscription.user_id,
        EmailMessage.subscription_id == Subscription.id, EmailMessage.event == Event.DELETION_AHEAD.value)
    kept = exists().where(SubscriptionItem.subscription_id == Subscription.id,
                          SubscriptionItem.status == ItemStatus.DECOMMISSIONING)
    return (Subscription.status == SubscriptionStatus.CANCELED, Subscription.servers_delete_at > moment,
            Subscription.servers_delete_at <= moment + DELETION_WARNING, Subscription.purged_at.is_(None),
            Subscription.activated_at.is_not(None), kept, ~warned)


def _warn(subscription_id: int) -> int:
    subscription = db.session.scalar(select(Subscription).where(Subscription.id == subscription_id, *_to_warn())
                                     .with_for_update(skip_locked=True))
    if subscription is None:  # told already, extended, purged, or another worker has it
        db.session.rollback()
        return 0
    servers = [item.hostname or f"Server {item.id}" for item in subscription.items
               if item.status is ItemStatus.DECOMMISSIONING]
    notify(Event.DELETION_AHEAD, user=subscription.user, subscription=subscription, servers=servers,
           delete_at=subscription.servers_delete_at)
    db.session.commit()
    return 1
