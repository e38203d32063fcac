"""Emails to customers: recorded in the email log with the change they tell about, sent after it commits.

`notify(Event.X, user=...)` renders `templates/emails/<event>.txt` and `.html` (sharing `emails/_layout.*`)
in the tenant's name and adds the message to the caller's transaction: the email exists exactly when the
change does. Once that commits, the queue sends it (`deliver`), retrying with backoff; a send that keeps
failing is marked failed in the log and never undoes the change. Kinds a customer turned off are logged as
skipped and not sent (`app/domain/notifications.py` decides which may be turned off). A tenant admin may send a
failed one again (`send_again`).

`notify_later(Event.X, tenant, recipients)` writes many such emails in one statement (the billing run's invoices,
a plan replace's "plan replaced" emails) without rendering them: each keeps what it is rendered from
(`render_context`, read by RENDERED_WHEN_SENT) and is rendered by the worker that sends it; one job sends the lot.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from email.utils import formataddr
from typing import Any

from flask import current_app, g, has_request_context, request
from flask_mailman import EmailMultiAlternatives
from sqlalchemy import Select, case, insert, literal, select, update

from app.clock import now
from app.domain.accounts import Role
from app.domain.notifications import MAX_SEND_ATTEMPTS, EmailStatus, Event, is_secret, send_retry_delay, wants
from app.extensions import db, mail
from app.models import (
    CatalogueOperation,
    EmailMessage,
    Invoice,
    Plan,
    PlanPriceChange,
    Subscription,
    Tenant,
    TenantHost,
    TenantLike,
    User,
)
from app.models.base import UTCDateTime
from app.selectors import catalogue_operations
from app.services.actors import Actor
from app.services.errors import Conflict, Forbidden, InvalidInput, NotFound
from app.services.work import Job, later

log = logging.getLogger(__name__)

SEND_LEASE = timedelta(minutes=10)  # a worker that claimed a message and died: another sends it after this


@dataclass(frozen=True, slots=True)
class Rendered:
    subject: str
    text: str
    html: str


def notify(event: Event, *, user: User, subscription: Subscription | None = None, to: str | None = None,
           **context: Any) -> EmailMessage:
    """Record `event`'s email to `user` (or to the address `to`, e.g. a new address to confirm) in the current
    transaction; it is queued for sending when that commits. `context` goes to the templates."""
    tenant = db.session.get(Tenant, user.tenant_id)
    assert tenant is not None
    sent = wants(event, user.email_opt_outs or []) and user.purged_at is None
    moment = now()
    message = EmailMessage(
        tenant_id=tenant.id, user_id=user.id, subscription_id=subscription.id if subscription else None,
        event=event.value, to_address=to or user.email, from_address=sender(tenant), created_at=moment,
        status=EmailStatus.QUEUED if sent else EmailStatus.SKIPPED, next_attempt_at=moment if sent else None,
    )
    try:
        rendered = render(event, tenant=tenant, user=user, subscription=subscription, **context)
    except Exception as error:  # a template's bug must not undo the change it tells about: logged as failed
        log.exception("email %s could not be rendered", event.value)
        message.subject, message.status, message.next_attempt_at = event.spec.label, EmailStatus.FAILED, None
        message.failed_at, message.last_error = moment, f"Not rendered: {type(error).__name__}: {error}"[:2000]
        db.session.add(message)
        return message
    message.subject, message.text_body, message.html_body = rendered.subject, rendered.text, rendered.html
    db.session.add(message)
    if sent:
        db.session.flush()  # its id, for the queue
        later(Job.SEND_EMAIL, message.id)
    return message


def _invoice(context: dict[str, Any]) -> dict[str, Any]:
    invoice = db.session.get(Invoice, context["invoice_id"])
    if invoice is None:
        raise LookupError(f"invoice {context['invoice_id']} is gone")
    return {"invoice": invoice}


def _plan_replaced(context: dict[str, Any]) -> dict[str, Any]:
    """Every subscription of the customer that the replace operation moved, with its plans, new price and
    proration (app/services/catalogue_lifecycle.py writes these emails once every subscription has moved)."""
    operation = db.session.get(CatalogueOperation, context["operation_id"])
    tenant = db.session.get(Tenant, operation.tenant_id) if operation else None
    rows = catalogue_operations.moved(tenant, operation.id, context["user_id"]) if tenant and operation else []
    if not rows:
        raise LookupError(f"operation {context['operation_id']} moved no subscription of this customer")
    plans = {plan.id: plan for plan in db.session.scalars(
        select(Plan).where(Plan.id.in_({r.from_plan_id for r in rows} | {r.to_plan_id for r in rows})))}
    return {"moved": [{
        "id": row.subscription_id, "source": plans[row.from_plan_id], "target": plans[row.to_plan_id],
        "price": row.new_price_minor, "currency": row.currency, "proration": row.proration_minor,
        "resize": row.resize_needed} for row in rows]}


def _price_changed(context: dict[str, Any]) -> dict[str, Any]:
    """The scheduled price change and the subscription it concerns (app/services/catalogue_editing.py)."""
    change = db.session.get(PlanPriceChange, context["change_id"])
    subscription = db.session.get(Subscription, context["subscription_id"])
    if change is None or subscription is None or subscription.tenant_id != change.tenant_id:
        raise LookupError(f"price change {context['change_id']} or subscription {context['subscription_id']} is gone")
    return {"change": change, "plan": db.session.get(Plan, change.plan_id), "subscription": subscription}


# The events whose emails may be written in bulk and rendered when sent: each loads its templates' context
# from the message's `render_context`.
RENDERED_WHEN_SENT: dict[Event, Callable[[dict[str, Any]], dict[str, Any]]] = {
    Event.INVOICE_ISSUED: _invoice,
    Event.PLAN_REPLACED: _plan_replaced,
    Event.PRICE_CHANGED: _price_changed,
}


def notify_later(event: Event, tenant: Tenant, recipients: Select[Any],
                 params: dict[str, Any] | None = None) -> list[int]:
    """Record `event`'s email to each of `recipients` of `tenant` in the current transaction, in one
    INSERT ... SELECT, to be rendered when sent; one job sends the queued ones once it commits. `recipients`
    selects `user_id`, `to_address`, `purged_at` and `render_context` (what RENDERED_WHEN_SENT[event] reads), with
    its bound `params`.
    Only emails nobody may turn off are written this way; a purged account's is logged as skipped. The subject
    reads as the event's label until the message is rendered. Returns the messages' ids."""
    if event not in RENDERED_WHEN_SENT or event.optional:
        raise ValueError(f"{event.value} emails are rendered when written: use notify()")
    moment = now()
    to = recipients.subquery()
    sent = to.c.purged_at.is_(None)
    rows = select(literal(tenant.id), to.c.user_id, literal(event.value), to.c.to_address,
                  literal(sender(tenant)), literal(event.spec.label[:255]),
                  case((sent, literal(EmailStatus.QUEUED.value)), else_=literal(EmailStatus.SKIPPED.value)),
                  literal(0), literal(moment, UTCDateTime), case((sent, literal(moment, UTCDateTime))),
                  to.c.render_context)
    table = EmailMessage.__table__
    written = db.session.execute(insert(table).from_select(
        ["tenant_id", "user_id", "event", "to_address", "from_address", "subject", "status", "attempts",
         "created_at", "next_attempt_at", "render_context"], rows).returning(table.c.id, table.c.status),
        params or {}).all()
    queued = sorted(message_id for message_id, status in written if status is EmailStatus.QUEUED)
    if queued:
        later(Job.SEND_EMAILS, queued)
    return sorted(message_id for message_id, _ in written)


def sender(tenant: Tenant) -> str:
    """`Tenant name <address>`: the tenant's own sender if set, else the portal's default address."""
    address = tenant.email_sender_address or current_app.config["MAIL_DEFAULT_SENDER"]
    return formataddr((tenant.email_sender_name or tenant.name, address))


def render(event: Event, *, tenant: Tenant, user: User, subscription: Subscription | None = None,
           **context: Any) -> Rendered:
    """The subject (set in the text template), the text and the HTML of `event`'s email."""
    values = {"event": event, "tenant": tenant, "user": user, "subscription": subscription,
              "link": Links(tenant), **context}
    env = current_app.jinja_env
    text = env.get_template(f"emails/{event.value}.txt").make_module(values)
    html = env.get_template(f"emails/{event.value}.html").render(values)
    subject = " ".join(str(getattr(text, "subject", "")).split()) or event.spec.label
    return Rendered(subject=subject[:255], text=str(text).strip() + "\n", html=html)


class Links:
    """Absolute links into the tenant's portal, for templates: `link("subscriptions.detail", id=3)`.

    In a request of that tenant, on the host the request came to; otherwise (the worker) on the tenant's
    first host, with the configured scheme and `PUBLIC_PORT`."""

    def __init__(self, tenant: TenantLike) -> None:
        self.tenant = tenant
        self._host: str | None = None

    def __call__(self, endpoint: str, **values: Any) -> str:
        scheme, host = self._where()
        adapter = current_app.url_map.bind(host, url_scheme=scheme)
        return adapter.build(endpoint, values, force_external=True)

    def _where(self) -> tuple[str, str]:
        if has_request_context() and getattr(g.get("tenant"), "id", None) == self.tenant.id:
            return request.scheme, request.host
        if self._host is None:
            name = db.session.scalar(select(TenantHost.hostname).where(TenantHost.tenant_id == self.tenant.id)
                                     .order_by(TenantHost.id).limit(1)) or "localhost"
            port = current_app.config.get("PUBLIC_PORT")
            self._host = f"{name}:{port}" if port else name
        return current_app.config["PREFERRED_URL_SCHEME"], self._host


def deliver(message_id: int) -> int | None:
    """Send one queued email. Returns the seconds to wait before trying again, or None when settled (sent,
    failed for good, or not this worker's to send)."""
    moment = now()
    claimed = db.session.execute(  # one sender at a time: the claim is a lease, taken by a conditional update
        update(EmailMessage)
        .where(EmailMessage.id == message_id, EmailMessage.status == EmailStatus.QUEUED,
               EmailMessage.next_attempt_at <= moment)
        .values(next_attempt_at=moment + SEND_LEASE, attempts=EmailMessage.attempts + 1)
    ).rowcount
    db.session.commit()
    if not claimed:
        return None
    message = db.session.get(EmailMessage, message_id)
    assert message is not None
    if message.text_body is None and message.render_context is not None and message.body_purged_at is None:
        try:
            _render_stored(message)
        except Exception as error:  # a template's bug, or what it tells about is gone: failed, never retried
            log.exception("email %s could not be rendered", message.id)
            message.status, message.next_attempt_at, message.failed_at = EmailStatus.FAILED, None, now()
            message.last_error = f"Not rendered: {type(error).__name__}: {error}"[:2000]
            db.session.commit()
            return None
    try:
        _send(message)
    except Exception as error:  # SMTP refusals, timeouts, resets, a full disk: all retried the same way
        return _failed(message, error)
    message.status, message.sent_at, message.next_attempt_at, message.last_error = (
        EmailStatus.SENT, now(), None, None)
    if is_secret(message.event) and not current_app.config["OUTBOX_PAGE"]:
        # Its links reset a password or confirm an address: once delivered, the log keeps no copy of them.
        message.text_body = message.html_body = None
        message.body_purged_at = message.sent_at
    db.session.commit()
    log.info("email sent", extra={"email_id": message.id, "event": message.event})
    return None


def _render_stored(message: EmailMessage) -> None:
    """Render a message written by `notify_later` from its `render_context`, as `notify` would have."""
    tenant = db.session.get(Tenant, message.tenant_id)
    user = db.session.get(User, message.user_id) if message.user_id is not None else None
    if tenant is None or user is None:
        raise LookupError("its tenant or its customer is gone")
    event = Event(message.event)
    context = RENDERED_WHEN_SENT[event](message.render_context or {})
    rendered = render(event, tenant=tenant, user=user, **context)
    message.subject, message.text_body, message.html_body = rendered.subject, rendered.text, rendered.html


def _send(message: EmailMessage) -> None:
    email = EmailMultiAlternatives(message.subject, message.text_body or "", message.from_address,
                                   [message.to_address], connection=mail.get_connection(),
                                   headers={"X-Portal-Email-Id": str(message.id)})
    if message.html_body:
        email.attach_alternative(message.html_body, "text/html")
    email.send()


def _failed(message: EmailMessage, error: Exception) -> int | None:
    message.last_error = f"{type(error).__name__}: {error}"[:2000]
    if message.attempts >= MAX_SEND_ATTEMPTS:
        message.status, message.failed_at, message.next_attempt_at = EmailStatus.FAILED, now(), None
        delay = None
        log.warning("email failed for good after %s attempts: %s", message.attempts, message.last_error,
                    extra={"email_id": message.id})
    else:
        delay = send_retry_delay(message.attempts)
        message.next_attempt_at = now() + timedelta(seconds=delay)
        log.info("email not sent, tried again in %ss: %s", delay, message.last_error,
                 extra={"email_id": message.id})
    db.session.commit()
    return delay


def send_again(*, tenant: TenantLike, actor: Actor, message_id: int) -> EmailMessage:
    """Queue a failed email of `tenant` once more, from the tenant's current sender, with a fresh set of
    attempts. Tenant admins only, as themselves; logged with who asked. The last error stays until it is sent."""
    user = actor.user
    if user is None or user.role is not Role.TENANT_ADMIN or user.tenant_id != tenant.id or actor.impersonator:
        raise Forbidden("Only the tenant's admins can send an email again.")
    message = db.session.scalar(select(EmailMessage).where(EmailMessage.id == message_id,
                                                           EmailMessage.tenant_id == tenant.id).with_for_update())
    if message is None:
        raise NotFound("There is no such email.")
    if message.status is not EmailStatus.FAILED:
        raise Conflict(f"This email is {message.status.label.lower()}, not failed: there is nothing to send again.")
    if message.body_purged_at is not None or (message.text_body is None and message.render_context is None):
        raise InvalidInput("The text of this email is no longer kept, so it cannot be sent again.")
    row = db.session.get(Tenant, tenant.id)
    assert row is not None
    message.status, message.attempts, message.failed_at = EmailStatus.QUEUED, 0, None
    message.next_attempt_at, message.from_address = now(), sender(row)
    later(Job.SEND_EMAIL, message.id)
    db.session.commit()
    log.info("email %s queued again by user %s", message.id, user.id,
             extra={"tenant_id": tenant.id, "email_id": message.id, "user_id": user.id})
    return message


def due(limit: int = 500) -> list[int]:
    """Queued emails whose time has come and that no worker holds: those the queue lost (a worker that died,
    a queue emptied); the periodic job hands them to the queue again."""
    return list(db.session.scalars(
        select(EmailMessage.id).where(EmailMessage.status == EmailStatus.QUEUED,
                                      EmailMessage.next_attempt_at <= now())
        .order_by(EmailMessage.next_attempt_at).limit(limit)))


def forget_old_bodies(retention_days: int) -> int:
    """Clear the bodies of emails older than `retention_days`; the rest of the log stays."""
    moment = now()
    result = db.session.execute(
        update(EmailMessage)
        .where(EmailMessage.created_at < moment - timedelta(days=retention_days),
               EmailMessage.body_purged_at.is_(None))
        .values(text_body=None, html_body=None, body_purged_at=moment))
    db.session.commit()
    return result.rowcount
