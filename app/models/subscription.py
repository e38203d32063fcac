"""Subscriptions, the items they provision and the history of every change."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.clock import now
from app.domain.catalogue import Interval, Provider
from app.domain.marketplaces import Marketplace
from app.domain.plan_changes import ChangeAction, ScheduledStatus
from app.domain.resizing import ResizeStep
from app.domain.server_access import gives_root_password
from app.domain.ssh_keys import server_keys
from app.domain.subscriptions import (
    Action,
    BackorderStatus,
    ItemStatus,
    Milestone,
    SubscriptionStatus,
    Transition,
    customer_actions,
    next_milestone,
    plan_transition,
    power_controls_enabled,
)
from app.domain.timeline import Dates, Entry, timeline
from app.extensions import db
from app.models.base import Timestamps, UTCDateTime, enum_type
from app.models.catalogue import Plan
from app.models.user import User


class Subscription(Timestamps, db.Model):
    """A customer's subscription to a plan, with the price fixed when it was ordered."""

    __tablename__ = "subscriptions"
    __table_args__ = (
        UniqueConstraint("tenant_id", "idempotency_key"),
        Index("ix_subscriptions_tenant_user_status", "tenant_id", "user_id", "status"),
        Index("ix_subscriptions_status_effective_at", "status", "effective_at"),
        Index("ix_subscriptions_status_period_end", "status", "current_period_end"),
        Index("ix_subscriptions_status_servers_delete_at", "status", "servers_delete_at"),
        Index("ix_subscriptions_tenant_plan", "tenant_id", "plan_id"),
        Index("ix_subscriptions_tenant_created", "tenant_id", "created_at"),  # the admin's list, newest first
        CheckConstraint("quantity >= 1", name="quantity_positive"),
        CheckConstraint("price_minor >= 0", name="price_not_negative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    plan_id: Mapped[int] = mapped_column(ForeignKey("plans.id"))
    status: Mapped[SubscriptionStatus] = mapped_column(enum_type(SubscriptionStatus, "subscription_status"))
    quantity: Mapped[int] = mapped_column(default=1)
    price_minor: Mapped[int] = mapped_column()
    currency: Mapped[str] = mapped_column(String(3))
    interval: Mapped[Interval] = mapped_column(enum_type(Interval, "subscription_interval"))
    requested_config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    auto_renew: Mapped[bool] = mapped_column(default=True)
    auto_backorder: Mapped[bool] = mapped_column(default=False)
    idempotency_key: Mapped[str | None] = mapped_column(String(64))
    activated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    current_period_start: Mapped[datetime | None] = mapped_column(UTCDateTime)
    current_period_end: Mapped[datetime | None] = mapped_column(UTCDateTime)
    effective_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    canceled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    suspended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # End of life: when the servers are deleted and the data purged (the cancellation plus the tenant's
    # retention, or later when an admin extends it), and when that was done.
    servers_delete_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    purged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Bought on a marketplace, which bills it (app/models/marketplace.py has the external reference): the portal
    # charges nothing for it and takes no card. None: the portal bills it.
    marketplace: Mapped[Marketplace | None] = mapped_column(enum_type(Marketplace, "billing_marketplace"))
    version: Mapped[int] = mapped_column(default=1)

    user: Mapped[User] = relationship()
    plan: Mapped[Plan] = relationship()
    items: Mapped[list[SubscriptionItem]] = relationship(
        back_populates="subscription", order_by="SubscriptionItem.id"
    )
    # The change waiting for the period's end, for pages (joined into the statement that reads the subscription);
    # services read it under the subscription's lock (app/services/lifecycle.py).
    scheduled_change: Mapped[ScheduledPlanChange | None] = relationship(
        primaryjoin="and_(ScheduledPlanChange.subscription_id == Subscription.id, "
                    "ScheduledPlanChange.status == 'scheduled')",
        viewonly=True, uselist=False,
    )

    __mapper_args__ = {"version_id_col": version}

    @property
    def milestone(self) -> Milestone:
        return self.milestone_as(self.status)

    def milestone_as(self, status: SubscriptionStatus) -> Milestone:
        """The milestone for `status` as shown (a served backorder is shown as setting up)."""
        return next_milestone(status, period_end=self.current_period_end, effective_at=self.effective_at,
                              canceled_at=self.canceled_at, auto_renew=self.auto_renew, free=self.is_free,
                              servers_delete_at=self.servers_delete_at, purged=self.purged_at is not None,
                              billed_elsewhere=self.marketplace is not None)

    def timeline(self, retention_days: int) -> list[Entry]:
        """Its dates, past and ahead (app/domain/timeline.py)."""
        return timeline(Dates(
            status=self.status, ordered_at=self.created_at, activated_at=self.activated_at,
            period_end=self.current_period_end, effective_at=self.effective_at, canceled_at=self.canceled_at,
            suspended_at=self.suspended_at, servers_delete_at=self.servers_delete_at, purged_at=self.purged_at,
            auto_renew=self.auto_renew, free=self.is_free, billed_elsewhere=self.marketplace is not None),
            retention_days=retention_days, now=now())

    def cancel_outcome(self) -> Transition:
        """What canceling now would do (the plan's rule): end at the period's end, or now."""
        return plan_transition(self.status, Action.CANCEL, now=now(), period_end=self.current_period_end,
                               cancellation_rule=self.plan.cancellation_rule, effective_at=self.effective_at)

    @property
    def customer_actions(self) -> frozenset[str]:
        """The lifecycle buttons its customer may see (the domain decides, not the templates)."""
        return frozenset(action.value for action in customer_actions(self.status))

    @property
    def power_controls(self) -> bool:
        return power_controls_enabled(self.status)

    @property
    def is_free(self) -> bool:
        return self.price_minor == 0

    @property
    def billed_by_portal(self) -> bool:
        """The portal charges it; a marketplace subscription is billed by its marketplace."""
        return self.marketplace is None

    @property
    def unit_price_minor(self) -> int:
        """The price of one unit: `price_minor` is the recurring total for all `quantity` units."""
        return self.price_minor // self.quantity

    @property
    def in_progress(self) -> bool:
        """Something is still happening that the customer's page should follow."""
        return self.status is SubscriptionStatus.PENDING_FULFILLMENT


class SubscriptionItem(Timestamps, db.Model):
    """One provisioned (or to-be-provisioned) server or service of a subscription."""

    __tablename__ = "subscription_items"
    __table_args__ = (
        Index("ix_subscription_items_provider_server", "provider", "server_id"),
        Index("ix_subscription_items_tenant_status", "tenant_id", "status"),
        # Server names are unique within the tenant's domain while the server exists (cleared at purge).
        Index("uq_subscription_items_tenant_hostname", "tenant_id", "hostname", unique=True),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    subscription_id: Mapped[int] = mapped_column(
        ForeignKey("subscriptions.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[ItemStatus] = mapped_column(enum_type(ItemStatus, "item_status"), default=ItemStatus.PENDING)
    service_kind: Mapped[str] = mapped_column(String(63), default="server")
    provider: Mapped[Provider] = mapped_column(enum_type(Provider, "item_provider"))
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    server_id: Mapped[str | None] = mapped_column(String(64))
    hostname: Mapped[str | None] = mapped_column(String(63))
    fqdn: Mapped[str | None] = mapped_column(String(253))
    ipv4: Mapped[str | None] = mapped_column(String(45))
    ipv6: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    # A Hetzner server made without an SSH key gets a root password: kept encrypted (app/services/secrets.py)
    # until its customer has seen it once, then cleared.
    root_password_sealed: Mapped[str | None] = mapped_column(Text)
    ready_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # delivered: the server came up
    shutdown_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # a graceful shutdown was asked for
    powered_off_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # off, awaiting deletion
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # gone at the cloud
    # Resizing (app/services/resizing.py): the type the server has at the cloud, and the resize under way.
    server_type_actual: Mapped[str | None] = mapped_column(String(63))
    resize_step: Mapped[str | None] = mapped_column(String(16))  # a ResizeStep; None when idle
    resize_target: Mapped[str | None] = mapped_column(String(63))
    resize_action_id: Mapped[str | None] = mapped_column(String(64))
    resize_progress: Mapped[int | None] = mapped_column()
    resize_was_on: Mapped[bool | None] = mapped_column()
    resize_step_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # when the current step began
    resize_error: Mapped[str | None] = mapped_column(Text)

    subscription: Mapped[Subscription] = relationship(back_populates="items")

    @property
    def in_progress(self) -> bool:
        return self.status in (ItemStatus.PENDING, ItemStatus.PROVISIONING)

    @property
    def name(self) -> str:
        """How pages and emails name the server: its FQDN, else its name, else its number."""
        return self.fqdn or self.hostname or f"Server {self.id}"

    @property
    def ssh_keys(self) -> list[dict[str, str]]:
        """The keys the server was ordered with: name, fingerprint, public_key each."""
        return server_keys(self.config or {})

    @property
    def resizing(self) -> bool:
        """A change of server type is under way."""
        return self.resize_step is not None and ResizeStep(self.resize_step).busy

    @property
    def resets_root_password(self) -> bool:
        """Whether its cloud can set a new root password and show it (Hetzner)."""
        return gives_root_password(self.provider)


class SubscriptionEvent(db.Model):
    """Append-only history: who changed what, when, from which state to which, and why."""

    __tablename__ = "subscription_events"
    __table_args__ = (
        Index("ix_subscription_events_subscription_created", "subscription_id", "created_at"),
        # A catalogue replace moves each subscription once: its event is the record of the move (app/models/
        # catalogue_operations.py), at most one per operation and subscription.
        Index("uq_subscription_events_operation_subscription", "operation_id", "subscription_id", unique=True,
              sqlite_where=text("operation_id IS NOT NULL"), postgresql_where=text("operation_id IS NOT NULL")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    subscription_id: Mapped[int] = mapped_column(ForeignKey("subscriptions.id", ondelete="CASCADE"))
    item_id: Mapped[int | None] = mapped_column(ForeignKey("subscription_items.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(40))
    from_status: Mapped[str | None] = mapped_column(String(40))
    to_status: Mapped[str | None] = mapped_column(String(40))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    impersonator_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    reason: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The catalogue operation that made the change, for the moves of a replace (the operation's record of them).
    operation_id: Mapped[int | None] = mapped_column(ForeignKey("catalogue_operations.id", ondelete="SET NULL"))

    subscription: Mapped[Subscription] = relationship()
    actor: Mapped[User | None] = relationship(foreign_keys=[actor_id])
    impersonator: Mapped[User | None] = relationship(foreign_keys=[impersonator_id])


class Backorder(db.Model):
    """A subscription waiting for capacity of one server type in one location; served first come, first served."""

    __tablename__ = "backorders"
    __table_args__ = (
        Index("ix_backorders_queue", "provider", "server_type", "location", "status", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    subscription_id: Mapped[int] = mapped_column(ForeignKey("subscriptions.id", ondelete="CASCADE"), unique=True)
    provider: Mapped[Provider] = mapped_column(enum_type(Provider, "backorder_provider"))
    server_type: Mapped[str] = mapped_column(String(63))
    location: Mapped[str] = mapped_column(String(63))
    status: Mapped[BackorderStatus] = mapped_column(
        enum_type(BackorderStatus, "backorder_status"), default=BackorderStatus.WAITING
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    subscription: Mapped[Subscription] = relationship()


_SCHEDULED = text("status = 'scheduled'")


class ScheduledPlanChange(db.Model):
    """A plan or quantity change that waits for the end of the period (a downgrade), at the price then shown.

    At most one is scheduled per subscription (a partial unique index); the renewal applies it
    (app/services/lifecycle.py), or the customer cancels it before.
    """

    __tablename__ = "scheduled_plan_changes"
    __table_args__ = (
        Index("uq_scheduled_plan_changes_one", "subscription_id", unique=True,
              sqlite_where=_SCHEDULED, postgresql_where=_SCHEDULED),
        CheckConstraint("quantity >= 1", name="quantity_positive"),
        CheckConstraint("price_minor >= 0", name="price_not_negative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    subscription_id: Mapped[int] = mapped_column(ForeignKey("subscriptions.id", ondelete="CASCADE"), index=True)
    action: Mapped[ChangeAction] = mapped_column(enum_type(ChangeAction, "plan_change_action"))
    plan_id: Mapped[int] = mapped_column(ForeignKey("plans.id"))
    quantity: Mapped[int] = mapped_column()
    price_minor: Mapped[int] = mapped_column()  # the recurring price shown when it was scheduled
    server_type: Mapped[str | None] = mapped_column(String(63))  # the resize it brings, if any
    effective_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[ScheduledStatus] = mapped_column(enum_type(ScheduledStatus, "scheduled_change_status"),
                                                    default=ScheduledStatus.SCHEDULED)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    subscription: Mapped[Subscription] = relationship()
    plan: Mapped[Plan] = relationship()
