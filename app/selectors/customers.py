"""Customers of a tenant, as staff look them up."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, bindparam, func, or_, select
from sqlalchemy.orm import joinedload

from app.domain.accounts import AccountStanding, Role
from app.extensions import db
from app.models import Subscription, SubscriptionEvent, TenantLike, User
from app.selectors.paging import Page, page_number


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped.lower()}%"


@dataclass(frozen=True, slots=True)
class CustomerRow(AccountStanding):
    """A customer as support's search lists them: plain values."""

    id: int
    name: str
    email: str
    is_active: bool
    created_at: datetime
    email_verified_at: datetime | None
    deleted_at: datetime | None
    purge_at: datetime | None
    purged_at: datetime | None


def find_customers(tenant: TenantLike, *, query: str = "", page: int = 1, per_page: int = 25) -> Page[CustomerRow]:
    """Customers of `tenant` whose name or email contains `query` (any case), by name; one page plus a peek.

    Speed: the index `ix_users_tenant_role_name_id_email` holds everything the filter and the order need, so
    the page's ids are found in the index alone (an index-only scan: one tenant's customers in name order,
    name and email tested on the index entries, stopping after one page), and the table is read only for
    the rows shown. Both in one statement. A common word stops early; a query that matches nobody walks the
    tenant's index once (about 4 ms for 10,000 customers on SQLite). Selecting the shown columns in the
    walk itself would make PostgreSQL read the table for every entry, and prefer to read all of it.
    A contains-search, not a prefix one, because support looks people up by their last name too.
    """
    page = page_number(page)
    pattern = _like(query.strip()) if query.strip() else None
    rows = db.session.execute(_SEARCH if pattern else _ALL, {
        "tenant_id": tenant.id, "pattern": pattern, "limit": per_page + 1, "offset": (page - 1) * per_page,
    }).all()
    return Page([CustomerRow(*row) for row in rows[:per_page]], page, per_page, len(rows) > per_page)


def _one_page(matching: Select) -> Select:  # type: ignore[type-arg]
    """The customers whose ids `matching` finds (one page and a peek, in name order), with what the list shows."""
    shown = (matching.order_by(User.name, User.id).limit(bindparam("limit")).offset(bindparam("offset"))
             .subquery())
    return (select(User.id, User.name, User.email, User.is_active, User.created_at, User.email_verified_at,
                   User.deleted_at, User.purge_at, User.purged_at)
            .join(shown, shown.c.id == User.id).order_by(User.name, User.id))


_CUSTOMERS = select(User.id).where(User.tenant_id == bindparam("tenant_id"), User.role == Role.CUSTOMER)
_ALL = _one_page(_CUSTOMERS)
# Emails are stored lower-case (normalize_email), so only the name needs lower().
_SEARCH = _one_page(_CUSTOMERS.where(or_(func.lower(User.name).like(bindparam("pattern"), escape="\\"),
                                         User.email.like(bindparam("pattern"), escape="\\"))))


def customer_for_staff(tenant: TenantLike, customer_id: int) -> User | None:
    """A customer of `tenant` (never staff, never another tenant's) with their profile; None otherwise."""
    return db.session.scalar(
        select(User).where(User.id == customer_id, User.tenant_id == tenant.id, User.role == Role.CUSTOMER)
        .options(joinedload(User.profile))
    )


def recent_events(tenant: TenantLike, customer: User, limit: int = 20) -> list[SubscriptionEvent]:
    """The latest events of all the customer's subscriptions, newest first, with who acted and on what."""
    return list(db.session.scalars(
        select(SubscriptionEvent)
        .join(Subscription, Subscription.id == SubscriptionEvent.subscription_id)
        .where(SubscriptionEvent.tenant_id == tenant.id, Subscription.tenant_id == tenant.id,
               Subscription.user_id == customer.id)
        .options(joinedload(SubscriptionEvent.actor), joinedload(SubscriptionEvent.impersonator))
        .order_by(SubscriptionEvent.created_at.desc(), SubscriptionEvent.id.desc()).limit(limit)
    ))
