"""Personal API tokens: created on the account page, shown once, revocable, and checked on every API call.

A token acts as its user, within its scopes, in its tenant only. Only the user, logged in as themselves,
creates or revokes their tokens: support impersonating a customer is refused (impersonation does not extend
to the API). The admin scope is for tenant admins. Creation and revocation are logged with who did it.
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.orm import joinedload

from app.clock import now
from app.domain.accounts import Role
from app.domain.api_tokens import (
    EXPIRY_DAYS,
    NAME_MAX_LENGTH,
    Scope,
    format_scopes,
    lookup_of,
    new_token,
    parse_scopes,
    token_hash,
)
from app.extensions import db, writing
from app.models import ApiToken, TenantLike, User
from app.services.accounts import NOT_WHILE_IMPERSONATING
from app.services.actors import Actor
from app.services.errors import AuthenticationFailed, Forbidden, InvalidInput, NotFound

log = logging.getLogger(__name__)

MAX_TOKENS = 20  # open (unrevoked, unexpired) tokens per user
LAST_USED_PRECISION = timedelta(minutes=1)
INVALID_TOKEN = "The API token is missing, mistyped, expired or revoked."  # noqa: S105 (a message)


@dataclass(frozen=True)
class CreatedToken:
    """The new row and its secret: the only moment the secret exists outside the caller's hands."""

    token: ApiToken
    secret: str


def offered_scopes(user: User) -> tuple[Scope, ...]:
    """The scopes the account page offers `user`: admin only to tenant admins."""
    return (Scope.READ, Scope.WRITE, Scope.ADMIN) if user.role is Role.TENANT_ADMIN else (Scope.READ, Scope.WRITE)


def create(*, tenant: TenantLike, actor: Actor, name: str, scopes: frozenset[Scope], expires_in_days: int
           ) -> CreatedToken:
    """A new token for the acting user; InvalidInput naming the field for a bad name, scopes or expiry."""
    owner = _owner(actor, "create")
    name = (name or "").strip()
    if not name:
        raise InvalidInput("Give the token a name, so you recognise it later.", field="name")
    if len(name) > NAME_MAX_LENGTH:
        raise InvalidInput(f"A token's name has at most {NAME_MAX_LENGTH} characters.", field="name")
    if not scopes:
        raise InvalidInput("Choose at least one scope.", field="scopes")
    if not scopes <= set(offered_scopes(owner)):
        raise InvalidInput("Only tenant admins may give a token the admin scope.", field="scopes")
    if expires_in_days not in EXPIRY_DAYS:
        raise InvalidInput("Choose one of the offered expiry periods.", field="expires_in_days")
    # Lock the user's row: two creations at once cannot both pass the count.
    db.session.execute(select(User.id).where(User.id == owner.id).with_for_update())
    if len(open_tokens(tenant, owner)) >= MAX_TOKENS:
        raise InvalidInput(f"You have {MAX_TOKENS} tokens already: revoke one first.", field="name")
    secret, lookup = new_token()
    moment = now()
    row = ApiToken(tenant_id=tenant.id, user_id=owner.id, name=name, lookup=lookup, secret_hash=token_hash(secret),
                   scopes=format_scopes(scopes), created_at=moment,
                   expires_at=moment + timedelta(days=expires_in_days))
    db.session.add(row)
    db.session.commit()
    log.info("api token created", extra={"user_id": owner.id, "token_id": row.id, "scopes": row.scopes})
    return CreatedToken(token=row, secret=secret)


def revoke(*, tenant: TenantLike, actor: Actor, token_id: int) -> ApiToken:
    """Revoke one of the acting user's tokens; it stops working at once. Revoking twice changes nothing."""
    owner = _owner(actor, "revoke")
    row = db.session.scalar(select(ApiToken).where(ApiToken.id == token_id, ApiToken.tenant_id == tenant.id,
                                                   ApiToken.user_id == owner.id).with_for_update())
    if row is None:
        raise NotFound("There is no such token.")
    if row.revoked_at is None:
        row.revoked_at = now()
        db.session.commit()
        log.info("api token revoked", extra={"user_id": owner.id, "token_id": row.id})
    return row


def open_tokens(tenant: TenantLike, user: User) -> list[ApiToken]:
    """The user's tokens that still work, newest first."""
    return list(db.session.scalars(
        select(ApiToken).where(ApiToken.tenant_id == tenant.id, ApiToken.user_id == user.id,
                               ApiToken.revoked_at.is_(None), ApiToken.expires_at > now())
        .order_by(ApiToken.id.desc())))


_BY_LOOKUP = (select(ApiToken).options(joinedload(ApiToken.user))
              .where(ApiToken.lookup == bindparam("lookup")))
_TOUCH = (update(ApiToken).where(ApiToken.id == bindparam("token_id"),
                                 or_(ApiToken.last_used_at.is_(None), ApiToken.last_used_at < bindparam("stale")))
          .values(last_used_at=bindparam("moment")))


def authenticate(tenant: TenantLike, presented: str) -> ApiToken:
    """The working token `presented` on `tenant`, its user loaded; AuthenticationFailed otherwise.

    Every failure says the same thing, whatever the reason (typo, unknown, another tenant's, expired, revoked,
    user disabled), so the answer tells nothing about other tenants' tokens.
    """
    lookup = lookup_of(presented)
    row = db.session.scalar(_BY_LOOKUP, {"lookup": lookup}) if lookup else None
    moment = now()
    if (row is None or not hmac.compare_digest(row.secret_hash, token_hash(presented))
            or row.tenant_id != tenant.id or row.revoked_at is not None or row.expires_at <= moment
            or not row.user.is_active or row.user.deleted_at is not None or row.user.tenant_id != tenant.id):
        raise AuthenticationFailed(INVALID_TOKEN)
    if row.last_used_at is None or row.last_used_at < moment - LAST_USED_PRECISION:
        with writing():  # often during a GET, which otherwise only reads
            db.session.execute(_TOUCH, {"token_id": row.id, "stale": moment - LAST_USED_PRECISION,
                                        "moment": moment})
            db.session.commit()
    return row


def scopes_of(token: ApiToken) -> frozenset[Scope]:
    return parse_scopes(token.scopes)


def _owner(actor: Actor, verb: str) -> User:
    """The user acting for themselves; support acting as a customer is refused."""
    if actor.impersonator is not None:
        log.warning("refused while impersonating: %s an API token", verb,
                    extra={"user_id": actor.user_id, "impersonator_id": actor.impersonator_id})
        raise Forbidden(NOT_WHILE_IMPERSONATING.format(what="API tokens"))
    if actor.user is None:
        raise Forbidden("Only a person has API tokens.")
    return actor.user
