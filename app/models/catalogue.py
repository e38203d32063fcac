"""The catalogue: service types, products and their plans."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, query_expression, relationship

from app.domain.catalogue import CatalogueState, ChangeRule, Interval, Provider
from app.domain.plan_offers import LocationOffer, Offers, TypePrice
from app.extensions import db
from app.models.base import Timestamps, UTCDateTime, enum_type


class ServiceType(Timestamps, db.Model):
    """What a plan provisions: a provider, the JSON Schema of its config, a cloud-init template."""

    __tablename__ = "service_types"
    __table_args__ = (UniqueConstraint("tenant_id", "slug"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    slug: Mapped[str] = mapped_column(String(63))
    name: Mapped[str] = mapped_column(String(200))
    provider: Mapped[Provider] = mapped_column(enum_type(Provider, "provider"))
    service_kind: Mapped[str] = mapped_column(String(63), default="server")
    config_schema: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    cloud_init_template: Mapped[str] = mapped_column(Text, default="")


class Product(Timestamps, db.Model):
    """A named, versioned group of plans."""

    __tablename__ = "products"
    __table_args__ = (
        UniqueConstraint("tenant_id", "slug", "version"),
        CheckConstraint("version >= 1", name="version_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    slug: Mapped[str] = mapped_column(String(63))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    version: Mapped[int] = mapped_column(default=1)
    state: Mapped[CatalogueState] = mapped_column(
        enum_type(CatalogueState, "product_state"), default=CatalogueState.DRAFT
    )

    plans: Mapped[list[Plan]] = relationship(back_populates="product", order_by="Plan.sort_order")


class Plan(Timestamps, db.Model):
    """A price and the rules a subscription to it follows."""

    __tablename__ = "plans"
    __table_args__ = (
        UniqueConstraint("product_id", "slug"),
        Index("ix_plans_tenant_state", "tenant_id", "state"),
        CheckConstraint("price_minor >= 0", name="price_not_negative"),
        CheckConstraint("max_quantity IS NULL OR max_quantity >= 1", name="max_quantity_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"), index=True)
    service_type_id: Mapped[int] = mapped_column(ForeignKey("service_types.id"), index=True)
    slug: Mapped[str] = mapped_column(String(63))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    features: Mapped[list[str]] = mapped_column(JSON, default=list)
    price_minor: Mapped[int] = mapped_column(default=0)
    currency: Mapped[str] = mapped_column(String(3), default="EUR")
    interval: Mapped[Interval] = mapped_column(enum_type(Interval, "billing_interval"))
    quantity_allowed: Mapped[bool] = mapped_column(default=False)
    max_quantity: Mapped[int | None] = mapped_column()
    config_defaults: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    allow_customer_location_selection: Mapped[bool] = mapped_column(default=False)
    cancellation_rule: Mapped[ChangeRule] = mapped_column(
        enum_type(ChangeRule, "cancellation_rule"), default=ChangeRule.PERIOD_END
    )
    downgrade_rule: Mapped[ChangeRule] = mapped_column(
        enum_type(ChangeRule, "downgrade_rule"), default=ChangeRule.PERIOD_END
    )
    state: Mapped[CatalogueState] = mapped_column(
        enum_type(CatalogueState, "plan_state"), default=CatalogueState.DRAFT
    )
    migration_target_id: Mapped[int | None] = mapped_column(ForeignKey("plans.id"))
    sort_order: Mapped[int] = mapped_column(default=0)
    # Metered prices, billed in arrears per period: [{"metric", "label", "unit", "unit_price_minor"}, ...]
    # (app/domain/usage.py reads them).
    usage_prices: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list, server_default="[]")
    # How many subscriptions were ever ordered on the plan: counted when one is created (app/services/ordering.py,
    # the one place that creates them), so the admin's catalogue need not count a tenant's whole history.
    subscription_count: Mapped[int] = mapped_column(default=0, server_default="0")
    # The images offered (empty: every image of the schema); the default is config_defaults["image"].
    images: Mapped[list[str]] = mapped_column(JSON, default=list, server_default="[]")
    # A free plan: how many subscriptions to it one customer may hold at once (None: no limit).
    free_plan_limit: Mapped[int | None] = mapped_column(default=1, server_default="1")
    # How long existing subscribers keep their price after a price change.
    price_notice_days: Mapped[int] = mapped_column(default=30, server_default="30")

    # Whether what the customer picks changes the price (the catalogue's card then says "from"); loaded by the
    # catalogue's selector with the plans, None elsewhere.
    varies: Mapped[bool | None] = query_expression()

    product: Mapped[Product] = relationship(back_populates="plans")
    service_type: Mapped[ServiceType] = relationship()
    migration_target: Mapped[Plan | None] = relationship(remote_side=[id])
    prices: Mapped[list[PlanPrice]] = relationship(order_by="PlanPrice.sort", cascade="all, delete-orphan",
                                                   passive_deletes=True)
    locations: Mapped[list[PlanLocation]] = relationship(order_by="PlanLocation.sort",
                                                         cascade="all, delete-orphan", passive_deletes=True)

    @property
    def is_free(self) -> bool:
        return self.price_minor == 0  # with prices per server type, the lowest (all are 0 or none is)

    @property
    def offers(self) -> Offers:
        return Offers(
            tuple(TypePrice(p.server_type, p.price_minor, p.cost_minor, p.markup_bp, p.is_default)
                  for p in self.prices),
            tuple(LocationOffer(loc.location, loc.surcharge_minor, loc.is_default) for loc in self.locations),
            tuple(self.images or ()),
        )


class PlanPrice(db.Model):
    """A server type a plan offers and its price per interval for one seat. `cost_minor` and `markup_bp` are
    what the cloud charges and the markup on it, when a price import has filled them."""

    __tablename__ = "plan_prices"
    __table_args__ = (
        UniqueConstraint("plan_id", "server_type"),
        CheckConstraint("price_minor >= 0", name="plan_price_not_negative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("plans.id", ondelete="CASCADE"))
    server_type: Mapped[str] = mapped_column(String(63))
    price_minor: Mapped[int] = mapped_column()
    cost_minor: Mapped[int | None] = mapped_column()
    markup_bp: Mapped[int | None] = mapped_column()
    sort: Mapped[int] = mapped_column(default=0)
    is_default: Mapped[bool] = mapped_column(default=False)


class PlanLocation(db.Model):
    """A location (or region) a plan offers, with what it adds to each seat's price."""

    __tablename__ = "plan_locations"
    __table_args__ = (
        UniqueConstraint("plan_id", "location"),
        CheckConstraint("surcharge_minor >= 0", name="surcharge_not_negative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("plans.id", ondelete="CASCADE"))
    location: Mapped[str] = mapped_column(String(63))
    surcharge_minor: Mapped[int] = mapped_column(default=0)
    sort: Mapped[int] = mapped_column(default=0)
    is_default: Mapped[bool] = mapped_column(default=False)


class PlanPriceChange(db.Model):
    """A published plan's price for a server type, changed: new orders pay `new_price_minor` at once, existing
    subscribers from their first renewal on or after `effective_at` (the notice they were given)."""

    __tablename__ = "plan_price_changes"
    __table_args__ = (Index("ix_plan_price_changes_plan", "plan_id", "server_type", "effective_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    plan_id: Mapped[int] = mapped_column(ForeignKey("plans.id", ondelete="CASCADE"))
    server_type: Mapped[str] = mapped_column(String(63))
    old_price_minor: Mapped[int] = mapped_column()
    new_price_minor: Mapped[int] = mapped_column()
    announced_at: Mapped[datetime] = mapped_column(UTCDateTime)
    effective_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class CatalogueChange(db.Model):
    """The catalogue's audit trail: who changed which service type, product or plan, and each field's value
    before and after (`changes`: {field: [before, after]})."""

    __tablename__ = "catalogue_changes"
    __table_args__ = (Index("ix_catalogue_changes_tenant", "tenant_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    entity: Mapped[str] = mapped_column(String(20))  # service_type, product, plan
    entity_id: Mapped[int] = mapped_column()
    action: Mapped[str] = mapped_column(String(20))  # created, edited, prices_imported (publishing and the
    # other lifecycle transitions are recorded as CatalogueOperation rows)
    changes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    impersonator_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
