"""Users as seen by the login machinery and by staff."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import bindparam, select

from app.clock import now
from app.extensions import db
from app.models import TenantLike, User, UserSession

# Built once: every request runs it, and building a statement costs more than running this one.
_SESSION_USER = (
    select(User)
    .join(UserSession, UserSession.user_id == User.id)
    .where(UserSession.token == bindparam("token"), UserSession.revoked_at.is_(None),
           UserSession.created_at > bindparam("since"), User.tenant_id == bindparam("tenant_id"),
           User.is_active.is_(True))
)


def user_for_session(token: str, *, tenant: TenantLike, lifetime: timedelta) -> User | None:
    """The active user of an open, unexpired session of `tenant`, or None."""
    user = db.session.scalar(_SESSION_USER, {"token": token, "since": now() - lifetime, "tenant_id": tenant.id})
    if user is not None:
        user.session_token = token
    return user
