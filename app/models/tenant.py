"""Tenants: one operator brand each, reached by its hostnames."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.base import Timestamps


class Tenant(Timestamps, db.Model):
    __tablename__ = "tenants"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(63), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    retention_days: Mapped[int] = mapped_column(default=7)
    # Emails go out in the tenant's name: "Name <address>"; unset, the tenant's name and MAIL_DEFAULT_SENDER.
    email_sender_name: Mapped[str | None] = mapped_column(String(100))
    email_sender_address: Mapped[str | None] = mapped_column(String(254))

    hosts: Mapped[list[TenantHost]] = relationship(
        back_populates="tenant", cascade="all, delete-orphan", order_by="TenantHost.hostname"
    )

    def __repr__(self) -> str:
        return f"<Tenant {self.slug}>"


class TenantHost(db.Model):
    __tablename__ = "tenant_hosts"

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    hostname: Mapped[str] = mapped_column(String(253), unique=True)

    tenant: Mapped[Tenant] = relationship(back_populates="hosts")


@dataclass(frozen=True, slots=True)
class TenantRef:
    """What a request and the services it calls need of the current tenant; kept between requests."""

    id: int
    slug: str
    name: str
    retention_days: int

    @classmethod
    def of(cls, tenant: Tenant) -> TenantRef:
        return cls(tenant.id, tenant.slug, tenant.name, tenant.retention_days)


# What services and selectors take as "the tenant": the row, or the snapshot a request carries.
TenantLike = Tenant | TenantRef
