"""A customer's SSH keys, as their account page and the order form show them; always by tenant and owner."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, select

from app.domain.ssh_keys import TYPE_LABELS
from app.extensions import db
from app.models import SshKey, TenantLike, User


@dataclass(frozen=True, slots=True)
class KeyRow:
    id: int
    name: str
    key_type: str
    bits: int
    fingerprint: str
    public_key: str
    is_default: bool
    created_at: datetime

    @property
    def label(self) -> str:
        """As `ssh-keygen -l` names the kind: ED25519, ECDSA, RSA."""
        return TYPE_LABELS.get(self.key_type, self.key_type)


_KEYS = (select(SshKey.id, SshKey.name, SshKey.key_type, SshKey.bits, SshKey.fingerprint, SshKey.public_key,
                SshKey.is_default, SshKey.created_at)
         .where(SshKey.tenant_id == bindparam("tenant_id"), SshKey.user_id == bindparam("user_id"))
         .order_by(SshKey.name, SshKey.id))
_CHOSEN = _KEYS.where(SshKey.id.in_(bindparam("ids", expanding=True)))


def customer_keys(tenant: TenantLike, customer: User) -> list[KeyRow]:
    """The customer's keys by name: one statement."""
    return [KeyRow(*row) for row in db.session.execute(_KEYS, {"tenant_id": tenant.id, "user_id": customer.id})]


def chosen_keys(tenant: TenantLike, customer: User, ids: Iterable[int]) -> list[KeyRow]:
    """Those of `ids` that are the customer's keys (others' ids are simply not found): one statement."""
    wanted = sorted(set(ids))
    if not wanted:
        return []
    return [KeyRow(*row) for row in
            db.session.execute(_CHOSEN, {"tenant_id": tenant.id, "user_id": customer.id, "ids": wanted})]
