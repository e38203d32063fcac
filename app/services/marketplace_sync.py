"""Polling the marketplaces: every subscription's state as the marketplace has it, and the lifecycle brought in line.

STACKIT has no webhooks: its vendor API is the source of truth and is to be polled. Microsoft has webhooks, and
one that was missed (the portal down, a deploy) is caught up the same way. `sync` reads every page of the
tenant's subscriptions at the marketplace (cursor pages) and, for each one the portal knows:

- refreshes what the marketplace says (raw state, state, plan, quantity, synced_at): rows that did not change
  are touched in one statement per page;
- applies `app.domain.marketplaces.sync_action` to the portal subscription it runs, through the lifecycle service,
  as the marketplace (`Actor.marketplace(name)`): cancelling schedules the cancellation, cancelled or rejected
  ends it (its servers kept for the retention period), inactive suspends it, active again reinstates it;
- leaves a retired row's portal subscription alone (a plan change linked it to a newer subscription id).

A pending subscription the portal does not know (a new subscription id after a STACKIT plan change, a customer
who never came back from the marketplace) is recorded so the tenant's admins see it. Every change and every
failure is a line in the operations log, with its timing; an unchanged subscription is not.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flask import current_app
from sqlalchemy import Row, select, update
from sqlalchemy.exc import IntegrityError

from app.clock import now
from app.domain.marketplaces import ExternalState, Marketplace, sync_action
from app.extensions import db
from app.models import (
    MarketplaceConnection,
    MarketplacePlanMapping,
    MarketplaceSubscription,
    Subscription,
    Tenant,
    TenantLike,
)
from app.providers.marketplaces.base import ExternalSubscription, MarketplaceAdapter, MarketplaceError
from app.services import lifecycle, marketplace_connections, marketplaces
from app.services.actors import Actor
from app.services.errors import ServiceError

log = logging.getLogger(__name__)

def counted(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


MAX_PAGES = 10_000  # a cursor that never ends is the marketplace's bug, not a reason to poll forever


@dataclass
class Outcome:
    """What one poll of one marketplace found."""

    seen: int = 0
    changed: int = 0  # rows whose state, plan or quantity changed
    applied: int = 0  # lifecycle actions applied
    discovered: int = 0  # pending subscriptions the portal did not know
    failures: list[str] = field(default_factory=list)

    def add(self, other: Outcome) -> None:
        self.seen += other.seen
        self.changed += other.changed
        self.applied += other.applied
        self.discovered += other.discovered
        self.failures += other.failures

    def summary(self) -> str:
        text = (f"{counted(self.seen, 'marketplace subscription read', 'marketplace subscriptions read')}, "
                f"{self.changed} changed, {counted(self.applied, 'lifecycle action', 'lifecycle actions')} applied, "
                f"{self.discovered} new pending")
        return text + (f"; {len(self.failures)} failed" if self.failures else "")


def sync(tenant: TenantLike, marketplace: Marketplace, *, as_of: datetime | None = None,
         adapter: MarketplaceAdapter | None = None) -> Outcome:
    """Bring the tenant's subscriptions bought on `marketplace` in line with what it says now (committed per page
    and per change). `as_of` is the moment recorded as synced (the job's clock by default)."""
    outcome = Outcome()
    started = time.monotonic()
    try:
        adapter = adapter or marketplace_connections.adapter_for(tenant, marketplace)
    except MarketplaceError as error:
        return _failed(tenant, marketplace, outcome, "connect", error, started)
    cursor: str | None = None
    for _ in range(MAX_PAGES):
        page_started = time.monotonic()
        db.session.commit()  # no transaction (on SQLite: no write lock) is held while the marketplace answers
        try:
            page = adapter.list_subscriptions(cursor)
        except MarketplaceError as error:
            return _failed(tenant, marketplace, outcome, "list", error, page_started)
        _page(tenant, marketplace, page.items, as_of or now(), outcome)
        cursor = page.cursor
        if cursor is None:
            break
    log.info("%s poll of tenant %s: %s in %d ms", marketplace, tenant.id, outcome.summary(),
             int((time.monotonic() - started) * 1000))
    return outcome


def sync_all(*, as_of: datetime | None = None) -> Outcome:
    """Poll every marketplace for every tenant it sells for: those with a connection switched on, and, when the
    sandbox marketplace runs, every tenant without a connection of its own."""
    total = Outcome()
    for tenant, marketplace in _served():
        total.add(sync(tenant, marketplace, as_of=as_of))
    return total


def _served() -> list[tuple[Tenant, Marketplace]]:
    """A connection switched on is polled; a tenant without one is polled at the sandbox marketplace (when it
    runs) once it sells there (a plan mapped) or has bought there."""
    own = {(tenant_id, marketplace): enabled for tenant_id, marketplace, enabled in db.session.execute(
        select(MarketplaceConnection.tenant_id, MarketplaceConnection.marketplace, MarketplaceConnection.enabled))}
    sandboxed = [m for m in Marketplace if current_app.config.get(f"SANDBOX_{m.name}_URL")]
    selling = set(db.session.execute(select(MarketplacePlanMapping.tenant_id, MarketplacePlanMapping.marketplace)
                                     .union(select(MarketplaceSubscription.tenant_id,
                                                   MarketplaceSubscription.marketplace)))) if sandboxed else set()
    wanted = {key for key, enabled in own.items() if enabled}
    wanted |= {(tenant_id, m) for tenant_id, m in selling if m in sandboxed and (tenant_id, m) not in own}
    tenants = {tenant.id: tenant for tenant in db.session.scalars(
        select(Tenant).where(Tenant.id.in_({tenant_id for tenant_id, _ in wanted})))} if wanted else {}
    return [(tenants[tenant_id], m) for tenant_id, m in sorted(wanted) if tenant_id in tenants]


def _page(tenant: TenantLike, marketplace: Marketplace, items: tuple[ExternalSubscription, ...], moment: datetime,
          outcome: Outcome) -> None:
    """One page: the known rows (with their portal subscription's status) read in one query, the unchanged ones
    touched in one statement, each change applied and committed on its own (one that fails is rolled back and
    logged; the others stand)."""
    outcome.seen += len(items)
    by_id = {item.external_id: item for item in items}
    if not by_id:
        return
    known = db.session.execute(
        select(MarketplaceSubscription.id, MarketplaceSubscription.external_id, MarketplaceSubscription.raw_state,
               MarketplaceSubscription.external_plan_id, MarketplaceSubscription.quantity,
               MarketplaceSubscription.retired_at, Subscription.status)
        .outerjoin(Subscription, Subscription.id == MarketplaceSubscription.subscription_id)
        .where(MarketplaceSubscription.tenant_id == tenant.id, MarketplaceSubscription.marketplace == marketplace,
               MarketplaceSubscription.external_id.in_(list(by_id)))).all()
    to_apply: set[int] = set()
    unchanged: list[int] = []
    for row in known:
        item = by_id[row.external_id]
        same = not _differs(row, item)
        # an unchanged row whose subscription is still out of line (an action that failed on an earlier poll,
        # or a purchase set up after the marketplace had ended it) is applied again
        behind = row.status is not None and row.retired_at is None and sync_action(row.status, item.state)
        if same and not behind:
            unchanged.append(row.id)
        else:
            to_apply.add(row.id)
    if unchanged:
        db.session.execute(update(MarketplaceSubscription).where(MarketplaceSubscription.id.in_(unchanged))
                           .values(synced_at=moment).execution_options(synchronize_session=False))
    db.session.commit()
    for row in known:
        if row.id in to_apply:
            _apply(tenant, row.id, by_id[row.external_id], moment, outcome)
    for external_id in by_id.keys() - {row.external_id for row in known}:
        if by_id[external_id].state is ExternalState.PENDING:
            _discover(tenant, by_id[external_id], moment, outcome)


def _differs(row: MarketplaceSubscription | Row[Any], item: ExternalSubscription) -> bool:
    """Whether the marketplace says something new of a row (its state, plan or quantity)."""
    return (row.raw_state, row.external_plan_id, row.quantity) != (item.raw_state, item.plan_id, item.quantity)


def _discover(tenant: TenantLike, item: ExternalSubscription, moment: datetime, outcome: Outcome) -> None:
    started = time.monotonic()
    row = marketplaces.record(tenant, item)
    row.synced_at = moment
    marketplaces.log(tenant, item.marketplace, source="poll", action="discovered", external_id=item.external_id,
                     outcome=f"new pending purchase {item.offer_id}/{item.plan_id} for {item.customer_ref or '?'}",
                     started=started)
    try:
        db.session.commit()
    except IntegrityError:  # the customer arrived (or another poll ran) at the same moment: it is recorded
        db.session.rollback()
        return
    outcome.discovered += 1


def _apply(tenant: TenantLike, row_id: int, item: ExternalSubscription, moment: datetime, outcome: Outcome) -> None:
    """Record the marketplace's word for one row and apply the lifecycle action it calls for, in one commit."""
    started = time.monotonic()
    row = db.session.get(MarketplaceSubscription, row_id, with_for_update=True, populate_existing=True)
    assert row is not None
    before = row.raw_state
    changed = _differs(row, item)
    marketplaces.record(tenant, item).synced_at = moment
    action_name, text = "refresh", f"{before} -> {item.raw_state}" if before != item.raw_state else "plan or quantity"
    try:
        if row.subscription_id is not None and row.retired_at is None:
            subscription = lifecycle.lock(tenant, row.subscription_id)
            action = sync_action(subscription.status, item.state)
            if action is not None:
                status = subscription.status
                lifecycle.apply(subscription, action, actor=Actor.marketplace(item.marketplace.value),
                                reason=f"{item.marketplace.label} reports {item.raw_state}")
                action_name = action.value
                text += f"; subscription {subscription.id} {status} -> {subscription.status}"
                outcome.applied += 1
        elif row.retired_at is not None:
            text += " (retired: replaced after a plan change, nothing applied)"
        marketplaces.log(tenant, item.marketplace, source="poll", action=action_name, external_id=item.external_id,
                         outcome=text, started=started, detail={"from": before, "to": item.raw_state})
        lifecycle.commit()
        outcome.changed += int(changed)
    except (ServiceError, ValueError) as error:  # one subscription's trouble does not stop the poll
        db.session.rollback()
        message = f"{before} -> {item.raw_state}: {getattr(error, 'message', None) or error}"
        marketplaces.log(tenant, item.marketplace, source="poll", action="apply", external_id=item.external_id,
                         ok=False, outcome=message, started=started)
        db.session.commit()
        outcome.failures.append(f"{item.external_id}: {message}")
        log.warning("%s poll of tenant %s: %s", item.marketplace, tenant.id, message)


def _failed(tenant: TenantLike, marketplace: Marketplace, outcome: Outcome, action: str, error: MarketplaceError,
            started: float) -> Outcome:
    db.session.rollback()
    marketplaces.log(tenant, marketplace, source="poll", action=action, ok=False, outcome=error.message,
                     http_status=error.status, started=started)
    db.session.commit()
    outcome.failures.append(f"{marketplace.label} for {tenant.slug}: {error.message}")
    log.warning("%s poll of tenant %s failed: %s", marketplace, tenant.id, error.message)
    return outcome
