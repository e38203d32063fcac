"""The catalogue as customers and admins see it."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import groupby

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import contains_eager, joinedload, selectinload

from app.domain.accounts import Role
from app.domain.catalogue import CatalogueState
from app.extensions import db
from app.models import Plan, Product, ServiceType, TenantLike, User


@dataclass(frozen=True)
class ProductOffer:
    product: Product
    plans: list[Plan]


def published_offers(tenant: TenantLike) -> list[ProductOffer]:
    """Published plans of published products, grouped by product, in one query."""
    plans = db.session.scalars(
        select(Plan)
        .join(Plan.product)
        .join(Plan.service_type)
        .options(contains_eager(Plan.product), contains_eager(Plan.service_type))
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
             .options(joinedload(Product.plans).joinedload(Plan.service_type))
             .order_by(Product.name, Product.version))


def catalogue_overview(tenant: TenantLike) -> CatalogueOverview:
    """Everything a tenant admin runs: service types, every product and plan in any state with the plans'
    subscription counts, and the number of customers: two statements."""
    given = {"tenant_id": tenant.id}
    rows = db.session.execute(_SERVICE_TYPES, given).all()
    customers = rows[0][1] if rows else db.session.scalar(select(_customers), given)
    products = db.session.scalars(_PRODUCTS, given).unique().all()
    return CatalogueOverview([service_type for service_type, _ in rows], list(products), customers or 0)
