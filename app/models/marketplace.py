"""Marketplaces: a tenant's connection to each, its plan mappings, the external subscriptions and the log of
everything the marketplaces said and the portal answered."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.domain.marketplaces import ExternalState, Marketplace
from app.extensions import db
from app.models.base import Timestamps, UTCDateTime, enum_type
from app.models.catalogue import Plan
from app.models.subscription import Subscription


class MarketplaceConnection(Timestamps, db.Model):
    """How the portal talks to one marketplace for one tenant.

    `settings` holds what is not secret (Microsoft: the Entra tenant id and the app's client id; STACKIT: the
    vendor project id); the secret (Microsoft's client secret, STACKIT's service-account key) is sealed
    (app/services/secrets.py). A tenant without a connection is served by the sandbox marketplaces."""

    __tablename__ = "marketplace_connections"
    __table_args__ = (UniqueConstraint("tenant_id", "marketplace"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    marketplace: Mapped[Marketplace] = mapped_column(enum_type(Marketplace, "connection_marketplace"))
    enabled: Mapped[bool] = mapped_column(default=True)
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    secret_ciphertext: Mapped[str | None] = mapped_column(Text)
    secret_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # Microsoft's client secret


class MarketplacePlanMapping(Timestamps, db.Model):
    """An external plan (of an offer or product) that orders one of the tenant's plans."""

    __tablename__ = "marketplace_plan_mappings"
    __table_args__ = (UniqueConstraint("tenant_id", "marketplace", "offer_id", "external_plan_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    marketplace: Mapped[Marketplace] = mapped_column(enum_type(Marketplace, "mapping_marketplace"))
    offer_id: Mapped[str] = mapped_column(String(100))  # Microsoft's offerId, STACKIT's vendorProductId
    external_plan_id: Mapped[str] = mapped_column(String(100))  # Microsoft's planId, STACKIT's vendorPlanId
    plan_id: Mapped[int] = mapped_column(ForeignKey("plans.id"), index=True)

    plan: Mapped[Plan] = relationship()


class MarketplaceSubscription(Timestamps, db.Model):
    """A subscription bought on a marketplace: its external id and what the marketplace last said about it.

    `subscription_id` is the portal subscription that runs it, once the customer has claimed it on the landing
    page. A STACKIT plan change arrives as a new external subscription that a tenant admin links to the same
    portal subscription; the old one is then `retired_at` (and `replaced_by_id` names the new one), and what the
    marketplace says about a retired one no longer moves the portal's subscription."""

    __tablename__ = "marketplace_subscriptions"
    __table_args__ = (
        UniqueConstraint("tenant_id", "marketplace", "external_id"),
        Index("ix_marketplace_subscriptions_tenant_created", "tenant_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    marketplace: Mapped[Marketplace] = mapped_column(enum_type(Marketplace, "subscription_marketplace"))
    external_id: Mapped[str] = mapped_column(String(64))
    offer_id: Mapped[str] = mapped_column(String(100))
    external_plan_id: Mapped[str] = mapped_column(String(100))
    quantity: Mapped[int | None] = mapped_column()
    name: Mapped[str] = mapped_column(String(200), default="")
    raw_state: Mapped[str] = mapped_column(String(40))  # as the marketplace spells it
    state: Mapped[ExternalState] = mapped_column(enum_type(ExternalState, "external_state"))
    purchaser_email: Mapped[str | None] = mapped_column(String(254))
    # Microsoft's purchaser tenant, STACKIT's customer project
    customer_ref: Mapped[str] = mapped_column(String(100), default="")
    subscription_id: Mapped[int | None] = mapped_column(ForeignKey("subscriptions.id"), index=True)
    activated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # activation or approval confirmed
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    replaced_by_id: Mapped[int | None] = mapped_column(ForeignKey("marketplace_subscriptions.id"))
    # A change asked of the marketplace from the portal, applied only when the marketplace confirms it:
    # {"operation_id", "plan_id" or "quantity", "asked_at", "asked_by"}.
    pending_change: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    synced_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    subscription: Mapped[Subscription | None] = relationship()

    @property
    def linkable(self) -> bool:
        """A STACKIT purchase nobody set up, still waiting for approval: it may continue an existing subscription
        (a plan change; app/services/marketplace_stackit.py `relink`, which says why when it may not)."""
        return (self.marketplace is Marketplace.STACKIT and self.subscription_id is None and self.retired_at is None
                and self.state is ExternalState.PENDING)


class MarketplaceOperation(db.Model):
    """One line of the operations log: a webhook, a poll's finding, a call the portal made, with its outcome.

    `operation_key` is set on the row that handled a marketplace operation (Microsoft's operation id): it is
    unique per tenant and marketplace, so an operation delivered twice, or eight times at once, is applied once;
    the other deliveries are logged as duplicates with no key."""

    __tablename__ = "marketplace_operations"
    __table_args__ = (
        UniqueConstraint("tenant_id", "marketplace", "operation_key"),
        Index("ix_marketplace_operations_tenant_received", "tenant_id", "received_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    marketplace: Mapped[Marketplace] = mapped_column(enum_type(Marketplace, "operation_marketplace"))
    source: Mapped[str] = mapped_column(String(16))  # webhook, poll, landing, activate, change, report
    action: Mapped[str] = mapped_column(String(40), default="")
    external_id: Mapped[str | None] = mapped_column(String(64))  # the external subscription
    operation_key: Mapped[str | None] = mapped_column(String(64))
    ok: Mapped[bool] = mapped_column(default=True)
    outcome: Mapped[str] = mapped_column(String(300), default="")
    http_status: Mapped[int | None] = mapped_column()
    duration_ms: Mapped[int] = mapped_column(default=0)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
