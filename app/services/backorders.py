"""Backorders: a queue per cloud account, server type and location, served first come, first served."""

from __future__ import annotations

import logging
from itertools import groupby

from sqlalchemy import select

from app.clock import now
from app.domain.subscriptions import BackorderStatus, ItemStatus
from app.extensions import db
from app.models import Backorder, SubscriptionItem
from app.providers.base import ProviderError
from app.providers.registry import provider_for
from app.services import events

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
    try:
        cloud = provider_for(head.tenant_id, head.provider)
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
    backorder.status = BackorderStatus.FULFILLED
    backorder.closed_at = now()
    items = db.session.scalars(
        select(SubscriptionItem.id).where(SubscriptionItem.subscription_id == backorder.subscription_id,
                                          SubscriptionItem.status == ItemStatus.PENDING)
    ).all()
    events.record(backorder.subscription, "backorder_released", reason="Capacity is available again.")
    return list(items)
