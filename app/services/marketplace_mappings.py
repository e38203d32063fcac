"""The tenant admin's plan mappings: which of the tenant's plans each marketplace's offer (product) and plan buys.

A purchase is set up on the plan its external plan is mapped to (app/services/marketplaces.py `plan_for`). A
mapping changed later applies to new purchases; subscriptions set up already keep their plan.
"""

from __future__ import annotations

import logging

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from app.clock import now as clock_now
from app.domain.catalogue import CatalogueState
from app.domain.marketplaces import Marketplace
from app.extensions import db
from app.models import MarketplacePlanMapping, MarketplaceSubscription, Plan, TenantLike
from app.services.actors import Actor
from app.services.errors import Conflict, InvalidInput, NotFound
from app.services.marketplace_connections import EXTERNAL_ID, require_admin

log = logging.getLogger(__name__)


def _external_id(value: str | None, field: str, what: str) -> str:
    value = (value or "").strip()
    if not value:
        raise InvalidInput(f"Enter the {what}.", field=field)
    if not EXTERNAL_ID.fullmatch(value):
        raise InvalidInput(f"The {what} has letters, digits, dots, colons, dashes and underscores, up to 100, "
                           "as the marketplace shows it.", field=field)
    return value


def _marketplace(value: Marketplace | str) -> Marketplace:
    try:
        return Marketplace(value)
    except ValueError:
        raise InvalidInput("Choose Microsoft or STACKIT.", field="marketplace") from None


def _mappable_plan(tenant: TenantLike, plan_id: int | str | None) -> Plan:
    try:
        plan = db.session.scalar(select(Plan).where(Plan.id == int(plan_id or 0), Plan.tenant_id == tenant.id))
    except (TypeError, ValueError, OverflowError):
        plan = None
    if plan is None:
        raise InvalidInput("Choose one of your plans.", field="plan_id")
    if plan.state is CatalogueState.RETIRED:
        raise InvalidInput(f"{plan.name} is retired: nothing can be bought on it. Choose a plan that is on sale.",
                           field="plan_id")
    return plan


def claimed_count(mapping: MarketplacePlanMapping) -> int:
    """How many claimed marketplace subscriptions were bought on the mapping's external plan."""
    return db.session.scalar(select(func.count()).select_from(MarketplaceSubscription).where(
        MarketplaceSubscription.tenant_id == mapping.tenant_id,
        MarketplaceSubscription.marketplace == mapping.marketplace,
        MarketplaceSubscription.offer_id == mapping.offer_id,
        MarketplaceSubscription.external_plan_id == mapping.external_plan_id,
        MarketplaceSubscription.subscription_id.is_not(None))) or 0


def add_mapping(*, tenant: TenantLike, actor: Actor, marketplace: Marketplace | str, offer_id: str,
                external_plan_id: str, plan_id: int | str) -> MarketplacePlanMapping:
    """Map an external plan (of an offer or product) to one of the tenant's plans that is not retired; each
    external plan maps to one plan (Conflict when it is mapped already)."""
    user = require_admin(tenant, actor, "the plan mappings")
    chosen = _marketplace(marketplace)
    offer = _external_id(offer_id, "offer_id", "offer id" if chosen is Marketplace.MICROSOFT else "product id")
    external_plan = _external_id(external_plan_id, "external_plan_id", "plan id")
    plan = _mappable_plan(tenant, plan_id)
    mapping = MarketplacePlanMapping(tenant_id=tenant.id, marketplace=chosen, offer_id=offer,
                                     external_plan_id=external_plan, plan_id=plan.id)
    taken = _conflict(chosen, offer, external_plan)
    if db.session.scalar(select(MarketplacePlanMapping.id).where(
            MarketplacePlanMapping.tenant_id == tenant.id, MarketplacePlanMapping.marketplace == chosen,
            MarketplacePlanMapping.offer_id == offer, MarketplacePlanMapping.external_plan_id == external_plan)):
        raise taken
    db.session.add(mapping)
    try:
        db.session.commit()
    except IntegrityError:  # mapped at the same moment by another admin
        db.session.rollback()
        raise taken from None
    log.info("tenant %s: %s %s/%s mapped to plan %s by user %s", tenant.slug, chosen.value, offer, external_plan,
             plan.id, user.id)
    return mapping


def _conflict(marketplace: Marketplace, offer: str, external_plan: str) -> Conflict:
    return Conflict(f"{marketplace.label} plan {external_plan} of {offer} is mapped already: change that mapping "
                    "instead.", field="external_plan_id")


def _mapping(tenant: TenantLike, mapping_id: int) -> MarketplacePlanMapping:
    mapping = db.session.scalar(select(MarketplacePlanMapping).where(
        MarketplacePlanMapping.id == mapping_id, MarketplacePlanMapping.tenant_id == tenant.id)
        .with_for_update())
    if mapping is None:
        raise NotFound("There is no such plan mapping: another admin may have removed it.")
    return mapping


def change_mapping(*, tenant: TenantLike, actor: Actor, mapping_id: int, plan_id: int | str) -> MarketplacePlanMapping:
    """Point a mapping at another plan. Purchases from now on get that plan; subscriptions claimed already keep
    theirs (a plan change is the customer's, through the marketplace)."""
    user = require_admin(tenant, actor, "the plan mappings")
    mapping = _mapping(tenant, mapping_id)
    plan = _mappable_plan(tenant, plan_id)
    before, mapping.plan_id = mapping.plan_id, plan.id
    mapping.updated_at = clock_now()
    db.session.commit()
    log.info("tenant %s: %s %s/%s mapped from plan %s to plan %s by user %s", tenant.slug, mapping.marketplace.value,
             mapping.offer_id, mapping.external_plan_id, before, plan.id, user.id)
    return mapping


def remove_mapping(*, tenant: TenantLike, actor: Actor, mapping_id: int) -> None:
    """Remove a mapping: purchases of that external plan can no longer be set up (subscriptions claimed on it
    already run on)."""
    user = require_admin(tenant, actor, "the plan mappings")
    mapping = _mapping(tenant, mapping_id)
    details = (mapping.marketplace.value, mapping.offer_id, mapping.external_plan_id)
    db.session.delete(mapping)
    db.session.commit()
    log.info("tenant %s: %s %s/%s mapping removed by user %s", tenant.slug, *details, user.id)


