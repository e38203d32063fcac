"""Charges: the open positions a subscription creates. Unique per period, so no job bills twice."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.domain.billing import ChargeKind
from app.extensions import db
from app.models.base import UTCDateTime, enum_type


class Charge(db.Model):
    __tablename__ = "charges"
    __table_args__ = (UniqueConstraint("subscription_id", "kind", "period_start"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    subscription_id: Mapped[int] = mapped_column(ForeignKey("subscriptions.id", ondelete="CASCADE"), index=True)
    kind: Mapped[ChargeKind] = mapped_column(enum_type(ChargeKind, "charge_kind"))
    description: Mapped[str] = mapped_column(String(200))
    amount_minor: Mapped[int] = mapped_column()
    currency: Mapped[str] = mapped_column(String(3))
    period_start: Mapped[datetime] = mapped_column(UTCDateTime)
    period_end: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
