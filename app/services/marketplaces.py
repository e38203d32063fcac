"""Subscriptions bought on a marketplace: from the customer's arrival to a delivered, activated subscription.

1. `arrive`: the customer lands with the marketplace's token (Microsoft's landing page, STACKIT's sign-up URL);
   the token is resolved through the tenant's adapter and the purchase is recorded (`record`), or refreshed
   when it is a later visit ("Manage SaaS experience").
2. `claim`: signed in, the customer sets the purchase up: a portal subscription on the plan the purchase's
   external plan is mapped to (`plan_for`), billed by the marketplace (`Subscription.marketplace`: the portal
   charges nothing for it), its provisioning queued. Claiming again gives the same subscription.
3. `activate`: once its servers are delivered (the lifecycle queues Job.MARKETPLACE_ACTIVATE), the marketplace
   is told so (Microsoft's Activate, STACKIT's approve with the subscription's address), and its billing
   starts. Transient failures are retried with backoff; every call is in the operations log (`log`).

What the marketplace says afterwards (webhooks, polls) is applied by `marketplace_microsoft` and
`marketplace_sync` through the lifecycle service.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.clock import now
from app.domain.catalogue import CatalogueState
from app.domain.marketplaces import Marketplace
from app.domain.retry import backoff_delay
from app.extensions import db
from app.models import (
    MarketplaceOperation,
    MarketplacePlanMapping,
    MarketplaceSubscription,
    Plan,
    Subscription,
    Tenant,
    TenantLike,
)
from app.providers.marketplaces.base import (
    ExternalSubscription,
    MarketplaceAdapter,
    MarketplaceError,
    MarketplaceErrorKind,
)
from app.services import events, ordering
from app.services.actors import Actor
from app.services.errors import InvalidInput, NotFound, ServiceError
from app.services.marketplace_connections import adapter_for
from app.services.notifications import Links

log_ = logging.getLogger(__name__)

MAX_ACTIVATION_ATTEMPTS = 8

NOT_MAPPED = ("This purchase ({offer}, plan {plan}) is not sold here yet: the operator has not linked it to one "
              "of its plans. Please contact them; nothing has been set up and {store} bills nothing until it is.")
NOT_SOLD = "The plan this purchase is for is no longer sold here. Please contact the operator."
TAKEN = "This purchase is already set up for another account. Sign in with that account to manage it."
UNREACHABLE = "We could not reach the {label} just now. Please try again in a minute."


@dataclass(frozen=True)
class Next:
    """Call `activate` again after `delay` seconds with `attempt`."""

    delay: float
    attempt: int


def log(tenant: TenantLike, marketplace: Marketplace, *, source: str, action: str = "", external_id: str | None = None,
        ok: bool = True, outcome: str = "", http_status: int | None = None, started: float | None = None,
        operation_key: str | None = None, detail: dict[str, Any] | None = None) -> MarketplaceOperation:
    """Add a line to the tenant's operations log (the caller's commit writes it). `started` is the
    `time.monotonic()` at which the work began, for its duration."""
    entry = MarketplaceOperation(
        tenant_id=tenant.id, marketplace=marketplace, source=source, action=action[:40], external_id=external_id,
        operation_key=operation_key, ok=ok, outcome=outcome[:300], http_status=http_status,
        duration_ms=int((time.monotonic() - started) * 1000) if started is not None else 0, received_at=now(),
        detail=detail or {})
    db.session.add(entry)
    return entry


def record(tenant: TenantLike, found: ExternalSubscription) -> MarketplaceSubscription:
    """The tenant's row for `found`, created or brought up to date with what the marketplace says (not committed)."""
    row = db.session.scalar(select(MarketplaceSubscription).where(
        MarketplaceSubscription.tenant_id == tenant.id, MarketplaceSubscription.marketplace == found.marketplace,
        MarketplaceSubscription.external_id == found.external_id))
    if row is None:
        row = MarketplaceSubscription(tenant_id=tenant.id, marketplace=found.marketplace,
                                      external_id=found.external_id)
        db.session.add(row)
    row.offer_id, row.external_plan_id = found.offer_id[:100], found.plan_id[:100]
    row.quantity, row.name = found.quantity, found.name[:200]
    row.raw_state, row.state = found.raw_state[:40], found.state
    row.purchaser_email = (found.purchaser_email or "")[:254] or row.purchaser_email
    row.customer_ref = found.customer_ref[:100] or row.customer_ref or ""
    row.synced_at = now()
    return row


def plan_for(tenant: TenantLike, marketplace: Marketplace, offer_id: str, external_plan_id: str) -> Plan | None:
    """The tenant's plan that the marketplace's `offer_id`/`external_plan_id` is sold as, if it is mapped."""
    return db.session.scalar(select(Plan).join(MarketplacePlanMapping, MarketplacePlanMapping.plan_id == Plan.id).where(
        MarketplacePlanMapping.tenant_id == tenant.id, MarketplacePlanMapping.marketplace == marketplace,
        MarketplacePlanMapping.offer_id == offer_id, MarketplacePlanMapping.external_plan_id == external_plan_id,
        Plan.tenant_id == tenant.id))


def arrive(*, tenant: TenantLike, marketplace: Marketplace, token: str, actor: Actor) -> MarketplaceSubscription:
    """Resolve the token the customer arrived with and record the purchase it stands for (committed).

    A token the marketplace refuses (expired, used, forged) raises InvalidInput with a message for the customer;
    a marketplace that cannot be reached raises ServiceError. Both are in the operations log."""
    started = time.monotonic()
    try:
        adapter = adapter_for(tenant, marketplace)
        db.session.rollback()  # no transaction (on SQLite: no lock) is held while the marketplace answers
        found = adapter.resolve(token)
    except MarketplaceError as error:
        db.session.rollback()
        log(tenant, marketplace, source="landing", action="resolve", ok=False, outcome=error.message,
            http_status=error.status, started=started)
        db.session.commit()
        if error.kind in (MarketplaceErrorKind.INVALID, MarketplaceErrorKind.NOT_FOUND):
            raise InvalidInput(error.message) from None
        raise ServiceError(UNREACHABLE.format(label=marketplace.label)) from None
    row = record(tenant, found)
    log(tenant, marketplace, source="landing", action="resolve", external_id=found.external_id,
        outcome=f"{found.offer_id}/{found.plan_id}: {found.raw_state}" + (", set up" if row.subscription_id else ""),
        started=started, detail={"by": actor.user_id} if actor.user_id else None)
    db.session.commit()
    return row


def purchase(tenant: TenantLike, purchase_id: int) -> MarketplaceSubscription:
    """The tenant's recorded purchase `purchase_id` (NotFound otherwise)."""
    row = db.session.scalar(select(MarketplaceSubscription).where(
        MarketplaceSubscription.id == purchase_id, MarketplaceSubscription.tenant_id == tenant.id))
    if row is None:
        raise NotFound("There is no such purchase.")
    return row


def claim(*, tenant: TenantLike, actor: Actor, purchase_id: int, hostname: str | None = None,
          ssh_key_ids: Sequence[int] = ()) -> Subscription:
    """The acting customer sets the purchase up: a portal subscription on its mapped plan, billed by the
    marketplace, with its provisioning queued (committed). The same purchase claimed again by the same
    customer gives the same subscription; by another customer, InvalidInput."""
    customer = actor.user
    if customer is None:
        raise InvalidInput("Please sign in first.")
    row = db.session.scalar(select(MarketplaceSubscription).where(
        MarketplaceSubscription.id == purchase_id, MarketplaceSubscription.tenant_id == tenant.id).with_for_update())
    if row is None:
        raise NotFound("There is no such purchase.")
    if row.subscription_id is not None:
        return _claimed(row, customer.id)
    if row.state.ended or row.retired_at is not None:
        raise InvalidInput(f"This purchase has ended at the {row.marketplace.label}: there is nothing to set up.")
    plan = plan_for(tenant, row.marketplace, row.offer_id, row.external_plan_id)
    if plan is None:
        raise InvalidInput(NOT_MAPPED.format(offer=row.offer_id, plan=row.external_plan_id,
                                             store=row.marketplace.label))
    if plan.state not in (CatalogueState.PUBLISHED, CatalogueState.DEPRECATED):
        raise InvalidInput(NOT_SOLD)
    key = f"{row.marketplace.value}:{row.external_id}"[:64]
    try:
        subscription = ordering.place_marketplace_order(
            tenant=tenant, actor=actor, plan=plan, quantity=row.quantity or 1, marketplace=row.marketplace,
            idempotency_key=key, hostname=hostname, ssh_key_ids=ssh_key_ids)
        row.subscription_id = subscription.id
        events.record(subscription, "set_up_from_marketplace", actor=actor, marketplace=row.marketplace.value,
                      external_id=row.external_id, offer=row.offer_id, external_plan=row.external_plan_id)
        log(tenant, row.marketplace, source="landing", action="claim", external_id=row.external_id,
            outcome=f"set up as subscription {subscription.id} on {plan.name}")
        claimed_id = subscription.id
        db.session.commit()
    except IntegrityError:  # the same purchase claimed twice at once (no row locks on SQLite): the other won
        db.session.rollback()
        return _claimed(purchase(tenant, purchase_id), customer.id)
    except Exception:
        db.session.rollback()
        raise
    return db.session.get(Subscription, claimed_id)  # type: ignore[return-value]


def _claimed(row: MarketplaceSubscription, user_id: int) -> Subscription:
    subscription = db.session.get(Subscription, row.subscription_id)
    if subscription is None or subscription.user_id != user_id:
        raise InvalidInput(TAKEN)
    return subscription


def linked(tenant: TenantLike, subscription_id: int) -> MarketplaceSubscription | None:
    """The external subscription that runs the tenant's subscription now (not a retired one), if any."""
    return db.session.scalar(select(MarketplaceSubscription).where(
        MarketplaceSubscription.tenant_id == tenant.id, MarketplaceSubscription.subscription_id == subscription_id,
        MarketplaceSubscription.retired_at.is_(None)).order_by(MarketplaceSubscription.id.desc()).limit(1))


def external(row: MarketplaceSubscription) -> ExternalSubscription:
    """The row as the adapters take it."""
    return ExternalSubscription(marketplace=row.marketplace, external_id=row.external_id, offer_id=row.offer_id,
                                plan_id=row.external_plan_id, quantity=row.quantity, state=row.state,
                                raw_state=row.raw_state, name=row.name, purchaser_email=row.purchaser_email,
                                customer_ref=row.customer_ref)


def _read_back(adapter: MarketplaceAdapter, external_id: str) -> ExternalSubscription | None:
    """The subscription as the marketplace has it after a change, or None when it cannot say now (the next poll
    will)."""
    try:
        return adapter.get_subscription(external_id)
    except MarketplaceError:
        return None


def activate(subscription_id: int, attempt: int = 1) -> Next | None:
    """Tell the marketplace that the subscription is delivered (its billing starts then), once.

    Transient failures come back as Next (retried with backoff, MAX_ACTIVATION_ATTEMPTS in all); a refusal is
    logged and recorded on the subscription for the staff (STACKIT refuses an approval after its time to live:
    the next poll then finds it rejected and the subscription ends)."""
    subscription = db.session.get(Subscription, subscription_id)
    if subscription is None or subscription.marketplace is None:
        return None
    tenant = db.session.get(Tenant, subscription.tenant_id)
    assert tenant is not None
    row = db.session.scalar(select(MarketplaceSubscription).where(
        MarketplaceSubscription.subscription_id == subscription.id, MarketplaceSubscription.retired_at.is_(None),
        MarketplaceSubscription.activated_at.is_(None)).order_by(MarketplaceSubscription.id.desc()).limit(1))
    if row is None:
        return None  # activated already
    actor, started = Actor.marketplace(row.marketplace.value), time.monotonic()
    marketplace, external_id, row_id = row.marketplace, row.external_id, row.id
    try:
        adapter = adapter_for(tenant, marketplace)
        bought, url = external(row), Links(tenant)("subscriptions.detail", subscription_id=subscription_id)
        db.session.commit()  # no transaction (on SQLite: no write lock) is held while the marketplace answers
        adapter.activate(bought, instance_url=url)
        fresh = _read_back(adapter, external_id)
    except MarketplaceError as error:
        db.session.rollback()
        subscription = db.session.get(Subscription, subscription_id)
        tenant = db.session.get(Tenant, subscription.tenant_id)  # type: ignore[union-attr]
        assert subscription is not None and tenant is not None
        retry = error.retryable and attempt < MAX_ACTIVATION_ATTEMPTS
        log(tenant, marketplace, source="activate", action="activate", external_id=external_id, ok=False,
            outcome=f"{error.message}" + (f" (attempt {attempt}, trying again)" if retry else ""),
            http_status=error.status, started=started)
        if not retry:
            events.record(subscription, "not_activated_at_marketplace", actor=actor, error=error.message[:300],
                          marketplace=marketplace.value)
        db.session.commit()
        log_.warning("subscription %s: activation at %s failed: %s", subscription_id, marketplace, error)
        return Next(backoff_delay(attempt), attempt + 1) if retry else None
    row = db.session.get(MarketplaceSubscription, row_id)
    subscription = db.session.get(Subscription, subscription_id)
    assert row is not None and subscription is not None
    tenant = db.session.get(Tenant, subscription.tenant_id)  # type: ignore[assignment]
    assert tenant is not None
    if fresh is not None:  # its state as the marketplace has it now (active), not as it was when it was bought
        record(tenant, fresh)
    row.activated_at = now()
    events.record(subscription, "billing_started_at_marketplace", actor=actor, marketplace=marketplace.value,
                  external_id=external_id)
    log(tenant, marketplace, source="activate", action="activate", external_id=external_id,
        outcome="billing started at the marketplace", started=started)
    db.session.commit()
    return None
