"""What the tenant admin's marketplace pages show: the connections, the plan mappings, the marketplace
subscriptions and the operations log."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import aliased, joinedload

from app.domain.catalogue import CatalogueState
from app.domain.marketplaces import ExternalState, Marketplace
from app.domain.subscriptions import SubscriptionStatus
from app.extensions import db
from app.models import (
    MarketplaceConnection,
    MarketplaceOperation,
    MarketplacePlanMapping,
    MarketplaceSubscription,
    Plan,
    Product,
    Subscription,
    TenantLike,
    User,
)
from app.selectors.paging import Page, one_page_and_a_peek, page_number

PER_PAGE = 25


@dataclass(frozen=True, slots=True)
class ConnectionView:
    """A tenant's settings for one marketplace as its page shows them: never the secret itself."""

    marketplace: Marketplace
    settings: dict[str, Any]
    secret_set: bool
    secret_expires_at: datetime | None
    updated_at: datetime | None
    enabled: bool = True

    @property
    def updated_by(self) -> str | None:
        return self.settings.get("updated_by")


_CONNECTIONS = (select(MarketplaceConnection.marketplace, MarketplaceConnection.settings,
                       MarketplaceConnection.secret_ciphertext.is_not(None).label("secret_set"),
                       MarketplaceConnection.secret_expires_at, MarketplaceConnection.updated_at,
                       MarketplaceConnection.enabled)
                .where(MarketplaceConnection.tenant_id == bindparam("tenant_id")))


def connections(tenant: TenantLike) -> dict[Marketplace, ConnectionView]:
    """The tenant's own connections, by marketplace; a marketplace missing here is served by the sandbox."""
    return {row.marketplace: ConnectionView(row.marketplace, dict(row.settings or {}), bool(row.secret_set),
                                            row.secret_expires_at, row.updated_at, row.enabled)
            for row in db.session.execute(_CONNECTIONS, {"tenant_id": tenant.id})}


@dataclass(frozen=True, slots=True)
class MappingRow:
    id: int
    marketplace: Marketplace
    offer_id: str
    external_plan_id: str
    plan_id: int
    plan_name: str
    product_name: str
    plan_state: CatalogueState
    claimed: int  # claimed marketplace subscriptions bought on this external plan


_CLAIMED = (select(func.count()).where(
    MarketplaceSubscription.tenant_id == MarketplacePlanMapping.tenant_id,
    MarketplaceSubscription.marketplace == MarketplacePlanMapping.marketplace,
    MarketplaceSubscription.offer_id == MarketplacePlanMapping.offer_id,
    MarketplaceSubscription.external_plan_id == MarketplacePlanMapping.external_plan_id,
    MarketplaceSubscription.subscription_id.is_not(None)).correlate(MarketplacePlanMapping).scalar_subquery())

_MAPPINGS = (select(MarketplacePlanMapping.id, MarketplacePlanMapping.marketplace, MarketplacePlanMapping.offer_id,
                    MarketplacePlanMapping.external_plan_id, MarketplacePlanMapping.plan_id,
                    Plan.name.label("plan_name"), Product.name.label("product_name"), Plan.state.label("plan_state"),
                    _CLAIMED.label("claimed"))
             .join(Plan, Plan.id == MarketplacePlanMapping.plan_id).join(Product, Product.id == Plan.product_id)
             .where(MarketplacePlanMapping.tenant_id == bindparam("tenant_id"))
             .order_by(MarketplacePlanMapping.marketplace, MarketplacePlanMapping.offer_id,
                       MarketplacePlanMapping.external_plan_id))


def mappings(tenant: TenantLike) -> list[MappingRow]:
    """Every plan mapping of the tenant, by marketplace, offer and external plan: one statement."""
    return [MappingRow(*row) for row in db.session.execute(_MAPPINGS, {"tenant_id": tenant.id})]


@dataclass(frozen=True, slots=True)
class PlanChoice:
    id: int
    name: str
    product_name: str
    state: CatalogueState

    @property
    def label(self) -> str:
        suffix = "" if self.state is CatalogueState.PUBLISHED else f" ({self.state.value})"
        return f"{self.product_name} · {self.name}{suffix}"


_MAPPABLE = (select(Plan.id, Plan.name, Product.name.label("product_name"), Plan.state)
             .join(Product, Product.id == Plan.product_id)
             .where(Plan.tenant_id == bindparam("tenant_id"), Plan.state != CatalogueState.RETIRED)
             .order_by(Product.name, Plan.name, Plan.id))


def mappable_plans(tenant: TenantLike) -> list[PlanChoice]:
    """The tenant's plans an external plan may map to: every one that is not retired."""
    return [PlanChoice(*row) for row in db.session.execute(_MAPPABLE, {"tenant_id": tenant.id})]


@dataclass(frozen=True, slots=True)
class ExternalRow:
    """One line of the marketplace subscriptions list."""

    id: int
    marketplace: Marketplace
    external_id: str
    name: str
    offer_id: str
    external_plan_id: str
    quantity: int | None
    state: ExternalState
    raw_state: str
    subscription_id: int | None
    status: SubscriptionStatus | None  # the portal subscription's
    customer_name: str | None
    customer_email: str | None
    purchaser_email: str | None
    retired_at: datetime | None
    replaced_by: str | None  # the external id that replaced a retired one
    created_at: datetime


_REPLACEMENT = aliased(MarketplaceSubscription)
_EXTERNAL_LIST = (
    select(MarketplaceSubscription.id, MarketplaceSubscription.marketplace, MarketplaceSubscription.external_id,
           MarketplaceSubscription.name, MarketplaceSubscription.offer_id, MarketplaceSubscription.external_plan_id,
           MarketplaceSubscription.quantity, MarketplaceSubscription.state, MarketplaceSubscription.raw_state,
           MarketplaceSubscription.subscription_id, Subscription.status, User.name.label("customer_name"),
           User.email.label("customer_email"), MarketplaceSubscription.purchaser_email,
           MarketplaceSubscription.retired_at, _REPLACEMENT.external_id.label("replaced_by"),
           MarketplaceSubscription.created_at)
    .outerjoin(Subscription, Subscription.id == MarketplaceSubscription.subscription_id)
    .outerjoin(User, User.id == Subscription.user_id)
    .outerjoin(_REPLACEMENT, _REPLACEMENT.id == MarketplaceSubscription.replaced_by_id)
    .where(MarketplaceSubscription.tenant_id == bindparam("tenant_id"))
)


def external_subscriptions(tenant: TenantLike, *, marketplace: Marketplace | None = None,
                           state: ExternalState | None = None, page: int = 1,
                           per_page: int = PER_PAGE) -> Page[ExternalRow]:
    """The tenant's marketplace subscriptions, newest first, with the portal subscription and customer each is
    linked to: one page plus a peek, one statement."""
    page = page_number(page)
    statement = _EXTERNAL_LIST
    if marketplace is not None:
        statement = statement.where(MarketplaceSubscription.marketplace == marketplace)
    if state is not None:
        statement = statement.where(MarketplaceSubscription.state == state)
    statement = statement.order_by(MarketplaceSubscription.created_at.desc(), MarketplaceSubscription.id.desc())
    rows = db.session.execute(one_page_and_a_peek(statement, page, per_page), {"tenant_id": tenant.id}).all()
    return Page([ExternalRow(*row) for row in rows[:per_page]], page, per_page, len(rows) > per_page)


_EXTERNAL_ONE = (select(MarketplaceSubscription)
                 .where(MarketplaceSubscription.id == bindparam("id"),
                        MarketplaceSubscription.tenant_id == bindparam("tenant_id"))
                 .options(joinedload(MarketplaceSubscription.subscription).joinedload(Subscription.user),
                          joinedload(MarketplaceSubscription.subscription).joinedload(Subscription.plan)))


def external_subscription(tenant: TenantLike, external_subscription_id: int) -> MarketplaceSubscription | None:
    """One marketplace subscription of the tenant, with its portal subscription, customer and plan."""
    return db.session.scalar(_EXTERNAL_ONE, {"id": external_subscription_id, "tenant_id": tenant.id})


@dataclass(frozen=True, slots=True)
class Neighbour:
    """The marketplace subscription a retired one was replaced by, or one that this replaced."""

    id: int
    external_id: str


def neighbours(tenant: TenantLike, ext: MarketplaceSubscription) -> tuple[Neighbour | None, list[Neighbour]]:
    """(what replaced `ext`, the retired ones it replaced): one statement."""
    rows = db.session.execute(
        select(MarketplaceSubscription.id, MarketplaceSubscription.external_id, MarketplaceSubscription.replaced_by_id)
        .where(MarketplaceSubscription.tenant_id == tenant.id,
               (MarketplaceSubscription.id == ext.replaced_by_id) | (MarketplaceSubscription.replaced_by_id == ext.id))
        .order_by(MarketplaceSubscription.id)).all()
    replaced_by = next((Neighbour(r.id, r.external_id) for r in rows if r.id == ext.replaced_by_id), None)
    return replaced_by, [Neighbour(r.id, r.external_id) for r in rows if r.replaced_by_id == ext.id]


@dataclass(frozen=True, slots=True)
class RelinkChoice:
    """A portal subscription a new STACKIT subscription id may be linked to."""

    subscription_id: int
    customer_name: str
    customer_email: str
    plan_name: str
    external_id: str  # the STACKIT subscription it runs on now
    same_customer: bool  # bought by the same STACKIT customer project

    @property
    def label(self) -> str:
        return f"#{self.subscription_id} {self.plan_name} · {self.customer_name} <{self.customer_email}> " \
               f"(STACKIT {self.external_id})"


def relink_choices(tenant: TenantLike, ext: MarketplaceSubscription, limit: int = 200) -> list[RelinkChoice]:
    """The tenant's STACKIT subscriptions a new purchase `ext` could continue: claimed, not retired and not
    ended, those of the same customer project first."""
    same = (MarketplaceSubscription.customer_ref == ext.customer_ref).label("same_customer")
    rows = db.session.execute(
        select(Subscription.id, User.name, User.email, Plan.name, MarketplaceSubscription.external_id, same)
        .join(Subscription, Subscription.id == MarketplaceSubscription.subscription_id)
        .join(User, User.id == Subscription.user_id).join(Plan, Plan.id == Subscription.plan_id)
        .where(MarketplaceSubscription.tenant_id == tenant.id,
               MarketplaceSubscription.marketplace == Marketplace.STACKIT,
               MarketplaceSubscription.id != ext.id, MarketplaceSubscription.retired_at.is_(None),
               Subscription.status != SubscriptionStatus.CANCELED)
        .order_by(same.desc(), Subscription.id.desc()).limit(limit)).all()
    return [RelinkChoice(row[0], row[1], row[2], row[3], row[4], bool(row[5])) for row in rows]


@dataclass(frozen=True, slots=True)
class OperationRow:
    id: int
    marketplace: Marketplace
    source: str
    action: str
    external_id: str | None
    ok: bool
    outcome: str
    http_status: int | None
    duration_ms: int
    received_at: datetime


_OPERATIONS = (select(MarketplaceOperation.id, MarketplaceOperation.marketplace, MarketplaceOperation.source,
                      MarketplaceOperation.action, MarketplaceOperation.external_id, MarketplaceOperation.ok,
                      MarketplaceOperation.outcome, MarketplaceOperation.http_status, MarketplaceOperation.duration_ms,
                      MarketplaceOperation.received_at)
               .where(MarketplaceOperation.tenant_id == bindparam("tenant_id")))


def operations(tenant: TenantLike, *, marketplace: Marketplace | None = None, ok: bool | None = None,
               external_id: str | None = None, page: int = 1, per_page: int = PER_PAGE) -> Page[OperationRow]:
    """The operations log, newest first: every webhook, poll result and call, with its outcome and timing."""
    page = page_number(page)
    statement = _OPERATIONS
    if marketplace is not None:
        statement = statement.where(MarketplaceOperation.marketplace == marketplace)
    if ok is not None:
        statement = statement.where(MarketplaceOperation.ok.is_(ok))
    if external_id is not None:
        statement = statement.where(MarketplaceOperation.external_id == external_id)
    statement = statement.order_by(MarketplaceOperation.received_at.desc(), MarketplaceOperation.id.desc())
    rows = db.session.execute(one_page_and_a_peek(statement, page, per_page), {"tenant_id": tenant.id}).all()
    return Page([OperationRow(*row) for row in rows[:per_page]], page, per_page, len(rows) > per_page)
