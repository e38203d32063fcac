"""The catalogue as customers and admins see it."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import groupby

from sqlalchemy import func, select
from sqlalchemy.orm import contains_eager, joinedload, selectinload

from app.domain.accounts import Role
from app.domain.catalogue import CatalogueState
from app.extensions import db
from app.models import Plan, Product, ServiceType, Subscription, TenantLike, User


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
    subscribers_by_plan: dict[int, int]
    customer_count: int


def catalogue_overview(tenant: TenantLike) -> CatalogueOverview:
    """Everything a tenant admin runs: service types, every product and plan in any state, and counts."""
    service_types = db.session.scalars(
        select(ServiceType).where(ServiceType.tenant_id == tenant.id).order_by(ServiceType.name)
    ).all()
    products = db.session.scalars(
        select(Product)
        .where(Product.tenant_id == tenant.id)
        .options(joinedload(Product.plans).joinedload(Plan.service_type))
        .order_by(Product.name, Product.version)
    ).unique().all()
    subscribers = db.session.execute(
        select(Subscription.plan_id, func.count())
        .where(Subscription.tenant_id == tenant.id)
        .group_by(Subscription.plan_id)
    ).all()
    customers = db.session.scalar(
        select(func.count()).select_from(User).where(User.tenant_id == tenant.id, User.role == Role.CUSTOMER)
    )
    return CatalogueOverview(list(service_types), list(products), dict(subscribers), customers or 0)
