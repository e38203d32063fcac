"""Telling a plan's subscribers about the plan's own lifecycle.

There is no deprecate action in the portal yet: the catalogue's lifecycle (deprecate, supersede, replace,
retire) calls `announce_deprecation` once it has deprecated a plan.
"""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.orm import joinedload

from app.domain.catalogue import CatalogueState
from app.domain.notifications import Event
from app.domain.policy import ActorKind
from app.domain.subscriptions import SubscriptionStatus
from app.extensions import db
from app.models import Plan, Subscription, TenantLike
from app.services.actors import Actor
from app.services.errors import Forbidden, InvalidInput, NotFound
from app.services.notifications import notify

log = logging.getLogger(__name__)

# Subscriptions that keep their service on a deprecated plan (a pending cancellation ends anyway).
KEEPING = (SubscriptionStatus.ACTIVE, SubscriptionStatus.SUSPENDED, SubscriptionStatus.PENDING_FULFILLMENT,
           SubscriptionStatus.PENDING_BACKORDER)


def announce_deprecation(*, tenant: TenantLike, actor: Actor, plan_id: int) -> int:
    """Email the owner of every subscription that keeps its service on the tenant's deprecated plan `plan_id`,
    naming the plan's migration target if it has one. For tenant admins and the portal's own jobs; commits and
    returns how many were written (turned-off ones are logged as skipped). Each call writes them again: call it
    once per deprecation."""
    if actor.kind not in (ActorKind.TENANT_ADMIN, ActorKind.SYSTEM) or (
            actor.user is not None and actor.user.tenant_id != tenant.id):
        raise Forbidden("Only the tenant's admins can tell a plan's subscribers.")
    plan = db.session.scalar(select(Plan).where(Plan.id == plan_id, Plan.tenant_id == tenant.id)
                             .options(joinedload(Plan.migration_target)))
    if plan is None:
        raise NotFound("There is no such plan.")
    if plan.state is not CatalogueState.DEPRECATED:
        raise InvalidInput("Only a deprecated plan's subscribers are told that it is deprecated.")
    subscriptions = db.session.scalars(
        select(Subscription).where(Subscription.tenant_id == tenant.id, Subscription.plan_id == plan.id,
                                   Subscription.status.in_(KEEPING))
        .options(joinedload(Subscription.user), joinedload(Subscription.plan)).order_by(Subscription.id)).all()
    for subscription in subscriptions:
        notify(Event.PLAN_DEPRECATED, user=subscription.user, subscription=subscription, plan=plan,
               target=plan.migration_target)
    db.session.commit()
    log.info("plan %s deprecated: %s subscribers told", plan.id, len(subscriptions),
             extra={"tenant_id": tenant.id, "plan_id": plan.id, "user_id": actor.user_id})
    return len(subscriptions)
