"""The catalogue as customers and admins see it."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import groupby

from sqlalchemy import bindparam, distinct, exists, func, or_, select
from sqlalchemy.orm import contains_eager, joinedload, selectinload, with_expression

from app.domain.accounts import Role
from app.domain.catalogue import CatalogueState
from app.extensions import db
from app.models import (
    CatalogueChange,
    Plan,
    PlanLocation,
    PlanPrice,
    PlanPriceChange,
    Product,
    ServiceType,
    TenantLike,
    User,
)


@dataclass(frozen=True)
class ProductOffer:
    product: Product
    plans: list[Plan]


# Whether the price depends on the choices (the card says "from"): in the same statement as the plans.
_VARIES = or_(
    select(func.count(distinct(PlanPrice.price_minor))).where(PlanPrice.plan_id == Plan.id).scalar_subquery() > 1,
    exists().where(PlanLocation.plan_id == Plan.id, PlanLocation.surcharge_minor > 0),
)


def published_offers(tenant: TenantLike) -> list[ProductOffer]:
    """Published plans of published products, grouped by product, in one query."""
    plans = db.session.scalars(
        select(Plan)
        .join(Plan.product)
        .join(Plan.service_type)
        .options(contains_eager(Plan.product), contains_eager(Plan.service_type), with_expression(Plan.varies, _VARIES))
        .where(
            Plan.tenant_id == tenant.id,
            Plan.state == CatalogueState.PUBLISHED,
            Product.state == CatalogueState.PUBLISHED,
        )
        .order_by(Product.name, Product.version, Product.id, Plan.sort_order, Plan.price_minor, Plan.id)
    ).all()
    return [ProductOffer(product, list(group)) for product, group in groupby(plans, key=lambda p: p.product)]


def published_plan(tenant: TenantLike, plan_id: int) -> Plan | None:
    """One plan that can be ordered now, or None (unknown, another tenant's, or not published)."""
    return db.session.scalar(
        select(Plan)
        .join(Plan.product)
        .options(contains_eager(Plan.product), selectinload(Plan.service_type))
        .where(Plan.id == plan_id, Plan.tenant_id == tenant.id,
               Plan.state == CatalogueState.PUBLISHED, Product.state == CatalogueState.PUBLISHED)
    )


@dataclass(frozen=True)
class CatalogueOverview:
    service_types: list[ServiceType]
    products: list[Product]
    customer_count: int

    @property
    def subscription_count(self) -> int:
        return sum(plan.subscription_count for product in self.products for plan in product.plans)


_customers = (select(func.count()).select_from(User)
              .where(User.tenant_id == bindparam("tenant_id"), User.role == Role.CUSTOMER).scalar_subquery())
# The customer count rides along with the service types: one statement fewer for every view of the page.
_SERVICE_TYPES = (select(ServiceType, _customers).where(ServiceType.tenant_id == bindparam("tenant_id"))
                  .order_by(ServiceType.name))
_PRODUCTS = (select(Product).where(Product.tenant_id == bindparam("tenant_id"))
             .options(joinedload(Product.plans).joinedload(Plan.service_type),
                      joinedload(Product.plans).with_expression(Plan.varies, _VARIES))
             .order_by(Product.name, Product.version))


def catalogue_overview(tenant: TenantLike) -> CatalogueOverview:
    """Everything a tenant admin runs: service types, every product and plan in any state with the plans'
    subscription counts, and the number of customers: two statements."""
    given = {"tenant_id": tenant.id}
    rows = db.session.execute(_SERVICE_TYPES, given).all()
    customers = rows[0][1] if rows else db.session.scalar(select(_customers), given)
    products = db.session.scalars(_PRODUCTS, given).unique().all()
    return CatalogueOverview([service_type for service_type, _ in rows], list(products), customers or 0)


def service_type_for_admin(tenant: TenantLike, service_type_id: int) -> ServiceType | None:
    return db.session.scalar(select(ServiceType).where(ServiceType.id == service_type_id,
                                                       ServiceType.tenant_id == tenant.id))


def product_for_admin(tenant: TenantLike, product_id: int) -> Product | None:
    """A product in any state, with its plans."""
    return db.session.scalar(select(Product).where(Product.id == product_id, Product.tenant_id == tenant.id)
                             .options(selectinload(Product.plans)))


def plan_for_admin(tenant: TenantLike, plan_id: int) -> Plan | None:
    """A plan in any state, with its product, service type, prices and locations."""
    return db.session.scalar(select(Plan).where(Plan.id == plan_id, Plan.tenant_id == tenant.id)
                             .options(joinedload(Plan.product), joinedload(Plan.service_type),
                                      selectinload(Plan.prices), selectinload(Plan.locations)))


def service_types(tenant: TenantLike) -> list[ServiceType]:
    return list(db.session.scalars(select(ServiceType).where(ServiceType.tenant_id == tenant.id)
                                   .order_by(ServiceType.name)))


@dataclass(frozen=True)
class ChangeRow:
    change: CatalogueChange
    actor: str


def catalogue_changes(tenant: TenantLike, entity: str, entity_id: int, *, limit: int = 20) -> list[ChangeRow]:
    """The latest audited changes of one service type, product or plan, newest first, with who made them."""
    rows = db.session.execute(
        select(CatalogueChange, User.name).outerjoin(User, User.id == CatalogueChange.actor_id)
        .where(CatalogueChange.tenant_id == tenant.id, CatalogueChange.entity == entity,
               CatalogueChange.entity_id == entity_id)
        .order_by(CatalogueChange.id.desc()).limit(limit)).all()
    return [ChangeRow(change, name or "a deleted user") for change, name in rows]


def scheduled_price_changes(tenant: TenantLike, plan_id: int) -> list[PlanPriceChange]:
    """A plan's price changes, newest first: what existing subscribers pay from when."""
    return list(db.session.scalars(select(PlanPriceChange).where(PlanPriceChange.tenant_id == tenant.id,
                                                                 PlanPriceChange.plan_id == plan_id)
                                   .order_by(PlanPriceChange.id.desc()).limit(50)))
