"""Links sent by email that let whoever holds them do one thing, once: set a new password, or confirm an address.

Only the SHA-256 of a link's secret is stored (`AccountToken`). A link works for its user in its tenant until
it expires (a password reset after an hour, a confirmation after a day) or is used, and only while the user
can log in; a new link of the same purpose replaces the user's older ones. Using a link is one conditional
UPDATE (`... WHERE used_at IS NULL AND expires_at > now`), so of two tabs or two racing requests one wins.
"""

from __future__ import annotations

from sqlalchemy import delete, select, update

from app.clock import now
from app.domain.accounts import TokenPurpose, link_lifetime, link_secret_hash, new_link_secret
from app.extensions import db
from app.models import AccountToken, TenantLike, User
from app.selectors.accounts import link_works, plausible_secret
from app.services.errors import NotFound

LINK_INVALID = ("This link is invalid or has expired. Links in our emails work once, for a short time, and a newer "
                "one replaces them.")


def issue(*, user: User, purpose: TokenPurpose, new_email: str | None = None) -> str:
    """A new link of `purpose` for `user` (for an email change, to `new_email`); returns its secret, which goes
    into the email and nowhere else. The user's older links of this purpose stop working. The caller commits."""
    db.session.execute(delete(AccountToken).where(AccountToken.user_id == user.id, AccountToken.purpose == purpose))
    secret = new_link_secret()
    moment = now()
    db.session.add(AccountToken(tenant_id=user.tenant_id, user_id=user.id, purpose=purpose,
                                token_hash=link_secret_hash(secret), new_email=new_email, created_at=moment,
                                expires_at=moment + link_lifetime(purpose)))
    return secret


def use(*, tenant: TenantLike, secret: str, purpose: TokenPurpose) -> AccountToken:
    """Mark the link `secret` used, once, and return it with its user. The caller commits, or rolls back to
    leave the link usable.

    Raises NotFound (LINK_INVALID) when it does not work (`link_works`): unknown, of another tenant or purpose,
    expired, used (by a racing request too), or its user can no longer log in.
    """
    if not plausible_secret(secret):
        raise NotFound(LINK_INVALID)
    used = db.session.execute(
        update(AccountToken).where(*link_works(tenant, secret, purpose)).values(used_at=now())
        .execution_options(synchronize_session=False)
    ).rowcount
    if used != 1:
        db.session.rollback()
        raise NotFound(LINK_INVALID)
    token = db.session.scalar(select(AccountToken).where(AccountToken.token_hash == link_secret_hash(secret)))
    assert token is not None
    return token


def forget(*, user: User, purpose: TokenPurpose) -> None:
    """`user`'s links of `purpose` stop working (a new password makes older reset links worthless). The caller
    commits."""
    db.session.execute(delete(AccountToken).where(AccountToken.user_id == user.id, AccountToken.purpose == purpose,
                                                  AccountToken.used_at.is_(None)))
