"""The email mechanism: logged with the change, sent after commit, retried, failed for good, never lost."""

from __future__ import annotations

import smtplib
from datetime import timedelta

import pytest
from flask_mailman.backends.locmem import EmailBackend
from sqlalchemy import select

from app.domain.accounts import Role
from app.domain.notifications import MAX_SEND_ATTEMPTS, EmailStatus, Event, send_retry_delay, wants
from app.extensions import db
from app.models import EmailMessage, Invoice, Tenant, User
from app.models.base import json_object
from app.services import notifications
from app.services.actors import Actor
from app.tasks import huey
from tests import factories


@pytest.fixture(autouse=True)
def _fixed_links(monkeypatch):
    """Links render as plain paths here: the pages they point to are the account blueprint's business."""
    monkeypatch.setattr(notifications.Links, "__call__", lambda self, endpoint, **values: f"https://x/{endpoint}")


@pytest.fixture
def customer(app):
    tenant = factories.tenant("mail", name="Mail Cloud", hosts=["mail.example.test"])
    return factories.user(tenant, email="ann@example.test", name="Ann")


def outbox(app):
    return app.extensions["mailman"].outbox


def test_an_email_is_logged_in_the_transaction_and_sent_after_commit(app, customer, clock):
    message = notifications.notify(Event.PASSWORD_CHANGED, user=customer)
    assert outbox(app) == []  # not before the change it tells about is written
    db.session.commit()
    db.session.refresh(message)
    assert message.status is EmailStatus.SENT and message.attempts == 1 and message.sent_at == clock.now()
    [sent] = outbox(app)
    assert sent.to == ["ann@example.test"]
    assert sent.from_email == "Mail Cloud <noreply@localhost>"
    assert sent.subject == "Your password was changed" == message.subject
    assert "Hello Ann" in sent.body and sent.alternatives[0][1] == "text/html"
    assert "Hello Ann" in message.text_body and "<p>Hello Ann,</p>" in message.html_body


def test_the_tenant_sender_is_used_when_set(app, customer):
    customer.tenant.email_sender_name, customer.tenant.email_sender_address = "Mail Support", "help@mail.test"
    notifications.notify(Event.PASSWORD_CHANGED, user=customer)
    db.session.commit()
    assert outbox(app)[0].from_email == "Mail Support <help@mail.test>"


def test_a_rolled_back_change_sends_nothing(app, customer):
    notifications.notify(Event.PASSWORD_CHANGED, user=customer)
    db.session.rollback()
    assert outbox(app) == []
    assert db.session.scalar(select(EmailMessage.id)) is None


def test_a_failed_send_is_retried_later_and_the_change_stays(app, customer, clock, monkeypatch):
    calls = []

    def refuse(self, messages):
        calls.append(messages)
        raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")

    monkeypatch.setattr(EmailBackend, "send_messages", refuse)
    message = notifications.notify(Event.PASSWORD_CHANGED, user=customer)
    customer.name = "Ann Changed"  # the change the email tells about
    db.session.commit()
    db.session.refresh(message)
    assert customer.name == "Ann Changed"
    assert message.status is EmailStatus.QUEUED and message.attempts == 1
    assert "SMTPServerDisconnected" in message.last_error
    assert message.next_attempt_at == clock.now() + timedelta(seconds=send_retry_delay(1))
    assert len(huey.scheduled()) == 1  # the task rescheduled itself
    # Run again before its time: nothing happens (the lease is not due).
    assert notifications.deliver(message.id) is None and len(calls) == 1
    monkeypatch.undo()
    monkeypatch.setattr(notifications.Links, "__call__", lambda self, endpoint, **values: "https://x/")
    clock.advance(seconds=send_retry_delay(1))
    assert notifications.due() == [message.id]
    assert notifications.deliver(message.id) is None
    db.session.refresh(message)
    assert message.status is EmailStatus.SENT and message.attempts == 2 and message.last_error is None
    assert len(outbox(app)) == 1


def test_a_send_that_keeps_failing_is_marked_failed(app, customer, clock, monkeypatch):
    monkeypatch.setattr(EmailBackend, "send_messages", lambda self, messages: (_ for _ in ()).throw(OSError("down")))
    message = notifications.notify(Event.PASSWORD_CHANGED, user=customer)
    db.session.commit()
    for attempt in range(2, MAX_SEND_ATTEMPTS + 1):
        clock.advance(seconds=send_retry_delay(attempt - 1))
        notifications.deliver(message.id)
    db.session.refresh(message)
    assert message.status is EmailStatus.FAILED and message.attempts == MAX_SEND_ATTEMPTS
    assert message.failed_at == clock.now() and message.next_attempt_at is None
    clock.advance(days=1)
    assert notifications.due() == [] and notifications.deliver(message.id) is None


def test_a_message_is_sent_once_even_if_queued_twice(app, customer):
    message = notifications.notify(Event.PASSWORD_CHANGED, user=customer)
    db.session.commit()
    assert notifications.deliver(message.id) is None  # a second task for the same message: already sent
    assert len(outbox(app)) == 1


def test_a_worker_that_died_mid_send_leaves_the_message_to_another_after_the_lease(app, customer, clock):
    message = notifications.notify(Event.PASSWORD_CHANGED, user=customer)
    message.next_attempt_at = clock.now() + notifications.SEND_LEASE  # claimed by a worker that then died
    message.status = EmailStatus.QUEUED
    db.session.flush()
    assert notifications.due() == []
    clock.advance(seconds=notifications.SEND_LEASE.total_seconds())
    assert notifications.due() == [message.id]


def test_turned_off_kinds_are_logged_as_skipped_and_required_ones_always_go(app, customer):
    customer.email_opt_outs = [Event.SERVER_READY.value, Event.PASSWORD_CHANGED.value]
    assert not wants(Event.SERVER_READY, customer.email_opt_outs)
    assert wants(Event.PASSWORD_CHANGED, customer.email_opt_outs)  # security: not optional
    message = notifications.notify(Event.PASSWORD_CHANGED, user=customer)
    db.session.commit()
    assert message.status is EmailStatus.SENT


def test_old_bodies_are_forgotten_and_the_log_line_stays(app, customer, clock):
    message = notifications.notify(Event.PASSWORD_CHANGED, user=customer)
    db.session.commit()
    clock.advance(days=31)
    assert notifications.forget_old_bodies(30) == 1
    db.session.refresh(message)
    assert message.text_body is None and message.html_body is None and message.body_purged_at == clock.now()
    assert message.subject == "Your password was changed" and message.status is EmailStatus.SENT
    assert notifications.forget_old_bodies(30) == 0


def test_security_emails_keep_no_copy_of_their_text_once_sent_where_emails_leave_the_machine(app, customer, clock,
                                                                                           monkeypatch):
    monkeypatch.setitem(app.config, "OUTBOX_PAGE", False)  # production, or SMTP
    message = notifications.notify(Event.PASSWORD_CHANGED, user=customer)
    db.session.commit()
    db.session.refresh(message)
    assert message.status is EmailStatus.SENT and "Hello Ann" in outbox(app)[0].body
    assert message.text_body is None and message.html_body is None and message.body_purged_at == clock.now()
    assert message.subject == "Your password was changed"


def test_the_development_outbox_keeps_security_emails_to_follow_their_links(app, customer):
    message = notifications.notify(Event.PASSWORD_CHANGED, user=customer)
    db.session.commit()
    db.session.refresh(message)
    assert app.config["OUTBOX_PAGE"] and "Hello Ann" in message.text_body


def _invoice_emails(customer, *invoices):
    """The billing run's way: "invoice issued" written in one statement, rendered when sent."""
    tenant = db.session.get(Tenant, customer.tenant_id)
    return notifications.notify_later(Event.INVOICE_ISSUED, tenant, select(
        Invoice.user_id, User.email.label("to_address"), User.purged_at,
        json_object("invoice_id", Invoice.id).label("render_context"))
        .join(User, User.id == Invoice.user_id).where(Invoice.id.in_([invoice.id for invoice in invoices])))


def test_emails_written_in_bulk_are_rendered_by_the_worker_that_sends_them(app, customer):
    subscription = factories.subscription(customer.tenant, customer, factories.plan(customer.tenant))
    first, second = factories.invoice(subscription), factories.invoice(subscription, number="INV-2026-000777")
    ids = _invoice_emails(customer, first, second)
    queued = db.session.scalars(select(EmailMessage).where(EmailMessage.id.in_(ids))).all()
    assert [(m.subject, m.text_body, m.status) for m in queued] == [("Invoice issued", None, EmailStatus.QUEUED)] * 2
    assert outbox(app) == []
    db.session.commit()  # one job sends both
    sent = {m.render_context["invoice_id"]: m for m in db.session.scalars(
        select(EmailMessage).where(EmailMessage.id.in_(ids)))}
    assert [sent[invoice.id].status for invoice in (first, second)] == [EmailStatus.SENT, EmailStatus.SENT]
    assert first.number in sent[first.id].subject and "INV-2026-000777" in sent[second.id].subject
    assert "INV-2026-000777" in sent[second.id].text_body and "INV-2026-000777" in sent[second.id].html_body
    assert sorted(mail.subject for mail in outbox(app)) == sorted(m.subject for m in sent.values())


def test_a_purged_account_is_skipped_and_optional_kinds_are_never_written_in_bulk(app, customer, clock):
    subscription = factories.subscription(customer.tenant, customer, factories.plan(customer.tenant))
    invoice = factories.invoice(subscription)
    customer.purged_at = clock.now()
    [message_id] = _invoice_emails(customer, invoice)
    db.session.commit()
    assert db.session.get(EmailMessage, message_id).status is EmailStatus.SKIPPED and outbox(app) == []
    with pytest.raises(ValueError, match="use notify"):
        notifications.notify_later(Event.SERVER_READY, customer.tenant, select(EmailMessage.id))


def test_a_bulk_email_that_cannot_be_rendered_is_failed_and_can_be_sent_again_once_it_can(app, customer, monkeypatch):
    subscription = factories.subscription(customer.tenant, customer, factories.plan(customer.tenant))
    invoice = factories.invoice(subscription)
    broken = dict(notifications.RENDERED_WHEN_SENT)
    broken[Event.INVOICE_ISSUED] = lambda context: 1 / 0
    monkeypatch.setattr(notifications, "RENDERED_WHEN_SENT", broken)
    [message_id] = _invoice_emails(customer, invoice)
    db.session.commit()
    message = db.session.get(EmailMessage, message_id)
    assert message.status is EmailStatus.FAILED and message.last_error.startswith("Not rendered: ZeroDivisionError")
    assert outbox(app) == []
    monkeypatch.undo()
    admin = factories.user(customer.tenant, email="boss@example.test", role=Role.TENANT_ADMIN)
    notifications.send_again(tenant=customer.tenant, actor=Actor(admin), message_id=message_id)
    assert db.session.get(EmailMessage, message_id).status is EmailStatus.SENT
    assert invoice.number in outbox(app)[0].subject
