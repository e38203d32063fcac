"""A forgotten password: a link by email, then a new password through it.

Asking for a link answers the same whether or not the address has an account, and does about the same work
(RELIABILITY row 36). The link works once, for an hour, and a newer one replaces it. Setting a new password
through it logs the user out everywhere (support's impersonations of them included), confirms their address
(they read the email) and logs them in afresh.
"""

from __future__ import annotations

import logging

from sqlalchemy import select

from app.clock import now
from app.domain.accounts import RESET_LINK_LIFETIME, TokenPurpose, normalize_email, password_problem
from app.domain.notifications import Event
from app.extensions import db
from app.models import Tenant, TenantLike, User
from app.selectors.accounts import usable_link
from app.services import account_links
from app.services.accounts import end_every_session, when
from app.services.errors import InvalidInput, NotFound
from app.services.notifications import notify, render
from app.services.passwords import hash_password
from app.services.sessions import add_session

log = logging.getLogger(__name__)

MINUTES = int(RESET_LINK_LIFETIME.total_seconds() // 60)


def request_reset(*, tenant: TenantLike, email: str) -> None:
    """Email a link to set a new password to the account of `tenant` with this address, if there is one that
    can log in. Returns nothing, and takes about as long either way: for an unknown address the same email is
    rendered and dropped, so nobody learns from the answer, or its time, who has an account."""
    address = normalize_email(email)
    user = db.session.scalar(select(User).where(User.tenant_id == tenant.id, User.email == address,
                                                User.is_active.is_(True), User.deleted_at.is_(None)))
    if user is None:
        brand = db.session.get(Tenant, tenant.id)
        assert brand is not None
        render(Event.PASSWORD_RESET, tenant=brand, user=User(tenant_id=tenant.id, name="", email=address),
               token="x" * 43, minutes=MINUTES)  # the same work as below, sent nowhere
        log.info("password reset asked for an address without an account", extra={"tenant": tenant.slug})
        return
    secret = account_links.issue(user=user, purpose=TokenPurpose.RESET_PASSWORD)
    notify(Event.PASSWORD_RESET, user=user, token=secret, minutes=MINUTES)
    db.session.commit()
    log.info("password reset link sent", extra={"tenant": tenant.slug, "user_id": user.id})


def reset_password(*, tenant: TenantLike, secret: str, password: str, remote_addr: str | None,
                   user_agent: str | None) -> User:
    """Set a new password through the link `secret`, once; returns the user with a new session's token.

    Every session of the user ends (and support's impersonations of them), their other reset links stop
    working, the address counts as confirmed, and the user is told by email (PASSWORD_CHANGED). A password the
    rules refuse raises InvalidInput (field "password") and leaves the link usable; a link that does not work
    (unknown, of another tenant, expired, used, by a racing request too) raises NotFound.
    """
    if problem := password_problem(password):
        raise InvalidInput(problem, field="password")
    if usable_link(tenant, secret, TokenPurpose.RESET_PASSWORD) is None:  # before the slow hash below
        raise NotFound(account_links.LINK_INVALID)
    password_hash = hash_password(password)
    token = account_links.use(tenant=tenant, secret=secret, purpose=TokenPurpose.RESET_PASSWORD)
    user = token.user
    moment = now()
    user.password_hash = password_hash
    user.email_verified_at = user.email_verified_at or moment
    account_links.forget(user=user, purpose=TokenPurpose.RESET_PASSWORD)
    ended = end_every_session(user)
    add_session(user=user, remote_addr=remote_addr, user_agent=user_agent)
    notify(Event.PASSWORD_CHANGED, user=user, when=when(moment))
    db.session.commit()
    log.info("password reset; %s sessions ended", ended, extra={"tenant": tenant.slug, "user_id": user.id})
    return user
