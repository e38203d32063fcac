"""Backorders: a queue per cloud account, server type and location, served first come, first served."""

from __future__ import annotations

import logging
from itertools import groupby

from sqlalchemy import select

from app.clock import now
from app.domain.availability import Alternative
from app.domain.configuration import geography_key
from app.domain.geography import location_label
from app.domain.policy import Do
from app.domain.ssh_keys import keep_keys
from app.domain.subscriptions import BackorderStatus, ItemStatus, SubscriptionStatus
from app.extensions import db
from app.models import Backorder, Subscription, SubscriptionItem, Tenant, TenantLike
from app.providers.base import ProviderError
from app.services import events, lifecycle, work
from app.services.actors import Actor
from app.services.clouds import provider_for
from app.services.errors import Conflict, InvalidInput, ServiceError
from app.services.work import Job

log = logging.getLogger(__name__)


def serve_backorders(limit: int = 200) -> list[int]:
    """Release waiting backorders, oldest first, while their cloud has capacity; returns items to provision.

    A queue is served only while its head can be placed, so a later order never overtakes an earlier one.
    """
    waiting = db.session.scalars(
        select(Backorder).where(Backorder.status == BackorderStatus.WAITING)
        .order_by(Backorder.tenant_id, Backorder.provider, Backorder.server_type, Backorder.location,
                  Backorder.created_at, Backorder.id).limit(limit)
    ).all()
    released: list[int] = []
    for _, queue in groupby(waiting, key=lambda b: (b.tenant_id, b.provider, b.server_type, b.location)):
        released.extend(_serve_queue(list(queue)))
    return released


def _serve_queue(queue: list[Backorder]) -> list[int]:
    head = queue[0]
    tenant = db.session.get(Tenant, head.tenant_id)
    if tenant is None:
        return []
    try:
        cloud = provider_for(tenant, head.provider)
    except ValueError:
        return []
    released: list[int] = []
    for backorder in queue:
        try:
            if not cloud.check_availability(backorder.server_type, backorder.location).available:
                break
        except ProviderError as error:
            log.warning("backorder %s: availability check failed: %s", backorder.id, error)
            break
        released.extend(_release(backorder))
    for backorder in queue:
        backorder.last_checked_at = now()
    db.session.commit()
    return released


def _release(backorder: Backorder) -> list[int]:
    lifecycle.move_backorder(backorder, BackorderStatus.FULFILLED)
    items = db.session.scalars(
        select(SubscriptionItem.id).where(SubscriptionItem.subscription_id == backorder.subscription_id,
                                          SubscriptionItem.status == ItemStatus.PENDING)
    ).all()
    events.record(backorder.subscription, "backorder_released", reason="Capacity is available again.")
    return list(items)


def alternatives_for(tenant: TenantLike, subscription: Subscription) -> list[Alternative]:
    """What the waiting subscription could switch to now (only choices its plan offers)."""
    from app.services import ordering

    try:
        draft = ordering.draft_order(subscription.plan, subscription.requested_config, subscription.quantity)
        return list(ordering.check_availability(tenant, draft).alternatives)
    except ServiceError:
        return []


def switch_to_alternative(*, tenant: TenantLike, actor: Actor, subscription_id: int, version: int, server_type: str,
                          location: str) -> Subscription:
    """Leave the backorder queue for a configuration that is available now; provisioning starts at once."""
    from app.services import ordering

    subscription = _lock_waiting(tenant, actor, subscription_id, version)
    geo = geography_key(subscription.plan.service_type.config_schema) or "location"
    requested = {**subscription.requested_config, "serverType": server_type, geo: location}
    if (server_type, location) not in {(a.server_type, a.location) for a in alternatives_for(tenant, subscription)}:
        db.session.rollback()
        raise InvalidInput("That choice is not available any more. Please pick another one.")
    draft = ordering.draft_order(subscription.plan, requested, subscription.quantity)
    subscription.requested_config = draft.config
    items = db.session.scalars(select(SubscriptionItem).where(SubscriptionItem.subscription_id == subscription.id,
                                                              SubscriptionItem.status == ItemStatus.PENDING)).all()
    for item in items:
        item.config = keep_keys(draft.config, item.config)  # the SSH keys chosen when it was ordered stay
        work.later(Job.PROVISION_ITEM, item.id)
    backorder = db.session.scalar(select(Backorder).where(Backorder.subscription_id == subscription.id,
                                                          Backorder.status == BackorderStatus.WAITING))
    if backorder is not None:
        lifecycle.move_backorder(backorder, BackorderStatus.CANCELED)
    events.record(subscription, "backorder_switched", actor=actor, server_type=server_type, location=location,
                  reason=f"Switched to {server_type} in {location_label(location)}.")
    db.session.commit()
    return subscription


def _lock_waiting(tenant: TenantLike, actor: Actor, subscription_id: int, version: int) -> Subscription:
    try:
        subscription = lifecycle.lock(tenant, subscription_id)
        actor.may(Do.SWITCH_BACKORDER, subscription)
        if subscription.version != version:
            raise Conflict(lifecycle.RELOAD)
        if subscription.status is not SubscriptionStatus.PENDING_BACKORDER:
            raise InvalidInput("Only a subscription waiting on a backorder can switch.")
    except Exception:
        db.session.rollback()
        raise
    return subscription
