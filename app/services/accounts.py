"""Registration, login and logout. Sessions live in the database so they can be ended for good."""

from __future__ import annotations

import logging
import secrets

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from app.clock import now
from app.domain.accounts import Role, normalize_email, password_problem
from app.extensions import db
from app.models import Tenant, User, UserSession
from app.services.errors import AuthenticationFailed, InvalidInput
from app.services.passwords import burn_verification, hash_password, verify_password

log = logging.getLogger(__name__)

LOGIN_FAILED = "Email or password is not right."


def register_customer(*, tenant: Tenant, name: str, email: str, password: str) -> User:
    """Create a customer account in `tenant`. Raises InvalidInput naming the field at fault."""
    email = normalize_email(email)
    if problem := password_problem(password):
        raise InvalidInput(problem, field="password")
    if _email_taken(tenant, email):
        raise InvalidInput("An account with this email already exists. Log in instead.", field="email")
    user = User(tenant_id=tenant.id, name=name.strip(), email=email, role=Role.CUSTOMER,
                password_hash=hash_password(password))
    db.session.add(user)
    try:
        db.session.commit()
    except IntegrityError:  # the same email registered a moment ago, in another request
        db.session.rollback()
        raise InvalidInput("An account with this email already exists. Log in instead.", field="email") from None
    log.info("account registered", extra={"tenant": tenant.slug, "user_id": user.id})
    return user


def log_in(*, tenant: Tenant, email: str, password: str, remote_addr: str | None,
           user_agent: str | None) -> User:
    """Check the credentials and open a new server-side session; the user carries its token.

    Unknown email, wrong password and disabled account all answer the same, in the same time.
    """
    user = db.session.scalar(
        select(User).where(User.tenant_id == tenant.id, User.email == normalize_email(email))
    )
    if user is None:
        burn_verification(password)
    if user is None or not verify_password(user.password_hash, password) or not user.is_active:
        log.warning("login failed", extra={"tenant": tenant.slug, "remote_addr": remote_addr})
        raise AuthenticationFailed(LOGIN_FAILED)
    log.info("login", extra={"tenant": tenant.slug, "user_id": user.id})
    return start_session(user=user, remote_addr=remote_addr, user_agent=user_agent)


def start_session(*, user: User, remote_addr: str | None, user_agent: str | None) -> User:
    """Open a new server-side session for `user`; its token becomes the id in the cookie."""
    token = secrets.token_urlsafe(32)
    db.session.add(UserSession(token=token, user_id=user.id, created_at=now(),
                               remote_addr=(remote_addr or "")[:45] or None,
                               user_agent=(user_agent or "")[:255] or None))
    db.session.commit()
    user.session_token = token
    return user


def log_out(*, user: User) -> None:
    """End the session this user logged in with; its cookie is worthless from now on."""
    if user.session_token:
        db.session.execute(
            update(UserSession)
            .where(UserSession.token == user.session_token, UserSession.revoked_at.is_(None))
            .values(revoked_at=now())
        )
        db.session.commit()


def end_all_sessions(*, user: User, keep_token: str | None = None) -> int:
    """Revoke every open session of `user` but `keep_token` (password change, disabled account)."""
    statement = update(UserSession).where(UserSession.user_id == user.id, UserSession.revoked_at.is_(None))
    if keep_token:
        statement = statement.where(UserSession.token != keep_token)
    result = db.session.execute(statement.values(revoked_at=now()))
    db.session.commit()
    return result.rowcount


def set_active(*, user: User, active: bool) -> None:
    """Enable or disable an account; disabling ends all its sessions."""
    user.is_active = active
    db.session.commit()
    if not active:
        end_all_sessions(user=user)


def _email_taken(tenant: Tenant, email: str) -> bool:
    query = select(User.id).where(User.tenant_id == tenant.id, User.email == email)
    return db.session.scalar(query) is not None
