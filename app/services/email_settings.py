"""Who gets which email: a customer's notification choices."""

from __future__ import annotations

import logging
from collections.abc import Collection

from app.domain.accounts import Role
from app.domain.notifications import OPTIONAL_EVENTS, turned_off
from app.extensions import db
from app.models import User
from app.services.actors import Actor
from app.services.errors import Forbidden, InvalidInput

log = logging.getLogger(__name__)


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
