"""Payment providers' webhooks: checked with the endpoint's signing secret, handled once per event id.

Every verified event is recorded in `webhook_events` under its unique (provider, event id): a replay or a
duplicate delivery finds it there, changes nothing and is answered 200 all the same. Handlers are looked up
by event type in HANDLERS; types without one are recorded as "not handled yet" (unprocessed), so a handler
added later can pick them up.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from app.clock import now
from app.domain.billing import SetupStatus
from app.extensions import db
from app.models import PaymentSetup, Tenant, WebhookEvent
from app.providers.payments.base import PaymentError, ProviderEvent
from app.selectors.tenants import tenant_by_slug
from app.services import collection, payment_methods
from app.services.actors import Actor
from app.services.errors import InvalidInput, NotFound, ServiceError
from app.services.payments import provider_for, webhook_secret

log = logging.getLogger(__name__)

NOT_HANDLED = "not handled yet"
WEBHOOK_ACTOR = Actor.system("payment-webhook")


@dataclass(frozen=True)
class Receipt:
    """What became of one delivery: `duplicate` (seen before), or the handler's outcome."""

    event_id: str
    type: str
    duplicate: bool
    outcome: str


def _setup_completed(tenant: Tenant, event: ProviderEvent) -> str:
    """checkout.session.completed: the customer saved a card on the hosted page (they may not come back)."""
    session_id = str(event.data.get("id", ""))
    if event.data.get("mode") not in (None, "setup"):
        return "not a card setup"
    try:
        outcome = payment_methods.finish_setup(tenant=tenant, actor=WEBHOOK_ACTOR, session_id=session_id)
    except NotFound:
        return "no such card setup here"
    return f"card setup {outcome.status}"


def _setup_intent_succeeded(tenant: Tenant, event: ProviderEvent) -> str:
    """setup_intent.succeeded: it names no checkout session, so the customer's open setups are read back."""
    user = (event.data.get("metadata") or {}).get("portal_user", "")
    if not str(user).isdigit():
        return "no portal user in the metadata"
    open_setups = db.session.scalars(select(PaymentSetup.external_id).where(
        PaymentSetup.tenant_id == tenant.id, PaymentSetup.user_id == int(user),
        PaymentSetup.status == SetupStatus.OPEN)).all()
    done = [payment_methods.finish_setup(tenant=tenant, actor=WEBHOOK_ACTOR, session_id=s) for s in open_setups]
    return f"{sum(o.status is SetupStatus.COMPLETE for o in done)} of {len(done)} open card setups complete"


HANDLERS: dict[str, Callable[[Tenant, ProviderEvent], str]] = {
    "checkout.session.completed": _setup_completed,
    "setup_intent.succeeded": _setup_intent_succeeded,
    # A charge that settled later than its answer (or whose answer was lost), and refunds: collection settles it.
    "payment_intent.succeeded": collection.on_payment_event,
    "payment_intent.payment_failed": collection.on_payment_event,
    "charge.refunded": collection.on_payment_event,
}


def receive(*, tenant_slug: str, payload: bytes, signature: str) -> Receipt:
    """Verify and handle one webhook delivery for the tenant `tenant_slug`.

    NotFound: no such tenant. InvalidInput: a bad or stale signature, or no event (answer 400).
    ServiceError: the provider could not be asked while handling (answer 5xx: the provider sends it again).
    """
    tenant = tenant_by_slug(tenant_slug)
    if tenant is None:
        raise NotFound("There is no such tenant.")
    secret = webhook_secret(tenant)
    try:
        provider = provider_for(tenant)
        if not secret:
            raise InvalidInput("No webhook signing secret is set for this tenant.")
        event = provider.parse_event(payload, signature, secret)
    except PaymentError as error:
        log.warning("webhook for %s refused: %s", tenant.slug, error.message)
        raise InvalidInput(error.message) from None
    row = WebhookEvent(tenant_id=tenant.id, provider=provider.name, external_id=event.external_id[:100],
                       type=event.type[:100], received_at=now())
    db.session.add(row)
    try:
        db.session.commit()  # recorded first: a second delivery, even at the same moment, stops here
    except IntegrityError:
        db.session.rollback()
        log.info("webhook %s %s seen before", event.type, event.external_id)
        return Receipt(event.external_id, event.type, True, "duplicate")
    row_id, handler = row.id, HANDLERS.get(event.type)
    try:
        outcome = handler(tenant, event) if handler else NOT_HANDLED
    except ServiceError:
        db.session.rollback()  # forgotten again: the provider's next delivery tries again
        db.session.execute(delete(WebhookEvent).where(WebhookEvent.id == row_id))
        db.session.commit()
        raise
    db.session.execute(update(WebhookEvent).where(WebhookEvent.id == row_id).values(
        outcome=outcome[:300], processed_at=now() if handler else None))
    db.session.commit()
    log.info("webhook %s %s: %s", event.type, event.external_id, outcome)
    return Receipt(event.external_id, event.type, False, outcome)
