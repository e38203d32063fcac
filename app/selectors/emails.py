"""The email log as pages read it: a customer's own emails, a customer's for support, the tenant's failures,
the development outbox, and the tenant's sender. Every read takes the tenant.

Lists select the columns they show into plain rows, one statement each, built once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, select

from app.domain.notifications import EmailStatus, event_label, is_secret, status_label
from app.extensions import db
from app.models import EmailMessage, Tenant, TenantLike, User
from app.selectors.paging import Page, page_number

E = EmailMessage


@dataclass(frozen=True, slots=True)
class EmailRow:
    """One logged email as a list shows it: plain values."""

    id: int
    created_at: datetime
    event: str
    to_address: str
    subject: str
    status: EmailStatus
    attempts: int
    sent_at: datetime | None
    failed_at: datetime | None
    last_error: str | None

    @property
    def label(self) -> str:
        return event_label(self.event)

    @property
    def status_label(self) -> str:
        return status_label(self.status, self.attempts)


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """One email as the development outbox shows it, with its text."""

    id: int
    created_at: datetime
    to_address: str
    subject: str
    status: EmailStatus
    attempts: int
    text_body: str | None

    @property
    def status_label(self) -> str:
        return status_label(self.status, self.attempts)


_ROW = (E.id, E.created_at, E.event, E.to_address, E.subject, E.status, E.attempts, E.sent_at, E.failed_at,
        E.last_error)
_NEWEST_FIRST = (E.created_at.desc(), E.id.desc())
_PAGE = (bindparam("limit"), bindparam("offset"))

_OF_USER = (select(*_ROW).where(E.tenant_id == bindparam("tenant_id"), E.user_id == bindparam("user_id"))
            .order_by(*_NEWEST_FIRST).limit(_PAGE[0]).offset(_PAGE[1]))
_FAILED = (select(*_ROW).where(E.tenant_id == bindparam("tenant_id"), E.status == EmailStatus.FAILED)
           .order_by(*_NEWEST_FIRST).limit(_PAGE[0]).offset(_PAGE[1]))
_OUTBOX = (select(E.id, E.created_at, E.to_address, E.subject, E.status, E.attempts, E.text_body)
           .where(E.tenant_id == bindparam("tenant_id")).order_by(*_NEWEST_FIRST).limit(bindparam("limit")))
_ONE_OF_USER = select(E).where(E.id == bindparam("id"), E.tenant_id == bindparam("tenant_id"),
                               E.user_id == bindparam("user_id"))
_SENDER = select(Tenant.email_sender_name, Tenant.email_sender_address).where(Tenant.id == bindparam("tenant_id"))


def _page(statement, values: dict[str, object], page: int, per_page: int) -> Page[EmailRow]:  # type: ignore[no-untyped-def]
    page = page_number(page)
    rows = db.session.execute(statement, {**values, "limit": per_page + 1, "offset": (page - 1) * per_page}).all()
    return Page([EmailRow(*row) for row in rows[:per_page]], page, per_page, len(rows) > per_page)


def user_emails(tenant: TenantLike, user: User, *, page: int = 1, per_page: int = 25) -> Page[EmailRow]:
    """The emails sent (or meant) to `user` of `tenant`, newest first: one page and a peek, one statement."""
    return _page(_OF_USER, {"tenant_id": tenant.id, "user_id": user.id}, page, per_page)


def user_email(tenant: TenantLike, user: User, email_id: int) -> EmailMessage | None:
    """One email of `user` of `tenant`; None for anyone else's."""
    return db.session.scalar(_ONE_OF_USER, {"id": email_id, "tenant_id": tenant.id, "user_id": user.id})


def customer_emails(tenant: TenantLike, customer: User, *, limit: int = 20) -> list[EmailRow]:
    """The latest emails of a customer of `tenant`, for support: what was sent, when, and what became of it."""
    return user_emails(tenant, customer, per_page=limit).rows


def failed_emails(tenant: TenantLike, *, page: int = 1, per_page: int = 25) -> Page[EmailRow]:
    """The tenant's emails that could not be delivered, newest first: one statement."""
    return _page(_FAILED, {"tenant_id": tenant.id}, page, per_page)


def outbox(tenant: TenantLike, *, limit: int = 30) -> list[OutboxRow]:
    """The tenant's latest emails with their text, for the development outbox: one statement."""
    return [OutboxRow(*row) for row in db.session.execute(_OUTBOX, {"tenant_id": tenant.id, "limit": limit})]


@dataclass(frozen=True, slots=True)
class Sender:
    name: str | None
    address: str | None


def sender_of(tenant: TenantLike) -> Sender:
    """The sender name and address the tenant set for its emails (None where it uses the defaults)."""
    row = db.session.execute(_SENDER, {"tenant_id": tenant.id}).one_or_none()
    return Sender(*row) if row else Sender(None, None)


def body_shown(message: EmailMessage, *, impersonated: bool) -> bool:
    """Whether a page may show this email's body: not a secret to someone acting for its owner."""
    return not (impersonated and is_secret(message.event))
