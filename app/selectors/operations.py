"""What tenant staff need to act on."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, func, select

from app.domain.catalogue import Provider
from app.domain.subscriptions import ItemStatus, SubscriptionStatus
from app.extensions import db
from app.models import Plan, Subscription, SubscriptionItem, TenantLike, User


@dataclass(frozen=True, slots=True)
class AttentionRow:
    """A server that needs staff, as their list shows it: plain values."""

    customer_name: str
    customer_email: str
    subscription_id: int
    plan_name: str
    subscription_status: SubscriptionStatus
    name: str | None  # the server's FQDN, or name
    provider: Provider
    server_id: str | None
    server_type: str
    location: str
    error_message: str | None
    since: datetime


_config = SubscriptionItem.config
_NEEDING_ATTENTION = (
    select(User.name, User.email, Subscription.id, Plan.name, Subscription.status,
           func.coalesce(SubscriptionItem.fqdn, SubscriptionItem.hostname),
           SubscriptionItem.provider, SubscriptionItem.server_id,
           func.coalesce(_config["serverType"].as_string(), ""),
           func.coalesce(_config["location"].as_string(), _config["region"].as_string(), ""),
           SubscriptionItem.error_message, SubscriptionItem.updated_at)
    .join(Subscription, Subscription.id == SubscriptionItem.subscription_id)
    .join(User, User.id == Subscription.user_id).join(Plan, Plan.id == Subscription.plan_id)
    .where(SubscriptionItem.tenant_id == bindparam("tenant_id"), SubscriptionItem.status == ItemStatus.FAILED)
    .order_by(SubscriptionItem.updated_at.desc()).limit(bindparam("limit"))
)


def items_needing_attention(tenant: TenantLike, limit: int = 200) -> list[AttentionRow]:
    """Failed items (provisioning gave up, or the server vanished), newest first, with customer and plan."""
    return [AttentionRow(*row) for row in db.session.execute(_NEEDING_ATTENTION,
                                                             {"tenant_id": tenant.id, "limit": limit})]
