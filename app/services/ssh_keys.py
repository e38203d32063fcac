"""Customers' SSH keys: added (validated), renamed, preselected for orders or not, removed.

Only the account owner changes their keys: support impersonating the customer is refused, as with the
password. Every change is logged with the key's fingerprint (never needed secret: it is a public key).
Removing a key changes no server: the keys a server was made with are kept with the server's item
(`app.domain.ssh_keys.CONFIG_KEY`), so a rebuild applies them again.
"""

from __future__ import annotations

import logging

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from app.clock import now
from app.domain.ssh_keys import MAX_KEYS_PER_ACCOUNT, KeyProblem, name_problem, parse_public_key
from app.extensions import db
from app.models import SshKey, TenantLike, User
from app.services.accounts import NOT_WHILE_IMPERSONATING
from app.services.actors import Actor
from app.services.errors import Forbidden, InvalidInput, NotFound

log = logging.getLogger(__name__)

DUPLICATE = "You have added this key already, as “{name}”."


def add_key(*, tenant: TenantLike, actor: Actor, public_key: str, name: str = "", default: bool = True) -> SshKey:
    """Add a public key to the acting customer's account; `name` defaults to the key's comment.

    Raises InvalidInput naming the field (`public_key`, `name`) for a key that is not acceptable, one the
    customer has already, or too many keys; Forbidden while impersonated.
    """
    owner = _owner(actor, "add")
    try:
        key = parse_public_key(public_key)
    except KeyProblem as problem:
        raise InvalidInput(str(problem), field="public_key") from None
    name = " ".join((name or "").split()) or key.suggested_name
    if problem := name_problem(name):
        raise InvalidInput(problem, field="name")
    if existing := db.session.scalar(select(SshKey.name).where(SshKey.user_id == owner.id,
                                                               SshKey.fingerprint == key.fingerprint)):
        raise InvalidInput(DUPLICATE.format(name=existing), field="public_key")
    held = db.session.scalar(select(func.count()).select_from(SshKey).where(SshKey.user_id == owner.id)) or 0
    if held >= MAX_KEYS_PER_ACCOUNT:
        raise InvalidInput(f"An account holds at most {MAX_KEYS_PER_ACCOUNT} keys. Remove one you no longer use.",
                           field="public_key")
    row = SshKey(tenant_id=tenant.id, user_id=owner.id, name=name, key_type=key.key_type, bits=key.bits,
                 public_key=key.public_key, fingerprint=key.fingerprint, is_default=default, created_at=now())
    db.session.add(row)
    try:
        db.session.commit()
    except IntegrityError:  # the same key, added a moment ago in another tab
        db.session.rollback()
        raise InvalidInput(DUPLICATE.format(name=name), field="public_key") from None
    log.info("ssh key added", extra={"user_id": owner.id, "fingerprint": key.fingerprint, "key_id": row.id})
    return row


def rename_key(*, tenant: TenantLike, actor: Actor, key_id: int, name: str) -> SshKey:
    """Give one of the customer's keys another name."""
    row = _own_key(tenant, _owner(actor, "rename"), key_id)
    name = " ".join((name or "").split())
    if problem := name_problem(name):
        db.session.rollback()
        raise InvalidInput(problem, field="name")
    row.name = name
    db.session.commit()
    log.info("ssh key renamed", extra={"user_id": row.user_id, "key_id": row.id})
    return row


def set_default(*, tenant: TenantLike, actor: Actor, key_id: int, default: bool) -> SshKey:
    """Whether the key is ticked when the customer orders a server."""
    row = _own_key(tenant, _owner(actor, "change"), key_id)
    row.is_default = default
    db.session.commit()
    log.info("ssh key %s for new orders", "preselected" if default else "not preselected",
             extra={"user_id": row.user_id, "key_id": row.id})
    return row


def remove_key(*, tenant: TenantLike, actor: Actor, key_id: int) -> str:
    """Remove one of the customer's keys (servers made with it keep it). Returns its name."""
    row = _own_key(tenant, _owner(actor, "remove"), key_id)
    name, fingerprint = row.name, row.fingerprint
    db.session.delete(row)
    db.session.commit()
    log.info("ssh key removed", extra={"user_id": actor.user_id, "key_id": key_id, "fingerprint": fingerprint})
    return name


def _owner(actor: Actor, verb: str) -> User:
    """The customer acting for themselves; support acting as them is refused."""
    if actor.impersonator is not None:
        log.warning("refused while impersonating: %s an SSH key", verb,
                    extra={"user_id": actor.user_id, "impersonator_id": actor.impersonator_id})
        raise Forbidden(NOT_WHILE_IMPERSONATING.format(what="SSH keys"))
    if actor.user is None:
        raise Forbidden("Only a customer has SSH keys.")
    return actor.user


def _own_key(tenant: TenantLike, owner: User, key_id: int) -> SshKey:
    row = db.session.scalar(select(SshKey).where(SshKey.id == key_id, SshKey.tenant_id == tenant.id,
                                                 SshKey.user_id == owner.id))
    if row is None:
        raise NotFound("There is no such key.")
    return row
