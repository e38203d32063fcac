"""Registration, login and logout. Sessions live in the database so they can be ended for good."""

from __future__ import annotations

import logging

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from app.clock import now
from app.domain.accounts import Role, normalize_email, password_problem
from app.domain.policy import ActorKind
from app.extensions import db
from app.models import TenantLike, User, UserSession
from app.services import impersonation
from app.services.actors import Actor
from app.services.errors import AuthenticationFailed, Forbidden, InvalidInput
from app.services.passwords import burn_verification, hash_password, verify_password
from app.services.sessions import add_session

log = logging.getLogger(__name__)

LOGIN_FAILED = "Email or password is not right."


def register_customer(*, tenant: TenantLike, name: str, email: str, password: str) -> User:
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


def log_in(*, tenant: TenantLike, email: str, password: str, remote_addr: str | None,
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
    add_session(user=user, remote_addr=remote_addr, user_agent=user_agent)
    db.session.commit()
    return user


def log_out(*, user: User) -> None:
    """End the session this user logged in with; its cookie is worthless from now on.

    A support user who logs out while impersonating `user` ends the impersonation too ("logged_out"); their
    own session was already ended when it started, so everyone is logged out.
    """
    if user.session_token:
        impersonation.end_with_session(session_token=user.session_token)
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


def set_active(*, actor: Actor, user: User, active: bool) -> None:
    """Enable or disable an account (a tenant admin of its tenant, or the portal); disabling ends all its
    sessions."""
    if actor.kind not in (ActorKind.TENANT_ADMIN, ActorKind.SYSTEM) or (
            actor.user is not None and actor.user.tenant_id != user.tenant_id):
        raise Forbidden("Only the tenant's admins can enable or disable accounts.")
    log.info("account %s %s by %s", user.id, "enabled" if active else "disabled", actor.user_id or actor.name)
    user.is_active = active
    db.session.commit()
    if not active:
        end_all_sessions(user=user)


def _email_taken(tenant: TenantLike, email: str) -> bool:
    query = select(User.id).where(User.tenant_id == tenant.id, User.email == email)
    return db.session.scalar(query) is not None


# --- sessions opened as part of a larger change, password and email ----------------------------------------

NOT_WHILE_IMPERSONATING = ("Support staff cannot change a customer's {what} while impersonating them. "
                           "Only the customer can, logged in as themselves.")


def change_password(*, actor: Actor, current_password: str, new_password: str, remote_addr: str | None,
                    user_agent: str | None) -> User:
    """Set a new password for `actor.user`, who proves it with the current one.

    Every other session of the user ends (RELIABILITY row 4) and the current one is renewed: the returned
    user carries the new session's token, to be put in a fresh cookie. Refused (Forbidden) while support
    impersonates the user; a wrong current password or a weak new one raises InvalidInput naming the field.
    Nothing changes when refused.
    """
    user = _owner(actor, "password")
    if not verify_password(user.password_hash, current_password):
        log.warning("password change refused: wrong current password", extra={"user_id": user.id})
        raise InvalidInput("Your current password is not right.", field="current_password")
    if problem := password_problem(new_password):
        raise InvalidInput(problem, field="new_password")
    if verify_password(user.password_hash, new_password):
        raise InvalidInput("Choose a password different from the current one.", field="new_password")
    user.password_hash = hash_password(new_password)
    db.session.execute(update(UserSession).where(UserSession.user_id == user.id, UserSession.revoked_at.is_(None))
                       .values(revoked_at=now()))
    add_session(user=user, remote_addr=remote_addr, user_agent=user_agent)
    db.session.commit()
    log.info("password changed; other sessions ended", extra={"user_id": user.id})
    return user


def change_email(*, actor: Actor, password: str, new_email: str) -> User:
    """Change the login email of `actor.user`, who confirms with their password.

    The email is normalized and must be free in the user's tenant (InvalidInput naming the field, also when
    another request takes it at the same moment). Refused (Forbidden) while support impersonates the user.
    """
    user = _owner(actor, "email")
    email = normalize_email(new_email)
    if not verify_password(user.password_hash, password):
        log.warning("email change refused: wrong password", extra={"user_id": user.id})
        raise InvalidInput("Your password is not right.", field="password")
    if email == user.email:
        raise InvalidInput("This is already your email.", field="email")
    try:
        validate_email(email, check_deliverability=False)
    except EmailNotValidError:
        raise InvalidInput("Enter a valid email address.", field="email") from None
    if len(email) > 254:
        raise InvalidInput("Use an email of at most 254 characters.", field="email")
    taken = InvalidInput("Another account already uses this email.", field="email")
    if db.session.scalar(select(User.id).where(User.tenant_id == user.tenant_id, User.email == email)):
        raise taken
    old = user.email
    user.email = email
    try:
        db.session.commit()
    except IntegrityError:  # taken by another request a moment ago
        db.session.rollback()
        raise taken from None
    log.info("email changed", extra={"user_id": user.id, "old_email": old})
    return user


def _owner(actor: Actor, what: str) -> User:
    """The account owner acting for themselves; support acting as them is refused."""
    if actor.impersonator is not None:
        log.warning("refused while impersonating: change %s", what,
                    extra={"user_id": actor.user_id, "impersonator_id": actor.impersonator_id})
        raise Forbidden(NOT_WHILE_IMPERSONATING.format(what=what))
    return actor.user
