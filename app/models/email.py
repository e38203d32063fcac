"""The email log: every email the portal sends, what became of it, and (for a while) what it said."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.domain.notifications import EmailStatus
from app.extensions import db
from app.models.base import UTCDateTime, enum_type


class EmailMessage(db.Model):
    """One email to one address. Written in the transaction of the change it tells about, sent after."""

    __tablename__ = "email_messages"
    __table_args__ = (
        Index("ix_email_messages_tenant_user_created", "tenant_id", "user_id", "created_at"),
        Index("ix_email_messages_tenant_status_created", "tenant_id", "status", "created_at"),
        Index("ix_email_messages_status_next_attempt", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    subscription_id: Mapped[int | None] = mapped_column(ForeignKey("subscriptions.id", ondelete="SET NULL"))
    event: Mapped[str] = mapped_column(String(40))
    to_address: Mapped[str] = mapped_column(String(254))
    from_address: Mapped[str] = mapped_column(String(320))  # "Tenant Name <noreply@tenant>"
    subject: Mapped[str] = mapped_column(String(255))
    text_body: Mapped[str | None] = mapped_column(Text)  # kept for EMAIL_BODY_RETENTION_DAYS, then cleared
    html_body: Mapped[str | None] = mapped_column(Text)
    status: Mapped[EmailStatus] = mapped_column(enum_type(EmailStatus, "email_status"), default=EmailStatus.QUEUED)
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # while queued
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    body_purged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Written in bulk without its text (the billing run's invoices): what it is rendered from when it is sent,
    # e.g. {"invoice_id": 12} (app/services/notifications.py RENDERED_WHEN_SENT).
    render_context: Mapped[dict[str, Any] | None] = mapped_column(JSON)
