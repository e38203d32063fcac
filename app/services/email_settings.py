"""Who gets which email, and in whose name: a customer's notification choices, a tenant's sender."""

from __future__ import annotations

import logging
from collections.abc import Collection

from email_validator import EmailNotValidError, validate_email

from app.domain.accounts import Role
from app.domain.notifications import OPTIONAL_EVENTS, turned_off
from app.extensions import db
from app.models import Tenant, TenantLike, User
from app.services.actors import Actor
from app.services.errors import Forbidden, InvalidInput

log = logging.getLogger(__name__)

SENDER_NAME_MAX = 100


def save_preferences(*, actor: Actor, wanted: Collection[str]) -> User:
    """Keep the optional emails in `wanted` (event names) and turn the others off; the required ones always go.

    Only the customer, as themselves: support acting for them may look, not choose (Forbidden).
    """
    user = actor.user
    if user is None or user.role is not Role.CUSTOMER:
        raise Forbidden("Only customers choose their emails.")
    if actor.impersonator is not None:
        raise Forbidden("Only the customer can choose which emails they get.")
    optional = {event.value for event in OPTIONAL_EVENTS}
    unknown = set(wanted) - optional
    if unknown:
        raise InvalidInput("There is no such optional email.")
    before = list(user.email_opt_outs or [])
    user.email_opt_outs = turned_off(set(wanted))
    db.session.commit()
    log.info("notification preferences saved", extra={"tenant_id": user.tenant_id, "user_id": user.id,
                                                      "turned_off": user.email_opt_outs, "before": before})
    return user


def set_sender(*, tenant: TenantLike, actor: Actor, name: str, address: str) -> Tenant:
    """The name and address the tenant's emails come from; blank ones fall back to the tenant's name and the
    portal's MAIL_DEFAULT_SENDER. Tenant admins only, as themselves; logged with who changed what."""
    user = actor.user
    if user is None or user.role is not Role.TENANT_ADMIN or user.tenant_id != tenant.id or actor.impersonator:
        raise Forbidden("Only the tenant's admins can change the email sender.")
    name, address = (name or "").strip(), (address or "").strip()
    if len(name) > SENDER_NAME_MAX or any(not ch.isprintable() for ch in name):
        raise InvalidInput(f"Use up to {SENDER_NAME_MAX} characters on one line.", field="name")
    if address:
        try:
            address = validate_email(address, check_deliverability=False).normalized
        except EmailNotValidError as error:
            raise InvalidInput(str(error), field="address") from None
    row = db.session.get(Tenant, tenant.id)
    assert row is not None
    before = (row.email_sender_name, row.email_sender_address)
    row.email_sender_name, row.email_sender_address = name or None, address or None
    db.session.commit()
    log.info("tenant %s: email sender changed from %r to %r by user %s", row.slug, before,
                (row.email_sender_name, row.email_sender_address), user.id,
                extra={"tenant_id": row.id, "user_id": user.id})
    return row
