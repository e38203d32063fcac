"""What tenant staff need to act on."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import contains_eager

from app.domain.subscriptions import ItemStatus
from app.extensions import db
from app.models import Subscription, SubscriptionItem, TenantLike


def items_needing_attention(tenant: TenantLike, limit: int = 200) -> list[SubscriptionItem]:
    """Failed items (provisioning gave up, or the server vanished), newest first, with customer and plan."""
    return list(db.session.scalars(
        select(SubscriptionItem)
        .join(SubscriptionItem.subscription).join(Subscription.user).join(Subscription.plan)
        .options(contains_eager(SubscriptionItem.subscription).contains_eager(Subscription.user),
                 contains_eager(SubscriptionItem.subscription).contains_eager(Subscription.plan))
        .where(SubscriptionItem.tenant_id == tenant.id, SubscriptionItem.status == ItemStatus.FAILED)
        .order_by(SubscriptionItem.updated_at.desc()).limit(limit)
    ))


