"""Impersonations as the portal reads them: the one running in a session, a customer's, the tenant's audit."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import joinedload, selectinload

from app.extensions import db
from app.models import Impersonation, ImpersonationAction, TenantLike, User, UserSession
from app.selectors.paging import Page, one_page_and_a_peek, page_number


def running_in_session(tenant: TenantLike, *, session_token: str) -> Impersonation | None:
    """The open impersonation of `tenant` that the open session `session_token` belongs to, with both users.

    The deadline is not checked here: the caller decides what an overdue one means.
    """
    return db.session.scalar(
        select(Impersonation)
        .join(UserSession, UserSession.impersonation_id == Impersonation.id)
        .where(UserSession.token == session_token, UserSession.revoked_at.is_(None),
               Impersonation.tenant_id == tenant.id, Impersonation.ended_at.is_(None))
        .options(joinedload(Impersonation.support_user), joinedload(Impersonation.customer))
    )


def of_customer(tenant: TenantLike, customer: User, limit: int = 10) -> list[Impersonation]:
    """The latest impersonations of `customer`, newest first, with the support user."""
    return list(db.session.scalars(
        select(Impersonation)
        .where(Impersonation.tenant_id == tenant.id, Impersonation.customer_id == customer.id)
        .options(joinedload(Impersonation.support_user))
        .order_by(Impersonation.started_at.desc(), Impersonation.id.desc()).limit(limit)
    ))


@dataclass(frozen=True)
class AuditRow:
    impersonation: Impersonation
    changes: int  # state-changing requests
    views: int  # pages viewed


def _actions(*, views: bool):  # type: ignore[no-untyped-def]
    """How many requests of each listed impersonation were page views (GET) or changes (anything else)."""
    method = ImpersonationAction.method == "GET" if views else ImpersonationAction.method != "GET"
    return (select(func.count()).where(ImpersonationAction.impersonation_id == Impersonation.id, method)
            .correlate(Impersonation).scalar_subquery())


def audit_page(tenant: TenantLike, *, page: int = 1, per_page: int = 25) -> Page[AuditRow]:
    """The tenant's impersonations, newest first, with both users and their action counts: one statement."""
    page = page_number(page)
    records = db.session.execute(one_page_and_a_peek(
        select(Impersonation, _actions(views=False), _actions(views=True))
        .where(Impersonation.tenant_id == tenant.id)
        .options(joinedload(Impersonation.support_user), joinedload(Impersonation.customer))
        .order_by(Impersonation.started_at.desc(), Impersonation.id.desc()), page, per_page)).all()
    rows = [AuditRow(record, changes, views) for record, changes, views in records[:per_page]]
    return Page(rows, page, per_page, len(records) > per_page)


def audit_record(tenant: TenantLike, impersonation_id: int) -> Impersonation | None:
    """One impersonation of `tenant` with both users and every action, in order; None if not the tenant's."""
    return db.session.scalar(
        select(Impersonation)
        .where(Impersonation.id == impersonation_id, Impersonation.tenant_id == tenant.id)
        .options(joinedload(Impersonation.support_user), joinedload(Impersonation.customer),
                 selectinload(Impersonation.actions))
    )
