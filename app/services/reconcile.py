"""Reconciliation: the portal's records and the clouds agree, and no server is ever lost or left behind.

For each tenant and cloud in use, the servers carrying the tenant's label are compared with the items their
labels name:
- a server made for an item that never learned of it (the worker died between the cloud's answer and the
  commit) is adopted by the item, unless the item's subscription is canceled (nothing is brought back to life);
- a server whose subscription is over is deleted at once: its item is decommissioned, or it was never
  delivered before the cancellation, or the retention period (`servers_delete_at`) has passed. A delivered
  server of a canceled subscription is kept, off, until then;
- a server no live item owns is deleted, once it is old enough that no create can still be committing;
- an active item whose server is gone (deleted in the cloud's console) is marked failed for staff to see,
  and it is no longer billed as a running server.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from app.clock import now
from app.domain.catalogue import Provider
from app.domain.subscriptions import ItemStatus, SubscriptionStatus
from app.extensions import db
from app.models import Subscription, SubscriptionItem, Tenant
from app.providers.base import CloudProvider, ErrorKind, ProviderError, ServerInfo
from app.services import events, lifecycle
from app.services.actors import Actor
from app.services.clouds import provider_for
from app.services.provisioning import ITEM_LABEL, TENANT_LABEL, delivered

log = logging.getLogger(__name__)

RECONCILER = Actor.system("reconciler")
ORPHAN_GRACE = timedelta(minutes=10)
LIVE = (ItemStatus.PENDING, ItemStatus.PROVISIONING, ItemStatus.ACTIVE)
MISSING = "The server was deleted outside the portal. Our staff have been told."


@dataclass
class Report:
    adopted: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    missing: list[int] = field(default_factory=list)


def clouds_in_use() -> list[tuple[int, Provider]]:
    """Every (tenant, cloud) that has items, to reconcile one by one."""
    rows = db.session.execute(select(SubscriptionItem.tenant_id, SubscriptionItem.provider).distinct()).all()
    return [(tenant_id, provider) for tenant_id, provider in rows if provider is not Provider.NONE]


def reconcile(tenant_id: int, provider: Provider) -> Report:
    """Compare one tenant's servers at one cloud with its items, and repair what differs."""
    tenant = db.session.get(Tenant, tenant_id)
    if tenant is None:
        return Report()
    cloud = provider_for(tenant, provider)
    servers = cloud.managed_servers(TENANT_LABEL, tenant.slug)
    items = _items_named(tenant_id, provider, servers)
    report = Report()
    for server in servers:
        _check_server(cloud, server, items, report)
    present = {server.server_id for server in servers}
    for item in _active_items(tenant_id, provider):
        if item.server_id and item.server_id not in present:
            _check_missing(cloud, item, report)
    db.session.commit()
    if report.adopted or report.deleted or report.missing:
        log.warning("reconciled tenant %s on %s: %s", tenant.slug, provider, report)
    return report


def _items_named(tenant_id: int, provider: Provider, servers: list[ServerInfo]) -> dict[int, SubscriptionItem]:
    """The tenant's items that the servers' labels name, whatever their status."""
    ids = {int(label) for server in servers if (label := server.labels.get(ITEM_LABEL, "")).isdigit()}
    if not ids:
        return {}
    rows = db.session.scalars(
        select(SubscriptionItem)
        .where(SubscriptionItem.tenant_id == tenant_id, SubscriptionItem.provider == provider,
               SubscriptionItem.id.in_(ids))
        .options(selectinload(SubscriptionItem.subscription).selectinload(Subscription.plan))
    )
    return {item.id: item for item in rows}


def _active_items(tenant_id: int, provider: Provider) -> list[SubscriptionItem]:
    return list(db.session.scalars(
        select(SubscriptionItem)
        .where(SubscriptionItem.tenant_id == tenant_id, SubscriptionItem.provider == provider,
               SubscriptionItem.status == ItemStatus.ACTIVE)
        .options(selectinload(SubscriptionItem.subscription))
    ))


def _check_server(cloud: CloudProvider, server: ServerInfo, items: dict[int, SubscriptionItem],
                  report: Report) -> None:
    label = server.labels.get(ITEM_LABEL, "")
    item = items.get(int(label)) if label.isdigit() else None
    if item is None:
        return _delete_orphan(cloud, server, report)
    if _over(item):  # known to be over: no create of it can still be committing
        return _delete(cloud, server, report)
    if item.server_id not in (None, server.server_id):  # a second server for the item
        return _delete_orphan(cloud, server, report)
    if item.subscription.status is SubscriptionStatus.CANCELED:
        return None  # delivered and kept, off, until its retention ends; never adopted back into life
    if item.status in LIVE:
        if item.server_id is None:
            _adopt(item, server, report)
        return None
    return _delete_orphan(cloud, server, report)  # a failed item's server


def _over(item: SubscriptionItem) -> bool:
    """The item's server must go now: the item ended, or its subscription is canceled and the server was
    never delivered or its retention has passed."""
    if item.status is ItemStatus.DECOMMISSIONED:
        return True
    subscription = item.subscription
    if subscription.status is not SubscriptionStatus.CANCELED:
        return False
    delete_at = subscription.servers_delete_at
    return not delivered(item) or (delete_at is not None and delete_at <= now())


def _delete_orphan(cloud: CloudProvider, server: ServerInfo, report: Report) -> None:
    if server.created_at is not None and now() - server.created_at < ORPHAN_GRACE:
        return  # its create may still be committing
    _delete(cloud, server, report)


def _delete(cloud: CloudProvider, server: ServerInfo, report: Report) -> None:
    cloud.delete_server(server.server_id)
    report.deleted.append(server.server_id)


def _adopt(item: SubscriptionItem, server: ServerInfo, report: Report) -> None:
    item.server_id = server.server_id
    item.ipv4, item.ipv6 = server.ipv4, server.ipv6
    events.record(item.subscription, "server_adopted", actor=RECONCILER, item=item, server_id=server.server_id,
                  reason="The server existed at the cloud but the portal had not recorded it.")
    report.adopted.append(server.server_id)


def _check_missing(cloud: CloudProvider, item: SubscriptionItem, report: Report) -> None:
    try:
        cloud.server_info(item.server_id or "")
        return  # a listing can lag; the server is there
    except ProviderError as error:
        if error.kind is not ErrorKind.NOT_FOUND:
            return
    item.error_message = MISSING
    lifecycle.move_item(item, ItemStatus.FAILED, "server_missing", actor=RECONCILER, reason=MISSING,
                        server_id=item.server_id)
    report.missing.append(item.id)
