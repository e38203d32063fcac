"""Subscriptions as their customer sees them; every read takes the tenant and the customer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, and_, bindparam, func, or_, select
from sqlalchemy.orm import contains_eager, joinedload, selectinload

from app.domain.catalogue import Interval
from app.domain.marketplace_billing import managed_at_marketplace
from app.domain.marketplaces import Marketplace
from app.domain.subscriptions import BackorderStatus, ItemStatus, Milestone, SubscriptionStatus, next_milestone
from app.extensions import db
from app.models import (
    Backorder,
    Plan,
    Product,
    ScheduledPlanChange,
    Subscription,
    SubscriptionEvent,
    SubscriptionItem,
    TenantLike,
    User,
)


@dataclass(frozen=True, slots=True)
class DashboardRow:
    """One line of the customer's dashboard: plain values, no entity behind it."""

    id: int
    status: SubscriptionStatus
    plan_name: str
    product_name: str
    servers: int
    ready: int
    server_name: str | None  # the first server's FQDN (or name), if it has one
    price_minor: int
    currency: str
    interval: Interval
    milestone: Milestone
    changeable: bool = False  # active and delivered: Change plan (and quantity, for plans sold by quantity)
    quantity_allowed: bool = False  # a plan sold by quantity, without servers
    migrates: bool = False  # its plan has a migration target
    marketplace: Marketplace | None = None  # the marketplace that bills it; None: the portal bills it


# A subscription's servers, and those of them ready: columns for any list of subscriptions (an index walk each).
SERVERS = (select(func.count()).where(SubscriptionItem.subscription_id == Subscription.id)
           .correlate(Subscription).scalar_subquery())
SERVERS_READY = (select(func.count()).where(SubscriptionItem.subscription_id == Subscription.id,
                                            SubscriptionItem.status == ItemStatus.ACTIVE)
                 .correlate(Subscription).scalar_subquery())
# How a list names a subscription's servers: the first one's FQDN (or name), "and N more" beside it.
SERVER_NAME = (select(func.coalesce(SubscriptionItem.fqdn, SubscriptionItem.hostname))
               .where(SubscriptionItem.subscription_id == Subscription.id)
               .order_by(SubscriptionItem.id).limit(1).correlate(Subscription).scalar_subquery())
# What a list selects of each subscription to show its next milestone (`milestone_of`).
MILESTONE_COLUMNS = (Subscription.status, Subscription.price_minor, Subscription.auto_renew,
                     Subscription.current_period_end, Subscription.effective_at, Subscription.canceled_at,
                     Subscription.servers_delete_at, Subscription.purged_at, Subscription.marketplace)


def milestone_of(row: Row[Any]) -> Milestone:
    """The next date that matters, for a row that selected MILESTONE_COLUMNS (as Subscription.milestone_as)."""
    return next_milestone(row.status, period_end=row.current_period_end, effective_at=row.effective_at,
                          canceled_at=row.canceled_at, auto_renew=row.auto_renew, free=row.price_minor == 0,
                          servers_delete_at=row.servers_delete_at, purged=row.purged_at is not None,
                          billed_elsewhere=row.marketplace is not None)


_DASHBOARD = (
    select(Subscription.id, Plan.name.label("plan_name"), Product.name.label("product_name"),
           SERVERS.label("servers"), SERVERS_READY.label("ready"), SERVER_NAME.label("server_name"),
           Subscription.currency, Subscription.interval, Plan.quantity_allowed, Plan.migration_target_id,
           *MILESTONE_COLUMNS)
    .join(Plan, Plan.id == Subscription.plan_id).join(Product, Product.id == Plan.product_id)
    .where(Subscription.tenant_id == bindparam("tenant_id"), Subscription.user_id == bindparam("user_id"))
    .order_by(Subscription.created_at.desc(), Subscription.id.desc())
)


def dashboard_rows(tenant: TenantLike, customer: User) -> list[DashboardRow]:
    """The customer's subscriptions, newest first, as the dashboard lists them: one statement, plain rows."""
    return [DashboardRow(row.id, row.status, row.plan_name, row.product_name, row.servers, row.ready,
                         row.server_name, row.price_minor, row.currency, row.interval, milestone_of(row),
                         changeable=(changeable := row.status is SubscriptionStatus.ACTIVE
                                     and row.current_period_end is not None
                                     and not managed_at_marketplace(row.marketplace)),
                         quantity_allowed=row.quantity_allowed and not row.servers,
                         migrates=changeable and row.migration_target_id is not None, marketplace=row.marketplace)
            for row in db.session.execute(_DASHBOARD, {"tenant_id": tenant.id, "user_id": customer.id})]


def customer_subscriptions(tenant: TenantLike, customer: User) -> list[Subscription]:
    """The customer's subscriptions, newest first, with plan and product (joined) and items: two statements."""
    return list(db.session.scalars(
        select(Subscription)
        .where(Subscription.tenant_id == tenant.id, Subscription.user_id == customer.id)
        .options(joinedload(Subscription.plan).joinedload(Plan.product),
                 selectinload(Subscription.items))
        .order_by(Subscription.created_at.desc(), Subscription.id.desc())
    ))


_CUSTOMER_SUBSCRIPTION = (
    select(Subscription)
    .where(Subscription.id == bindparam("subscription_id"), Subscription.tenant_id == bindparam("tenant_id"),
           Subscription.user_id == bindparam("user_id"))
    .options(joinedload(Subscription.plan).joinedload(Plan.product),
             joinedload(Subscription.plan).joinedload(Plan.service_type),
             joinedload(Subscription.scheduled_change).joinedload(ScheduledPlanChange.plan))
)
_CUSTOMER_SUBSCRIPTION_WITH_ITEMS = _CUSTOMER_SUBSCRIPTION.options(selectinload(Subscription.items))


def customer_subscription(tenant: TenantLike, customer: User, subscription_id: int, *, items: bool = True
                          ) -> Subscription | None:
    """One of the customer's subscriptions, with plan, product and service type joined in the same statement
    (and its items in a second, unless `items` is False); None if not theirs."""
    return db.session.scalar(_CUSTOMER_SUBSCRIPTION_WITH_ITEMS if items else _CUSTOMER_SUBSCRIPTION,
                             {"subscription_id": subscription_id, "tenant_id": tenant.id, "user_id": customer.id})


_CUSTOMER_PAGE = (
    select(Subscription)
    .where(Subscription.tenant_id == bindparam("tenant_id"), Subscription.user_id == bindparam("user_id"),
           Subscription.id <= bindparam("up_to"))
    .options(joinedload(Subscription.plan))
    .order_by(Subscription.id.desc())
    .limit(bindparam("limit"))
)


def customer_page(tenant: TenantLike, customer: User, *, before_id: int | None, limit: int) -> list[Subscription]:
    """A page of the customer's subscriptions, newest first, those older than `before_id` (keyset paging:
    the same cost on page 1 and page 100); their plans joined."""
    return list(db.session.scalars(_CUSTOMER_PAGE, {"tenant_id": tenant.id, "user_id": customer.id,
                                                    "up_to": (before_id or 2**31) - 1, "limit": limit}))


def customer_item(tenant: TenantLike, customer: User, subscription_id: int, item_id: int) -> SubscriptionItem | None:
    """One item of one of the customer's subscriptions, with its subscription; None if not theirs."""
    return db.session.scalar(
        select(SubscriptionItem)
        .join(SubscriptionItem.subscription)
        .where(SubscriptionItem.id == item_id, SubscriptionItem.subscription_id == subscription_id,
               Subscription.tenant_id == tenant.id, Subscription.user_id == customer.id)
        .options(contains_eager(SubscriptionItem.subscription))
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
        .options(joinedload(SubscriptionEvent.actor), joinedload(SubscriptionEvent.impersonator))
        .order_by(SubscriptionEvent.created_at.desc(), SubscriptionEvent.id.desc()).limit(limit)
    ))


def waiting_backorder(subscription: Subscription) -> Backorder | None:
    """The backorder the subscription waits on; only a backordered subscription can have one."""
    if subscription.status is not SubscriptionStatus.PENDING_BACKORDER:
        return None
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
