"""Subscriptions as their customer sees them; every read takes the tenant and the customer."""

from __future__ import annotations

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import selectinload

from app.domain.subscriptions import BackorderStatus
from app.extensions import db
from app.models import Backorder, Plan, Subscription, SubscriptionEvent, SubscriptionItem, TenantLike, User


def customer_subscriptions(tenant: TenantLike, customer: User) -> list[Subscription]:
    """The customer's subscriptions, newest first, with plan, product and items: a fixed number of queries."""
    return list(db.session.scalars(
        select(Subscription)
        .where(Subscription.tenant_id == tenant.id, Subscription.user_id == customer.id)
        .options(selectinload(Subscription.plan).selectinload(Plan.product),
                 selectinload(Subscription.items))
        .order_by(Subscription.created_at.desc(), Subscription.id.desc())
    ))


def customer_subscription(tenant: TenantLike, customer: User, subscription_id: int) -> Subscription | None:
    """One of the customer's subscriptions with plan, product, service type and items; None if not theirs."""
    return db.session.scalar(
        select(Subscription)
        .where(Subscription.id == subscription_id, Subscription.tenant_id == tenant.id,
               Subscription.user_id == customer.id)
        .options(selectinload(Subscription.plan).selectinload(Plan.product),
                 selectinload(Subscription.plan).selectinload(Plan.service_type),
                 selectinload(Subscription.items))
    )


def customer_item(tenant: TenantLike, customer: User, subscription_id: int, item_id: int) -> SubscriptionItem | None:
    """One item of one of the customer's subscriptions, with its subscription; None if not theirs."""
    return db.session.scalar(
        select(SubscriptionItem)
        .join(SubscriptionItem.subscription)
        .where(SubscriptionItem.id == item_id, SubscriptionItem.subscription_id == subscription_id,
               Subscription.tenant_id == tenant.id, Subscription.user_id == customer.id)
        .options(selectinload(SubscriptionItem.subscription))
    )


def tenant_item(tenant: TenantLike, subscription_id: int, item_id: int) -> SubscriptionItem | None:
    """One item of one of the tenant's subscriptions, with its subscription (whoever owns it)."""
    return db.session.scalar(
        select(SubscriptionItem)
        .join(SubscriptionItem.subscription)
        .where(SubscriptionItem.id == item_id, SubscriptionItem.subscription_id == subscription_id,
               Subscription.tenant_id == tenant.id)
        .options(selectinload(SubscriptionItem.subscription))
    )


def last_event(subscription: Subscription, kind: str) -> SubscriptionEvent | None:
    """The subscription's latest event of `kind` (e.g. why it was suspended)."""
    return db.session.scalar(
        select(SubscriptionEvent)
        .where(SubscriptionEvent.subscription_id == subscription.id,
               SubscriptionEvent.tenant_id == subscription.tenant_id, SubscriptionEvent.kind == kind)
        .order_by(SubscriptionEvent.created_at.desc(), SubscriptionEvent.id.desc()).limit(1)
    )


def history(subscription: Subscription, limit: int = 100) -> list[SubscriptionEvent]:
    """The subscription's events, newest first, with who acted."""
    return list(db.session.scalars(
        select(SubscriptionEvent)
        .where(SubscriptionEvent.subscription_id == subscription.id,
               SubscriptionEvent.tenant_id == subscription.tenant_id)
        .options(selectinload(SubscriptionEvent.actor), selectinload(SubscriptionEvent.impersonator))
        .order_by(SubscriptionEvent.created_at.desc(), SubscriptionEvent.id.desc()).limit(limit)
    ))


def waiting_backorder(subscription: Subscription) -> Backorder | None:
    return db.session.scalar(select(Backorder).where(Backorder.subscription_id == subscription.id,
                                                     Backorder.status == BackorderStatus.WAITING))


def backorder_position(backorder: Backorder) -> int:
    """Place in its queue (tenant, cloud, server type, location): 1 for the first."""
    ahead = db.session.scalar(
        select(func.count()).select_from(Backorder).where(
            Backorder.tenant_id == backorder.tenant_id, Backorder.provider == backorder.provider,
            Backorder.server_type == backorder.server_type, Backorder.location == backorder.location,
            Backorder.status == BackorderStatus.WAITING,
            or_(Backorder.created_at < backorder.created_at,
                and_(Backorder.created_at == backorder.created_at, Backorder.id < backorder.id)),
        )
    )
    return (ahead or 0) + 1
