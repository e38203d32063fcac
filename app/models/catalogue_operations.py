"""The catalogue's lifecycle operations: who did what to which plans, and for the bulk ones, what became of each
subscription.

Every catalogue transition (publish, deprecate, set a target, supersede, replace, retire) writes one
`catalogue_operations` row: the audit of who and what. Replace and retire touch every subscription of their
plans: their row is a tracked operation (running, paused, finished, failed) that a task advances chunk by
chunk, each chunk in the transaction that changes its subscriptions, so a subscription is touched exactly once
however often the operation is stopped and taken up again:

- a replace records each move in the subscription's history: its `plan_replaced` event carries the operation's
  id, and (operation, subscription) is unique among events (a partial unique index). Its prices and resize are in
  the event, its proration in the charges written with it (app/selectors/catalogue_operations.py reads them
  together as the operation's outcomes). A subscription not moved yet is one still on a source plan: the source
  plans are retired when the operation starts, so nothing else puts a subscription on them;
- a retire writes one `catalogue_operation_outcomes` row per subscription (canceled, or failed with the reason),
  unique per (operation, subscription).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.domain.plan_lifecycle import CatalogueAction
from app.extensions import db
from app.models.base import UTCDateTime, enum_type
from app.models.user import User


class OperationStatus(StrEnum):
    RUNNING = "running"
    PAUSED = "paused"
    FINISHED = "finished"
    FAILED = "failed"

    @property
    def label(self) -> str:
        return self.value.capitalize()


class Outcome(StrEnum):
    MOVED = "moved"
    CANCELED = "canceled"
    SKIPPED = "skipped"
    FAILED = "failed"


class CatalogueOperation(db.Model):
    """One catalogue transition, by one admin; for replace and retire, also its progress."""

    __tablename__ = "catalogue_operations"
    __table_args__ = (
        Index("ix_catalogue_operations_tenant_id", "tenant_id", "id"),
        Index("ix_catalogue_operations_status", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    kind: Mapped[CatalogueAction] = mapped_column(enum_type(CatalogueAction, "catalogue_action"))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    actor_name: Mapped[str] = mapped_column(String(200))  # kept when the account is gone
    product_id: Mapped[int | None] = mapped_column(ForeignKey("products.id", ondelete="SET NULL"))
    # The plans it acted on; for replace, {source plan id: target plan id} (JSON keys are strings).
    plan_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    mapping: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # what else it did (a target, a copy)
    status: Mapped[OperationStatus] = mapped_column(enum_type(OperationStatus, "catalogue_operation_status"))
    total: Mapped[int] = mapped_column(default=0)  # the subscriptions it will touch, counted when it started
    moved: Mapped[int] = mapped_column(default=0)
    canceled: Mapped[int] = mapped_column(default=0)
    skipped: Mapped[int] = mapped_column(default=0)
    failed: Mapped[int] = mapped_column(default=0)
    # Replace: the customers up to this user id have been emailed about their moves (one email each, in user id
    # order once every subscription has moved).
    told_through: Mapped[int] = mapped_column(default=0, server_default="0")
    message: Mapped[str] = mapped_column(Text, default="")
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)  # the last chunk: a running one idle long is stalled
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    actor: Mapped[User | None] = relationship()

    @property
    def done(self) -> int:
        return self.moved + self.canceled + self.skipped + self.failed

    @property
    def percent(self) -> int:
        return 100 if not self.total else min(100, self.done * 100 // self.total)

    @property
    def active(self) -> bool:
        """Still to be advanced (the progress bar polls)."""
        return self.status is OperationStatus.RUNNING


class OperationOutcome(db.Model):
    """What a retire did to one subscription, written with the change itself. (A replace's moves are recorded by
    their history events; the admin sees both as the operation's outcomes, `OutcomeRow`.)"""

    __tablename__ = "catalogue_operation_outcomes"
    __table_args__ = (UniqueConstraint("operation_id", "subscription_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    operation_id: Mapped[int] = mapped_column(ForeignKey("catalogue_operations.id", ondelete="CASCADE"))
    subscription_id: Mapped[int] = mapped_column(ForeignKey("subscriptions.id", ondelete="CASCADE"), index=True)
    outcome: Mapped[Outcome] = mapped_column(enum_type(Outcome, "catalogue_outcome"))
    from_plan_id: Mapped[int | None] = mapped_column()
    to_plan_id: Mapped[int | None] = mapped_column()
    old_price_minor: Mapped[int | None] = mapped_column()
    new_price_minor: Mapped[int | None] = mapped_column()
    proration_minor: Mapped[int] = mapped_column(default=0)  # debit + credit charged for the rest of the period
    # The target plan's server type differs: the server is to be resized (done by the resize work, later).
    resize_needed: Mapped[bool] = mapped_column(default=False)
    message: Mapped[str] = mapped_column(String(500), default="")
    # The customer was told (the lifecycle's own cancellation email, sent with the change).
    notified: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
