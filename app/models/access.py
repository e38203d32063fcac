"""How customers reach the servers they bought: their SSH public keys."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.base import UTCDateTime


class SshKey(db.Model):
    """One public key of one customer, validated when added and shown by its fingerprint."""

    __tablename__ = "ssh_keys"
    __table_args__ = (UniqueConstraint("user_id", "fingerprint"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    key_type: Mapped[str] = mapped_column(String(40))  # ssh-ed25519, ecdsa-sha2-nistp256, ssh-rsa
    bits: Mapped[int] = mapped_column()
    public_key: Mapped[str] = mapped_column(Text)  # "type base64 [comment]", normalized
    fingerprint: Mapped[str] = mapped_column(String(100))  # "SHA256:..." as ssh-keygen -l shows it
    is_default: Mapped[bool] = mapped_column(default=True)  # preselected when ordering
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
