"""Users as seen by the login machinery and by staff, and the links sent to them by email."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import ColumnElement, bindparam, exists, func, select
from sqlalchemy.orm import joinedload

from app.clock import now
from app.domain.accounts import LINK_SECRET_MAX_LENGTH, TokenPurpose, link_secret_hash
from app.domain.subscriptions import SubscriptionStatus
from app.extensions import db
from app.models import AccountToken, Subscription, TenantLike, User, UserSession

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


# --- links sent by email (app/services/account_links.py) ----------------------------------------------------

def link_works(tenant: TenantLike, secret: str, purpose: TokenPurpose) -> tuple[ColumnElement[bool], ...]:
    """The conditions under which the link `secret` of `purpose` works in `tenant` now: issued in this tenant,
    not used, not expired, and its user still able to log in (not disabled, not deleted)."""
    user_can_log_in = exists().where(User.id == AccountToken.user_id, User.tenant_id == tenant.id,
                                     User.is_active.is_(True), User.deleted_at.is_(None))
    return (AccountToken.token_hash == link_secret_hash(secret), AccountToken.tenant_id == tenant.id,
            AccountToken.purpose == purpose, AccountToken.used_at.is_(None), AccountToken.expires_at > now(),
            user_can_log_in)


def plausible_secret(secret: str | None) -> bool:
    """Whether `secret` could be one we issued; anything else is not looked up."""
    return bool(secret) and len(secret) <= LINK_SECRET_MAX_LENGTH  # type: ignore[arg-type]


def usable_link(tenant: TenantLike, secret: str, purpose: TokenPurpose) -> AccountToken | None:
    """The link `secret` of `purpose` with its user, if it works in `tenant` now (`link_works`); else None."""
    if not plausible_secret(secret):
        return None
    return db.session.scalar(select(AccountToken).where(*link_works(tenant, secret, purpose))
                             .options(joinedload(AccountToken.user)))


def pending_email_change(user: User) -> AccountToken | None:
    """The change of login email `user` asked for and has not confirmed yet (its link still works), if any."""
    return db.session.scalar(
        select(AccountToken).where(AccountToken.user_id == user.id, AccountToken.purpose == TokenPurpose.VERIFY_EMAIL,
                                   AccountToken.new_email.is_not(None), AccountToken.used_at.is_(None),
                                   AccountToken.expires_at > now())
        .order_by(AccountToken.created_at.desc()).limit(1))


def live_subscription_count(tenant: TenantLike, user: User) -> int:
    """How many of the user's subscriptions are not canceled yet: those deleting the account ends at once."""
    return db.session.scalar(select(func.count()).select_from(Subscription).where(
        Subscription.tenant_id == tenant.id, Subscription.user_id == user.id,
        Subscription.status != SubscriptionStatus.CANCELED)) or 0
