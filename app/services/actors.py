"""Who is acting: a user, and the support user behind them while impersonating."""

from __future__ import annotations

from dataclasses import dataclass

from app.models import User


@dataclass(frozen=True)
class Actor:
    user: User
    impersonator: User | None = None

    @property
    def user_id(self) -> int:
        return self.user.id

    @property
    def impersonator_id(self) -> int | None:
        return self.impersonator.id if self.impersonator else None
