"""Provisioning: bring each subscription item's server up, once, and start billing when all are delivered.

`advance(item_id, attempt)` is idempotent and is called again and again by the background worker until it
answers None. It never creates a second server: the name and labels are deterministic and the adapters
adopt a server that already carries them (a create that timed out but succeeded is found, not repeated).

Names: an item ordered with a name (`hostname`, `fqdn` set by ordering) is created at the cloud under its
FQDN, unique across tenants; items from before names were chosen get `<tenant>-s<subscription>-i<item>`.
The item's SSH keys (kept at order time) go into the cloud-init user data. When the cloud answers a root
password (Hetzner, for a server without a Hetzner key object) and the item has no key, the password is kept
sealed for its customer to see once (app/services/server_access.py); with keys it is dropped. It is never
logged. Once a server is up, its customer gets the "server ready" email, once per item.

A cancellation may come while a server is being created. Before the item starts, after the cloud answers a
create and before the item is delivered, the subscription row is locked and read again: when the
cancellation got there first, a server just made is deleted at once (it was never delivered) and nothing
more is done. States change only through `app.services.lifecycle`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import and_, exists, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from app.clock import now
from app.domain.catalogue import Provider
from app.domain.cloud_init import UserDataError, render_user_data
from app.domain.configuration import geography_key
from app.domain.notifications import Event
from app.domain.retry import MAX_ATTEMPTS, backoff_delay
from app.domain.ssh_keys import authorized_keys, server_keys
from app.domain.subscriptions import ITEM_TRANSITIONS, Action, BackorderStatus, ItemStatus, SubscriptionStatus
from app.extensions import db
from app.models import Backorder, Plan, Subscription, SubscriptionItem, Tenant, TenantLike
from app.providers.base import CloudProvider, ErrorKind, ProviderError, ServerInfo, ServerSpec
from app.services import events, lifecycle, notifications, work
from app.services.actors import Actor
from app.services.clouds import provider_for
from app.services.errors import InvalidInput
from app.services.secrets import seal
from app.services.work import Job

log = logging.getLogger(__name__)

PROVISIONING = Actor.system("provisioning")
POLL_SECONDS = 2.0
PROVISION_TIMEOUT = timedelta(minutes=20)
LABEL_PREFIX = "portal"
TENANT_LABEL = f"{LABEL_PREFIX}-tenant"
ITEM_LABEL = f"{LABEL_PREFIX}-item"
# For service types whose schema leaves the image out.
DEFAULT_IMAGES = {Provider.HETZNER: "ubuntu-24.04", Provider.DIGITALOCEAN: "ubuntu-24-04-x64"}


@dataclass(frozen=True)
class Next:
    """Call `advance` again after `delay` seconds with `attempt` (errors count, polls do not)."""

    delay: float
    attempt: int


def server_spec(item: SubscriptionItem, tenant: TenantLike, dns_base_domain: str) -> ServerSpec:
    """The deterministic name and labels that tie a server to its item, whoever creates it and how often.

    Raises UserDataError when the service type's cloud-init template cannot be rendered within the limit.
    """
    service_type = item.subscription.plan.service_type
    config = item.config
    name, fqdn = names_of(item, tenant, dns_base_domain)
    return ServerSpec(
        name=fqdn if item.fqdn else name,
        server_type=config["serverType"],
        location=config.get(geography_key(service_type.config_schema) or "location", ""),
        image=image_of(item),
        user_data=user_data(item, tenant, dns_base_domain),
        labels=server_labels(tenant, item),
    )


def names_of(item: SubscriptionItem, tenant: TenantLike, dns_base_domain: str) -> tuple[str, str]:
    """The server's name and FQDN: as ordered, or for items from before names were chosen, made up here."""
    if item.hostname and item.fqdn:
        return item.hostname, item.fqdn
    name = hostname(item, tenant)
    return name, f"{name}.{dns_base_domain}"


def image_of(item: SubscriptionItem) -> str:
    return item.config.get("image") or DEFAULT_IMAGES.get(item.provider, "")


def user_data(item: SubscriptionItem, tenant: TenantLike, dns_base_domain: str) -> str:
    """The service type's cloud-init for this server, with the item's SSH keys. Raises UserDataError."""
    name, fqdn = names_of(item, tenant, dns_base_domain)
    return render_user_data(item.subscription.plan.service_type.cloud_init_template, hostname=name, fqdn=fqdn,
                            item_id=item.id, subscription_id=item.subscription_id, tenant=tenant.slug,
                            ssh_keys=authorized_keys(item.config))


def server_labels(tenant: TenantLike, item: SubscriptionItem) -> dict[str, str]:
    return {TENANT_LABEL: tenant.slug, ITEM_LABEL: str(item.id),
            f"{LABEL_PREFIX}-subscription": str(item.subscription_id)}


def hostname(item: SubscriptionItem, tenant: TenantLike) -> str:
    return f"{tenant.slug}-s{item.subscription_id}-i{item.id}"[:63]


def advance(item_id: int, attempt: int = 1, *, dns_base_domain: str) -> Next | None:
    """Move one item one step towards active. Returns when to call again, or None when settled."""
    item = _load(item_id)
    if item is None or _settled(item):
        return None
    tenant = db.session.get(Tenant, item.tenant_id)
    assert tenant is not None
    try:
        if item.server_id is None:
            return _create(item, tenant, dns_base_domain, attempt)
        return _poll(item, tenant, attempt)
    except ProviderError as error:
        return _on_error(item, error, attempt)


def _load(item_id: int) -> SubscriptionItem | None:
    return db.session.scalar(
        select(SubscriptionItem).where(SubscriptionItem.id == item_id)
        .options(selectinload(SubscriptionItem.subscription).selectinload(Subscription.plan)
                 .selectinload(Plan.service_type))
    )


def _settled(item: SubscriptionItem) -> bool:
    status = item.subscription.status
    if status is SubscriptionStatus.CANCELED or item.status not in (ItemStatus.PENDING, ItemStatus.PROVISIONING):
        return True
    return status is SubscriptionStatus.PENDING_BACKORDER and _waiting_backorder(item.subscription) is not None


def _waiting_backorder(subscription: Subscription) -> Backorder | None:
    return db.session.scalar(select(Backorder).where(Backorder.subscription_id == subscription.id,
                                                     Backorder.status == BackorderStatus.WAITING))


def _create(item: SubscriptionItem, tenant: TenantLike, dns_base_domain: str, attempt: int) -> Next | None:
    if item.status is ItemStatus.PENDING:
        if not _lock(item):  # canceled since it was read
            db.session.rollback()
            return None
        _move(item, ItemStatus.PROVISIONING, "provisioning_started")
        db.session.commit()
    try:
        spec = server_spec(item, tenant, dns_base_domain)
    except UserDataError as error:
        return _fail(item, "This server cannot be set up because of a configuration problem on our side. "
                           "Our staff have been told.", staff_note=error.args[0])
    cloud = provider_for(tenant, item.provider)
    info = cloud.create_server(spec)
    if not _lock(item):
        return _settled_meanwhile(cloud, item, tenant, info)
    item.server_id = info.server_id
    item.hostname, item.fqdn = names_of(item, tenant, dns_base_domain)
    if info.root_password and not authorized_keys(item.config):
        item.root_password_sealed = seal(info.root_password)  # for its customer's eyes, once
    _copy_addresses(item, info)
    events.record(item.subscription, "server_created", actor=PROVISIONING, item=item, server_id=info.server_id,
                  server_type=spec.server_type, location=spec.location)
    if info.ready:
        return _finish(item)  # still under the lock: a cancellation cannot slip in before the delivery
    db.session.commit()
    return Next(POLL_SECONDS, attempt)


def _lock(item: SubscriptionItem) -> bool:
    """Lock the item's subscription and read both afresh: False when a cancellation (or anyone) settled it."""
    db.session.scalar(select(Subscription).where(Subscription.id == item.subscription_id).with_for_update()
                      .execution_options(populate_existing=True))
    db.session.refresh(item)
    return (item.subscription.status is not SubscriptionStatus.CANCELED
            and item.status in (ItemStatus.PENDING, ItemStatus.PROVISIONING))


def _settled_meanwhile(cloud: CloudProvider, item: SubscriptionItem, tenant: TenantLike, info: ServerInfo) -> None:
    """The item moved on while its server was being created.

    If the cancellation won the race, the server was never delivered, so it goes at once. Its id is written
    first, so a worker dying before the delete leaves a trace the sweeper and the reconciler follow. If
    another worker delivered it first (or failed it), this one has nothing more to do.
    """
    if item.subscription.status is not SubscriptionStatus.CANCELED or delivered(item):
        db.session.commit()  # nothing changed here: just end the transaction and its lock
        return None
    log.info("item %s: canceled while its server %s was created; deleting it", item.id, info.server_id)
    if item.server_id is None:
        item.server_id = info.server_id
    events.record(item.subscription, "server_created", actor=PROVISIONING, item=item, server_id=info.server_id,
                  reason="The order was canceled while the server was being created.")
    db.session.commit()
    deleted = delete_servers(cloud, item, tenant)
    if item.status is not ItemStatus.DECOMMISSIONED:
        if ItemStatus.DECOMMISSIONED not in ITEM_TRANSITIONS[item.status]:
            _move(item, ItemStatus.DECOMMISSIONING, "decommissioning_started")
        lifecycle.move_item(item, ItemStatus.DECOMMISSIONED, "server_deleted", actor=PROVISIONING,
                            reason="The order was canceled before the server was delivered.", server_ids=deleted)
    db.session.commit()
    return None


def delivered(item: SubscriptionItem) -> bool:
    """Whether the item's server came up for the customer (kept through retention) or never did (deleted at once).

    Items delivered before `ready_at` was recorded count by their subscription's activation.
    """
    return item.ready_at is not None or item.subscription.activated_at is not None


def delete_servers(cloud: CloudProvider, item: SubscriptionItem, tenant: TenantLike) -> list[str]:
    """Delete every server made for `item`: the one recorded and any other carrying its labels (a create
    whose answer was lost). Servers already gone are fine. Returns the ids asked to be deleted."""
    ids = [server.server_id for server in cloud.managed_servers(ITEM_LABEL, str(item.id))
           if server.labels.get(TENANT_LABEL) == tenant.slug]
    if item.server_id and item.server_id not in ids:
        ids.insert(0, item.server_id)
    for server_id in ids:
        cloud.delete_server(server_id)
    return ids


def _poll(item: SubscriptionItem, tenant: TenantLike, attempt: int) -> Next | None:
    info = provider_for(tenant, item.provider).server_info(item.server_id or "")
    if not _lock(item):  # canceled meanwhile: decommissioning deletes the server
        db.session.rollback()
        return None
    _copy_addresses(item, info)
    if info.ready:
        return _finish(item)
    if now() - (info.created_at or item.created_at) > PROVISION_TIMEOUT:  # from the server's creation, not the order
        return _fail(item, "The server did not come up in time. Our staff have been told.")
    db.session.commit()
    return Next(POLL_SECONDS, attempt)


def _copy_addresses(item: SubscriptionItem, info: ServerInfo) -> None:
    item.ipv4 = info.ipv4
    item.ipv6 = info.ipv6
    item.server_type_actual = info.server_type or item.server_type_actual  # what resizing compares against


def _finish(item: SubscriptionItem) -> None:
    _move(item, ItemStatus.ACTIVE, "server_ready")
    _tell_ready(item)
    subscription = item.subscription
    if all(other.status is ItemStatus.ACTIVE for other in subscription.items):
        start_billing(subscription)
    db.session.commit()
    return None


def _tell_ready(item: SubscriptionItem) -> None:
    """The "server ready" email, with how to log in, in the transaction that delivers the server (sent after it
    commits). An email that cannot be made is logged for the staff and never holds the server back."""
    subscription = item.subscription
    try:
        with db.session.begin_nested():
            notifications.notify(Event.SERVER_READY, user=subscription.user, subscription=subscription, item=item,
                                 keys=server_keys(item.config), password_waiting=item.root_password_sealed is not None)
    except Exception:
        log.exception("item %s: the server-ready email could not be made", item.id)


def start_billing(subscription: Subscription) -> None:
    """The service is delivered: the subscription becomes active and its first period is charged, once."""
    action = Action.PROVISIONED if subscription.status is SubscriptionStatus.PENDING_BACKORDER else Action.ACTIVATE
    try:
        lifecycle.apply(subscription, action, actor=PROVISIONING, event="activated")
    except InvalidInput:
        return  # already active (another worker finished the last item first)


def _on_error(item: SubscriptionItem, error: ProviderError, attempt: int) -> Next | None:
    db.session.rollback()
    item = _load(item.id) or item
    log.warning("provisioning item %s: %s (attempt %s)", item.id, error, attempt)
    if item.subscription.status is SubscriptionStatus.CANCELED:
        return _after_cancellation(item)
    if error.kind is ErrorKind.UNAVAILABLE:
        return _sold_out(item, error)
    if error.retryable and attempt < MAX_ATTEMPTS:
        events.record(item.subscription, "provisioning_retry", actor=PROVISIONING, item=item, attempt=attempt,
                      error=error.message)
        db.session.commit()
        return Next(backoff_delay(attempt, retry_after=error.retry_after), attempt + 1)
    if error.retryable:
        return _fail(item, "The cloud kept failing; we stopped trying. Our staff have been told.")
    return _fail(item, f"The cloud refused to create the server: {error.message}")


def _after_cancellation(item: SubscriptionItem) -> None:
    """A cloud error after the order was canceled: decommissioning (and the reconciler) clean up, not us."""
    if item.status is ItemStatus.DECOMMISSIONING:
        work.later(Job.DECOMMISSION_ITEM, item.id)
        db.session.commit()
    return None


def _sold_out(item: SubscriptionItem, error: ProviderError) -> None:
    subscription = item.subscription
    if subscription.status is SubscriptionStatus.PENDING_BACKORDER:
        return _back_in_queue(item, error)
    if not subscription.auto_backorder or subscription.status is not SubscriptionStatus.PENDING_FULFILLMENT:
        return _fail(item, "This configuration sold out before your server could be created. "
                           "Cancel this order and choose an alternative, or order again with backorder.")
    lifecycle.apply(subscription, Action.BACKORDER, actor=PROVISIONING, reason=error.message, event="backordered")
    if item.status is ItemStatus.PROVISIONING and item.server_id is None:
        _move(item, ItemStatus.PENDING, "waiting_for_capacity", reason=error.message)
    spec_location = item.config.get(geography_key(subscription.plan.service_type.config_schema) or "location", "")
    db.session.add(Backorder(tenant_id=subscription.tenant_id, subscription_id=subscription.id,
                             provider=item.provider, server_type=item.config["serverType"],
                             location=spec_location, status=BackorderStatus.WAITING, created_at=now()))
    try:
        db.session.commit()
    except IntegrityError:  # already in the queue
        db.session.rollback()
    return None


def _back_in_queue(item: SubscriptionItem, error: ProviderError) -> None:
    """Capacity went again before this backorder's server was made: it waits again, keeping its place."""
    backorder = db.session.scalar(select(Backorder).where(Backorder.subscription_id == item.subscription_id))
    if backorder is not None and backorder.status is BackorderStatus.FULFILLED:
        lifecycle.move_backorder(backorder, BackorderStatus.WAITING)
    if item.status is ItemStatus.PROVISIONING and item.server_id is None:
        _move(item, ItemStatus.PENDING, "backorder_requeued", reason=error.message)
    else:
        events.record(item.subscription, "backorder_requeued", actor=PROVISIONING, item=item, reason=error.message)
    db.session.commit()
    return None


def _fail(item: SubscriptionItem, message: str, staff_note: str = "") -> None:
    item.error_message = message
    _move(item, ItemStatus.FAILED, "provisioning_failed", reason=message, staff_note=staff_note)
    db.session.commit()
    return None


def _move(item: SubscriptionItem, target: ItemStatus, kind: str, reason: str = "", **data: object) -> None:
    lifecycle.move_item(item, target, kind, actor=PROVISIONING, reason=reason, **data)


STUCK_AFTER = timedelta(minutes=2)


def unsettled_items(limit: int = 200) -> list[int]:
    """Items left pending or provisioning with no progress for a while (a worker died): to be advanced again."""
    rows = db.session.scalars(
        select(SubscriptionItem.id)
        .join(SubscriptionItem.subscription)
        .where(SubscriptionItem.status.in_((ItemStatus.PENDING, ItemStatus.PROVISIONING)),
               SubscriptionItem.updated_at < now() - STUCK_AFTER,
               or_(Subscription.status == SubscriptionStatus.PENDING_FULFILLMENT,
                   and_(Subscription.status == SubscriptionStatus.PENDING_BACKORDER,
                        ~exists().where(Backorder.subscription_id == Subscription.id,
                                        Backorder.status == BackorderStatus.WAITING))))
        .order_by(SubscriptionItem.id).limit(limit)
    )
    return list(rows)
