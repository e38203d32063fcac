"""Login sessions: each one a row whose token the browser's cookie carries (see app/web/access.py)."""

from __future__ import annotations

import secrets

from app.clock import now
from app.extensions import db
from app.models import User, UserSession


def add_session(*, user: User, remote_addr: str | None, user_agent: str | None,
                impersonation_id: int | None = None) -> User:
    """A new session for `user` (its token becomes the id in the cookie); the caller commits."""
    token = secrets.token_urlsafe(32)
    db.session.add(UserSession(token=token, user_id=user.id, created_at=now(), impersonation_id=impersonation_id,
                               remote_addr=(remote_addr or "")[:45] or None,
                               user_agent=(user_agent or "")[:255] or None))
    user.session_token = token
    return user
