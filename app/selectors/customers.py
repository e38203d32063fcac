"""Customers of a tenant, as staff look them up."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, or_, select

from app.domain.accounts import Role
from app.extensions import db
from app.models import Tenant, User


@dataclass(frozen=True)
class Page:
    rows: list[User]
    page: int
    per_page: int
    has_next: bool

    @property
    def has_prev(self) -> bool:
        return self.page > 1


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped.lower()}%"


def find_customers(tenant: Tenant, *, query: str = "", page: int = 1, per_page: int = 25) -> Page:
    """Customers of `tenant` whose name or email contains `query`, by name; one page plus a peek."""
    page = max(page, 1)
    statement = select(User).where(User.tenant_id == tenant.id, User.role == Role.CUSTOMER)
    if query.strip():
        pattern = _like(query.strip())
        statement = statement.where(or_(func.lower(User.name).like(pattern, escape="\\"),
                                        User.email.like(pattern, escape="\\")))
    rows = db.session.scalars(
        statement.order_by(User.name, User.id).offset((page - 1) * per_page).limit(per_page + 1)
    ).all()
    return Page(list(rows[:per_page]), page, per_page, len(rows) > per_page)
