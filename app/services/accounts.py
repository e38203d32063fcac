"""Registration and address confirmation, login and logout, password and login email.

Sessions live in the database so they can be ended for good. Nothing here tells anyone whether an address has an
account (RELIABILITY row 36): registration and email change answer alike and tell the address's owner by email.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from app.clock import now
from app.domain.accounts import Role, TokenPurpose, normalize_email, password_problem
from app.domain.notifications import Event
from app.domain.policy import ActorKind
from app.extensions import db
from app.models import TenantLike, User, UserSession
from app.services import account_links, confirmation, impersonation
from app.services.actors import Actor
from app.services.errors import AuthenticationFailed, Forbidden, InvalidInput, NotConfirmed
from app.services.notifications import notify
from app.services.passwords import burn_verification, hash_password, verify_password
from app.services.sessions import add_session

log = logging.getLogger(__name__)

LOGIN_FAILED = "Email or password is not right."


def register_customer(*, tenant: TenantLike, name: str, email: str, password: str) -> User | None:
    """Create a customer account in `tenant`, not confirmed yet, and email it the link that confirms the address
    and logs in (VERIFY_EMAIL). Until then the account cannot log in.

    The answer reveals nothing about other accounts (RELIABILITY row 36): when the address already has an
    account in the tenant, nothing is created, its owner is told by email (ACCOUNT_EXISTS) and None is
    returned, and the caller answers exactly as for a new account. Both ways hash the password and write one
    email, so they take about as long. Raises InvalidInput (field "password") for a password the rules refuse.
    """
    email = normalize_email(email)
    if problem := password_problem(password):
        raise InvalidInput(problem, field="password")
    password_hash = hash_password(password)
    owner = _by_email(tenant.id, email)
    if owner is None:
        user = User(tenant_id=tenant.id, name=name.strip(), email=email, role=Role.CUSTOMER,
                    password_hash=password_hash)
        db.session.add(user)
        try:
            db.session.flush()
        except IntegrityError:  # the same address registered a moment ago, in another request
            db.session.rollback()
            owner = _by_email(tenant.id, email)
        else:
            confirmation.send(user)
            db.session.commit()
            log.info("account registered", extra={"tenant": tenant.slug, "user_id": user.id})
            return user
    if owner is not None:
        confirmation.tell_owner(owner, attempt="registration")
        db.session.commit()
    return None


def log_in(*, tenant: TenantLike, email: str, password: str, remote_addr: str | None,
           user_agent: str | None) -> User:
    """Check the credentials and open a new server-side session; the user carries its token.

    Unknown email, wrong password and disabled or deleted account all answer the same, in the same time. With
    the right password but an address not confirmed yet, raises NotConfirmed (the caller may send a new link).
    """
    user = _by_email(tenant.id, email)
    if user is None:
        burn_verification(password)
    if user is None or not verify_password(user.password_hash, password) or not user.is_active:
        log.warning("login failed", extra={"tenant": tenant.slug, "remote_addr": remote_addr})
        raise AuthenticationFailed(LOGIN_FAILED)
    if user.email_verified_at is None:
        log.info("login refused: address not confirmed", extra={"tenant": tenant.slug, "user_id": user.id})
        raise NotConfirmed(user_id=user.id, email=user.email)
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


def end_every_session(user: User) -> int:
    """Log `user` out everywhere: close support's impersonations of them and revoke every session of theirs.
    Returns how many sessions ended; the caller commits."""
    impersonation.close_all_of(customer_id=user.id)
    return db.session.execute(
        update(UserSession).where(UserSession.user_id == user.id, UserSession.revoked_at.is_(None))
        .values(revoked_at=now()).execution_options(synchronize_session=False)
    ).rowcount


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


def _by_email(tenant_id: int, email: str) -> User | None:
    return db.session.scalar(select(User).where(User.tenant_id == tenant_id, User.email == normalize_email(email)))


# --- sessions opened as part of a larger change, password and email ----------------------------------------

NOT_WHILE_IMPERSONATING = ("Support staff cannot change a customer's {what} while impersonating them. "
                           "Only the customer can, logged in as themselves.")


def change_password(*, actor: Actor, current_password: str, new_password: str, remote_addr: str | None,
                    user_agent: str | None) -> User:
    """Set a new password for `actor.user`, who proves it with the current one.

    Every other session of the user ends (RELIABILITY row 4) and the current one is renewed: the returned
    user carries the new session's token, to be put in a fresh cookie. The user is told by email. Refused
    (Forbidden) while support impersonates the user; a wrong current password or a weak new one raises
    InvalidInput naming the field. Nothing changes when refused.
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
    end_every_session(user)
    add_session(user=user, remote_addr=remote_addr, user_agent=user_agent)
    notify(Event.PASSWORD_CHANGED, user=user, when=when(now()))
    db.session.commit()
    log.info("password changed; other sessions ended", extra={"user_id": user.id})
    return user


def change_email(*, actor: Actor, password: str, new_email: str) -> str:
    """Ask to change the login email of `actor.user`, who confirms with their password; returns the new address,
    normalized. Nothing changes until the new address confirms through the link sent there (`confirm_email`);
    until then the old one stays and a new request replaces the pending one.

    When the new address already has an account in the tenant, the answer is the same and its owner is told
    instead (ACCOUNT_EXISTS): nobody learns through this form who has an account (RELIABILITY row 36). Refused
    (Forbidden) while support impersonates the user; a wrong password or an invalid address raises InvalidInput
    naming the field.
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
    owner = _by_email(user.tenant_id, email)
    if owner is None:
        confirmation.send(user, new_email=email)
    else:  # pending all the same, so the page reads alike; the link that would confirm it is never sent
        account_links.issue(user=user, purpose=TokenPurpose.VERIFY_EMAIL, new_email=email)
        confirmation.tell_owner(owner, attempt="email_change")
    db.session.commit()
    log.info("email change asked", extra={"user_id": user.id})
    return email


def when(moment: datetime) -> str:
    """A moment as the account emails name it: "15 Mar 2026, 10:00 UTC"."""
    return f"{moment.astimezone(UTC):%-d %b %Y, %H:%M} UTC"


def _owner(actor: Actor, what: str) -> User:
    """The account owner acting for themselves; support acting as them is refused."""
    if actor.impersonator is not None:
        log.warning("refused while impersonating: change %s", what,
                    extra={"user_id": actor.user_id, "impersonator_id": actor.impersonator_id})
        raise Forbidden(NOT_WHILE_IMPERSONATING.format(what=what))
    return actor.user
