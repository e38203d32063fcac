"""Support impersonation: who acted as whom, why, for how long, how it ended, and what was done meanwhile.

Both tables are an audit trail, append-only in spirit: an `Impersonation` row is created once when support
starts acting as a customer and closed once (`ended_at` and `end_reason` set together, never again); who,
whom, reason and deadline are never edited. `ImpersonationAction` rows are only ever inserted.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.base import UTCDateTime, enum_type
from app.models.user import User


class EndReason(StrEnum):
    """How an impersonation ended."""

    STOPPED = "stopped"  # the support user pressed Stop
    EXPIRED = "expired"  # the time limit passed; closed at the next request (or by a sweep)
    LOGGED_OUT = "logged_out"  # the support user logged out while acting as the customer
    SUPERSEDED = "superseded"  # the same support user started another one (e.g. in another browser)
    SESSION_ENDED = "session_ended"  # the session was ended from elsewhere (customer disabled, password reset)

    @property
    def label(self) -> str:
        return {
            "stopped": "Stopped by support",
            "expired": "Time limit reached",
            "logged_out": "Logged out",
            "superseded": "Replaced by a newer impersonation",
            "session_ended": "Session ended elsewhere",
        }[self.value]


class Impersonation(db.Model):
    """One support user acting as one customer of the same tenant, with a reason and a deadline."""

    __tablename__ = "impersonations"
    __table_args__ = (
        Index("ix_impersonations_tenant_started", "tenant_id", "started_at"),
        Index("ix_impersonations_support_open", "support_user_id", "ended_at"),
        Index("ix_impersonations_customer_started", "customer_id", "started_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    support_user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    reason: Mapped[str] = mapped_column(String(500))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)  # the deadline, fixed at the start
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    end_reason: Mapped[EndReason | None] = mapped_column(enum_type(EndReason, "impersonation_end_reason"))
    remote_addr: Mapped[str | None] = mapped_column(String(45))

    support_user: Mapped[User] = relationship(foreign_keys=[support_user_id])
    customer: Mapped[User] = relationship(foreign_keys=[customer_id])
    actions: Mapped[list[ImpersonationAction]] = relationship(
        back_populates="impersonation", order_by="ImpersonationAction.id"
    )

    @property
    def is_open(self) -> bool:
        return self.ended_at is None

    def is_over(self, moment: datetime) -> bool:
        """The deadline has passed at `moment` (the record may not be closed yet)."""
        return moment >= self.ends_at

    def __repr__(self) -> str:
        return f"<Impersonation {self.id} {self.support_user_id}->{self.customer_id}>"


class ImpersonationAction(db.Model):
    """A request made while impersonating: every state-changing one, and the pages viewed."""

    __tablename__ = "impersonation_actions"
    __table_args__ = (Index("ix_impersonation_actions_impersonation_at", "impersonation_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    impersonation_id: Mapped[int] = mapped_column(ForeignKey("impersonations.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    method: Mapped[str] = mapped_column(String(10))
    path: Mapped[str] = mapped_column(String(500))
    endpoint: Mapped[str | None] = mapped_column(String(100))
    status_code: Mapped[int] = mapped_column()

    impersonation: Mapped[Impersonation] = relationship(back_populates="actions")

    @property
    def changes_state(self) -> bool:
        return self.method != "GET"
