"""Users as seen by the login machinery and by staff."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from app.clock import now
from app.extensions import db
from app.models import TenantLike, User, UserSession


def user_for_session(token: str, *, tenant: TenantLike, lifetime: timedelta) -> User | None:
    """The active user of an open, unexpired session of `tenant`, or None."""
    user = db.session.scalar(
        select(User)
        .join(UserSession, UserSession.user_id == User.id)
        .where(
            UserSession.token == token,
            UserSession.revoked_at.is_(None),
            UserSession.created_at > now() - lifetime,
            User.tenant_id == tenant.id,
            User.is_active.is_(True),
        )
    )
    if user is not None:
        user.session_token = token
    return user
