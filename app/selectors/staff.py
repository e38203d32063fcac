"""The tenant's subscriptions as staff look them up: every customer's, never another tenant's."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, false, func, or_, select
from sqlalchemy.orm import joinedload, selectinload

from app.domain.catalogue import Interval
from app.domain.subscriptions import Milestone, SubscriptionStatus
from app.extensions import db
from app.models import Plan, Subscription, TenantLike, User
from app.selectors.customers import _like
from app.selectors.paging import Page, one_page_and_a_peek, page_number
from app.selectors.subscriptions import MILESTONE_COLUMNS, SERVER_NAME, SERVERS, SERVERS_READY, milestone_of

# `#1234` looks a subscription up by its id; a number past the id columns (PostgreSQL `integer`) matches none.
_BY_ID = re.compile(r"#\s*(\d{1,12})")
_MAX_ID = 2**31 - 1


@dataclass(frozen=True, slots=True)
class SubscriptionRow:
    """One line of the staff list: what it shows, read as columns."""

    id: int
    customer_name: str
    customer_email: str
    plan_name: str
    status: SubscriptionStatus
    price_minor: int
    currency: str
    interval: Interval
    quantity: int
    servers_ready: int
    servers_total: int
    server_name: str | None  # the first server's FQDN (or name)
    milestone: Milestone

    @property
    def is_free(self) -> bool:
        return self.price_minor == 0


def find_subscriptions(tenant: TenantLike, *, status: SubscriptionStatus | None = None, query: str = "",
                       page: int = 1, per_page: int = 25) -> Page[SubscriptionRow]:
    """The tenant's subscriptions, newest first, one page plus a peek, with their servers counted: one statement.

    `status` keeps one status; `query` keeps those whose customer's name or email contains it (any case), or,
    written `#1234`, the subscription with that id.
    """
    page = page_number(page)
    statement = (
        select(Subscription.id, User.name.label("customer_name"), User.email.label("customer_email"),
               Plan.name.label("plan_name"), Subscription.currency, Subscription.interval, Subscription.quantity,
               SERVERS_READY.label("servers_ready"), SERVERS.label("servers_total"), SERVER_NAME.label("server_name"),
               *MILESTONE_COLUMNS)
        .join(User, User.id == Subscription.user_id)
        .join(Plan, Plan.id == Subscription.plan_id)
        .where(Subscription.tenant_id == tenant.id)
    )
    if status is not None:
        statement = statement.where(Subscription.status == status)
    statement = statement.where(*_matching(query.strip()))
    rows = db.session.execute(one_page_and_a_peek(
        statement.order_by(Subscription.created_at.desc(), Subscription.id.desc()), page, per_page)).all()
    return Page([_row(row) for row in rows[:per_page]], page, per_page, len(rows) > per_page)


def _matching(query: str) -> list[object]:
    if not query:
        return []
    by_id = _BY_ID.fullmatch(query)
    if by_id:
        number = int(by_id.group(1))
        return [Subscription.id == number] if number <= _MAX_ID else [false()]
    pattern = _like(query)
    # Emails are stored lower-case (normalize_email), so only the name needs lower().
    return [or_(func.lower(User.name).like(pattern, escape="\\"), User.email.like(pattern, escape="\\"))]


def _row(row: Row[Any]) -> SubscriptionRow:
    return SubscriptionRow(row.id, row.customer_name, row.customer_email, row.plan_name, row.status, row.price_minor,
                           row.currency, row.interval, row.quantity, row.servers_ready, row.servers_total,
                           row.server_name, milestone_of(row))


def subscription_for_staff(tenant: TenantLike, subscription_id: int) -> Subscription | None:
    """One subscription of `tenant` with its customer, plan, product and items; None if not the tenant's."""
    return db.session.scalar(
        select(Subscription)
        .where(Subscription.id == subscription_id, Subscription.tenant_id == tenant.id)
        .options(joinedload(Subscription.user), joinedload(Subscription.plan).joinedload(Plan.product),
                 selectinload(Subscription.items))
    )
