"""STACKIT's own steps: the sign-up link's token is checked before anything is asked of STACKIT, and a plan
change (which STACKIT sells as a new subscription) is linked by a tenant admin to the portal subscription it
continues.

The sign-up URL the vendor registers at STACKIT gets the customer with `?x-stackit-marketplace-token=<JWT>`. The
token is an RS256 JWT signed with one of the keys STACKIT publishes at its keys URL ({kid: PEM}); its `iss` is that
keys URL. Only a token that passes is resolved (app.services.marketplaces.arrive).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import jwt
from sqlalchemy import select

from app.clock import now
from app.domain.marketplaces import ExternalState, Marketplace
from app.domain.plan_changes import ChangeRefused, carried_server_type
from app.domain.plan_offers import SERVER_TYPE_KEY
from app.domain.policy import ActorKind
from app.domain.subscriptions import Action, ItemStatus, SubscriptionStatus
from app.extensions import db
from app.models import MarketplaceSubscription, Plan, Subscription, TenantLike
from app.providers.marketplaces.base import MarketplaceError
from app.providers.marketplaces.stackit import fetch_public_keys
from app.services import events, lifecycle, marketplace_connections, marketplaces, ordering, plan_changes
from app.services.actors import Actor
from app.services.errors import Conflict, Forbidden, InvalidInput, NotFound, ServiceError
from app.services.notifications import Links

log = logging.getLogger(__name__)

KEYS_FRESH_SECONDS = 3600.0  # how long the published keys are used before they are read again
KEYS_RETRY_SECONDS = 60.0  # an unknown kid reads them again (a rotated key), at most this often
AGAIN = "Please open your subscription in the STACKIT Portal and follow its sign-up link again."


@dataclass
class _Keys:
    keys: dict[str, Any]
    read_at: float


_keys: dict[str, _Keys] = {}
_keys_lock = threading.Lock()


def verify_signup_token(tenant: TenantLike, token: str) -> dict[str, Any]:
    """The claims of a sign-up link's token, once its signature (by a key STACKIT publishes, picked by `kid`),
    algorithm (RS256), issuer (the keys URL) and expiry (the portal's clock) are checked.

    Raises InvalidInput with a message for the customer for anything else, ServiceError when STACKIT's keys
    cannot be read."""
    if not token or len(token) > 8192:
        raise InvalidInput(f"This sign-up link has no valid STACKIT Marketplace token. {AGAIN}")
    try:
        keys_url, issuer = marketplace_connections.stackit_token_checks(tenant)
    except MarketplaceError as error:
        log.warning("a STACKIT sign-up for tenant %s, which is not connected: %s", tenant.id, error.message)
        raise ServiceError("This portal does not sell on the STACKIT Marketplace at the moment. Please contact "
                           "the operator.") from None
    try:
        kid = jwt.get_unverified_header(token).get("kid")
    except jwt.PyJWTError:
        raise InvalidInput(f"This sign-up link's token is not a STACKIT Marketplace token. {AGAIN}") from None
    key = _key(keys_url, str(kid)) if isinstance(kid, str) and kid else None
    if key is None:
        raise InvalidInput(f"This sign-up link's token was not signed by the STACKIT Marketplace. {AGAIN}")
    try:
        claims = jwt.decode(token, key, algorithms=["RS256"], issuer=issuer,
                            options={"verify_exp": False, "verify_iat": False, "require": ["exp", "iss"]})
    except jwt.InvalidIssuerError:
        raise InvalidInput(f"This sign-up link's token was issued by someone else than the STACKIT "
                           f"Marketplace. {AGAIN}") from None
    except jwt.PyJWTError:
        raise InvalidInput(f"This sign-up link's token was not signed by the STACKIT Marketplace. {AGAIN}") from None
    try:
        expired = float(claims["exp"]) <= now().timestamp()  # the portal's clock, not the machine's
    except (TypeError, ValueError):
        expired = True
    if expired:
        raise InvalidInput(f"This sign-up link has expired. {AGAIN}")
    return claims


def _key(keys_url: str, kid: str) -> Any:
    """The published key `kid`: from the cache while fresh; an unknown kid reads the keys again (rotation), at
    most once a minute, so a flood of forged kids does not flood STACKIT."""
    with _keys_lock:
        cached = _keys.get(keys_url)
        age = time.monotonic() - cached.read_at if cached else None
        if cached is not None and kid in cached.keys and age is not None and age < KEYS_FRESH_SECONDS:
            return cached.keys[kid]
        if cached is not None and age is not None and age < KEYS_RETRY_SECONDS:
            return cached.keys.get(kid)
    try:
        keys = fetch_public_keys(keys_url)
    except MarketplaceError as error:
        log.warning("STACKIT keys at %s could not be read: %s", keys_url, error.message)
        if cached is not None:
            return cached.keys.get(kid)
        raise ServiceError("The STACKIT Marketplace cannot be reached just now. Please try the sign-up link "
                           "again in a few minutes.") from None
    with _keys_lock:
        _keys[keys_url] = _Keys(keys, time.monotonic())
    return keys.get(kid)


def forget_keys() -> None:
    """Read the published keys afresh next time (tests, a tenant's changed settings)."""
    with _keys_lock:
        _keys.clear()


# --- a plan change: a new subscription id continues the portal subscription -------------------------------------

def relink(*, tenant: TenantLike, actor: Actor, new_purchase_id: int, subscription_id: int) -> Subscription:
    """Link the STACKIT subscription `new_purchase_id` (bought for a plan change) to the portal subscription
    `subscription_id`, so its servers, data and history carry over.

    The portal subscription moves to the new purchase's mapped plan (`lifecycle.switch_plan`: a resize is queued
    where the server type changes; nothing is charged, STACKIT bills); the new purchase takes over the link and
    is approved at STACKIT with the subscription's page as its instance (it must be, within its hour); the old
    one is retired, so STACKIT's later CANCELLED for it no longer cancels anything (a cancellation its CANCELLING
    had scheduled is withdrawn). Refused, with nothing
    changed: a plan that is not mapped, another customer's project, a canceled subscription, a purchase that
    is linked already or no longer pending."""
    if actor.kind is not ActorKind.TENANT_ADMIN:
        raise Forbidden("Only the tenant's administrators link marketplace subscriptions.")
    started = time.monotonic()
    try:
        new, old, subscription, plan = _checked(tenant, new_purchase_id, subscription_id)
        before = subscription.plan.name
        if subscription.status is SubscriptionStatus.PENDING_CANCEL:  # the old one is cancelling: it goes on
            lifecycle.apply(subscription, Action.RESUME, actor=actor,
                            reason=f"continued by STACKIT subscription {new.external_id}")
        _switch(subscription, plan)
        moment = now()
        new.subscription_id, new.activated_at = subscription.id, moment
        old.retired_at, old.replaced_by_id = moment, new.id
        events.record(subscription, "marketplace_relinked", actor=actor, from_plan=before, plan=plan.name,
                      marketplace=Marketplace.STACKIT.value, from_external_id=old.external_id,
                      external_id=new.external_id)
        _approve(tenant, new, subscription)
    except ServiceError as error:
        db.session.rollback()
        marketplaces.log(tenant, Marketplace.STACKIT, source="change", action="relink", ok=False,
                         outcome=error.message[:300], started=started,
                         external_id=_external_id(tenant, new_purchase_id))
        db.session.commit()
        raise
    marketplaces.log(tenant, Marketplace.STACKIT, source="change", action="relink", external_id=new.external_id,
                     outcome=f"linked to subscription {subscription.id} ({before} -> {plan.name}); "
                             f"{old.external_id} retired", started=started,
                     detail={"subscription_id": subscription.id, "retired": old.external_id})
    lifecycle.commit()
    log.info("STACKIT subscription %s linked to subscription %s (plan %s -> %s), %s retired", new.external_id,
             subscription.id, before, plan.name, old.external_id)
    return subscription


def _checked(tenant: TenantLike, new_purchase_id: int,
             subscription_id: int) -> tuple[MarketplaceSubscription, MarketplaceSubscription, Subscription, Plan]:
    new = db.session.scalar(select(MarketplaceSubscription).where(
        MarketplaceSubscription.id == new_purchase_id, MarketplaceSubscription.tenant_id == tenant.id,
        MarketplaceSubscription.marketplace == Marketplace.STACKIT).with_for_update())
    if new is None:
        raise NotFound("There is no such STACKIT purchase.")
    if new.subscription_id is not None or new.retired_at is not None:
        raise Conflict(f"STACKIT subscription {new.external_id} is linked already.")
    if new.state is not ExternalState.PENDING:
        raise InvalidInput(f"STACKIT subscription {new.external_id} is {new.state.label.lower()}, not waiting for "
                           "approval: only a new purchase can be linked. Ask the customer to buy the plan again.")
    subscription = lifecycle.lock(tenant, subscription_id)
    if subscription.marketplace is not Marketplace.STACKIT:
        raise InvalidInput("That subscription was not bought on the STACKIT Marketplace.")
    if subscription.status is SubscriptionStatus.CANCELED:
        raise InvalidInput("That subscription is canceled: a new purchase cannot continue it. The customer sets "
                           "the new purchase up as a subscription of its own.")
    old = db.session.scalar(select(MarketplaceSubscription).where(
        MarketplaceSubscription.tenant_id == tenant.id, MarketplaceSubscription.marketplace == Marketplace.STACKIT,
        MarketplaceSubscription.subscription_id == subscription.id,
        MarketplaceSubscription.retired_at.is_(None)).with_for_update())
    if old is None:
        raise InvalidInput("That subscription has no STACKIT subscription to replace.")
    if old.customer_ref != new.customer_ref:
        raise InvalidInput(f"STACKIT subscription {new.external_id} was bought for another customer project "
                           f"({new.customer_ref or 'unknown'}) than the subscription's ({old.customer_ref}).")
    plan = marketplaces.plan_for(tenant, Marketplace.STACKIT, new.offer_id, new.external_plan_id)
    if plan is None:
        raise InvalidInput(f"STACKIT plan {new.external_plan_id!r} of {new.offer_id!r} is not mapped to a plan of "
                           "the portal. Map it first, then link the purchase.")
    return new, old, subscription, plan


def _switch(subscription: Subscription, plan: Plan) -> None:
    """The portal subscription on `plan`, its servers resized where the plan's server types ask for it."""
    if plan.id == subscription.plan_id:
        return
    current = _server_type(subscription)
    offered = ordering.offered_schema(plan).get("properties", {}).get(SERVER_TYPE_KEY)
    choices = [str(c) for c in offered.get("enum") or ()] if isinstance(offered, dict) else []
    target = carried_server_type(current, choices or None, plan.config_defaults.get(SERVER_TYPE_KEY))
    try:
        price = plan_changes.recurring_price(plan, subscription.quantity, server_type=target, location=None)
    except (ChangeRefused, ServiceError, ValueError):
        price = plan.price_minor * subscription.quantity
    lifecycle.switch_plan(subscription, plan=plan, quantity=subscription.quantity, price_minor=price,
                          server_type=target if target != current else None)


def _server_type(subscription: Subscription) -> str | None:
    for item in subscription.items:
        config = item.config or {}
        if item.status is ItemStatus.ACTIVE and (config.get("server_type") or config.get(SERVER_TYPE_KEY)):
            return str(config.get("server_type") or config.get(SERVER_TYPE_KEY))
    value = (subscription.requested_config or {}).get(SERVER_TYPE_KEY)
    return str(value) if value else None


def _approve(tenant: TenantLike, new: MarketplaceSubscription, subscription: Subscription) -> None:
    """Approve the new purchase at STACKIT (its billing starts), with the subscription's page as the instance."""
    try:
        adapter = marketplace_connections.adapter_for(tenant, Marketplace.STACKIT)
        adapter.activate(marketplaces.external(new), instance_url=Links(tenant)("subscriptions.detail",
                                                              subscription_id=subscription.id))
    except MarketplaceError as error:
        raise ServiceError(f"STACKIT did not approve subscription {new.external_id}: {error.message} Nothing was "
                           "changed.") from None
    new.raw_state, new.state, new.synced_at = "SUBSCRIPTION_ACTIVE", ExternalState.ACTIVE, now()


def _external_id(tenant: TenantLike, purchase_id: int) -> str | None:
    return db.session.scalar(select(MarketplaceSubscription.external_id).where(
        MarketplaceSubscription.id == purchase_id, MarketplaceSubscription.tenant_id == tenant.id))
