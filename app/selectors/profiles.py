"""Customer profiles, as their owner sees them."""

from __future__ import annotations

from sqlalchemy import select

from app.extensions import db
from app.models import CustomerProfile, User


def profile_for(user: User) -> CustomerProfile | None:
    """The billing profile of `user` (never anyone else's), or None if there is none yet."""
    return db.session.scalar(select(CustomerProfile).where(CustomerProfile.user_id == user.id))
