"""Confirming an address through the link sent to it: at registration (then the account may log in), and for a
new login email (then it becomes the login email). The owner of an address someone tried to take is told.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.clock import now
from app.domain.accounts import TokenPurpose, link_lifetime
from app.domain.notifications import Event
from app.extensions import db
from app.models import TenantLike, User
from app.services import account_links
from app.services.errors import Conflict
from app.services.notifications import notify
from app.services.sessions import add_session

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Confirmed:
    """What a confirmation link did: `user` confirmed their address (and, for a registration, holds a new
    session), or changed their login email from `previous_email`."""

    user: User
    previous_email: str | None = None


def send(user: User, *, new_email: str | None = None) -> None:
    """Email the link that confirms the user's address, or `new_email` for an email change (sent there). The
    caller commits."""
    secret = account_links.issue(user=user, purpose=TokenPurpose.VERIFY_EMAIL, new_email=new_email)
    notify(Event.VERIFY_EMAIL, user=user, to=new_email, token=secret, new_email=new_email,
           hours=_hours(TokenPurpose.VERIFY_EMAIL))


def resend(*, tenant: TenantLike, user_id: int) -> None:
    """A new confirmation link for an account of `tenant` that can log in but has not confirmed its address
    (asked by logging in with the right password); nothing for any other."""
    user = db.session.scalar(select(User).where(User.id == user_id, User.tenant_id == tenant.id,
                                                User.is_active.is_(True), User.deleted_at.is_(None),
                                                User.email_verified_at.is_(None)))
    if user is not None:
        send(user)
        db.session.commit()


def tell_owner(owner: User, *, attempt: str) -> None:
    """Tell the owner of an address that someone tried to register with it, or to move an account to it
    (`attempt`: "registration" or "email_change"). The caller commits."""
    notify(Event.ACCOUNT_EXISTS, user=owner, attempt=attempt)


def confirm(*, tenant: TenantLike, secret: str, remote_addr: str | None, user_agent: str | None) -> Confirmed:
    """Use a confirmation link of `tenant`, once.

    A registration's: the address is confirmed and the user logged in (the returned user carries a new
    session's token). An email change's: the login email becomes the new address, and the old one is told
    (EMAIL_CHANGED); if another account took the new address in the meantime, Conflict and nothing changes.
    A link that does not work raises NotFound (account_links.LINK_INVALID).
    """
    token = account_links.use(tenant=tenant, secret=secret, purpose=TokenPurpose.VERIFY_EMAIL)
    user = token.user
    moment = now()
    if token.new_email is None:
        user.email_verified_at = user.email_verified_at or moment
        add_session(user=user, remote_addr=remote_addr, user_agent=user_agent)
        db.session.commit()
        log.info("address confirmed", extra={"user_id": user.id})
        return Confirmed(user)
    previous, new_email = user.email, token.new_email
    taken = Conflict(f"Another account uses {new_email} by now, so your login email stays {previous}.")
    if db.session.scalar(select(User.id).where(User.tenant_id == tenant.id, User.email == new_email)) is not None:
        db.session.rollback()
        raise taken
    user.email, user.email_verified_at = new_email, moment
    notify(Event.EMAIL_CHANGED, user=user, to=previous, old_email=previous, new_email=new_email)
    try:
        db.session.commit()
    except IntegrityError:  # taken by another request a moment ago
        db.session.rollback()
        raise taken from None
    log.info("email changed", extra={"user_id": user.id, "old_email": previous})
    return Confirmed(user, previous_email=previous)


def _hours(purpose: TokenPurpose) -> int:
    return int(link_lifetime(purpose).total_seconds() // 3600)
