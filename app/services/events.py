"""The subscription history: every change is recorded here, with who did it and why."""

from __future__ import annotations

from typing import Any

from app.clock import now
from app.domain.policy import ActorKind
from app.extensions import db
from app.models import Subscription, SubscriptionEvent, SubscriptionItem
from app.services.actors import Actor


def record(subscription: Subscription, kind: str, *, actor: Actor | None = None, from_status: str | None = None,
           to_status: str | None = None, item: SubscriptionItem | None = None, reason: str = "",
           **data: Any) -> SubscriptionEvent:
    """Add an event to the session; the caller's commit writes it together with the change it describes.

    `actor` is None (or a system actor, whose job is noted as `by`) for the portal's own work; a marketplace
    is noted likewise. A person acting through a personal API token is noted as `via: api`.
    """
    if actor is not None and actor.user is None:
        data = {"by": actor.name or str(actor.kind), **data}
    elif actor is not None and actor.kind is ActorKind.API_TOKEN:
        data = {"via": "api", **data}
    event = SubscriptionEvent(  # by relationship: a subscription not yet written gets its event in the same flush
        tenant_id=subscription.tenant_id, subscription=subscription, item_id=item.id if item else None,
        kind=kind, from_status=from_status, to_status=to_status,
        actor_id=actor.user_id if actor else None, impersonator_id=actor.impersonator_id if actor else None,
        reason=reason, data=data, created_at=now(),
    )
    db.session.add(event)
    return event
