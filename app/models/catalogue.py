"""The catalogue: service types, products and their plans."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.domain.catalogue import CatalogueState, ChangeRule, Interval, Provider
from app.extensions import db
from app.models.base import Timestamps, enum_type


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

    product: Mapped[Product] = relationship(back_populates="plans")
    service_type: Mapped[ServiceType] = relationship()
    migration_target: Mapped[Plan | None] = relationship(remote_side=[id])

    @property
    def is_free(self) -> bool:
        return self.price_minor == 0
