"""The tenant admin's emails: the sender, the delivery failures and sending one again."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from flask_mailman.backends.locmem import EmailBackend

from app.domain.notifications import MAX_SEND_ATTEMPTS, EmailStatus, Event, send_retry_delay
from app.extensions import db
from app.models import EmailMessage, Tenant
from app.services import notifications
from tests import factories
from tests.helpers import post_form
from tests.querycount import count_queries
from tests.web.test_account_emails import logged_email


@pytest.fixture
def as_admin(client, auth, admin):
    auth.login(admin.email)
    return admin


def failed(user, subject: str = "Your plan ends", **values) -> EmailMessage:  # type: ignore[no-untyped-def]
    message = logged_email(user, subject, status=EmailStatus.FAILED, attempts=MAX_SEND_ATTEMPTS, **values)
    message.failed_at, message.last_error = message.created_at, "SMTPRecipientsRefused: 550 mailbox unavailable"
    db.session.commit()
    return message


def reloaded(message: EmailMessage) -> EmailMessage:
    db.session.expire_all()
    return db.session.get(EmailMessage, message.id)


def test_the_page_lists_the_tenants_failed_emails_only(app, client, as_admin, tenant, other_tenant, customer):
    failed(customer, "Older failure", age=timedelta(hours=2))
    failed(customer, "Newer failure", age=timedelta(hours=1))
    logged_email(customer, "Delivered fine")
    failed(factories.user(other_tenant), "Another tenant's failure")
    client.get("/admin/emails")
    with count_queries(app) as log:
        page = client.get("/admin/emails").get_data(as_text=True)
    assert page.index("Newer failure") < page.index("Older failure")
    assert "Delivered fine" not in page and "Another tenant" not in page
    assert customer.email in page and "550 mailbox unavailable" in page and "Cancellation scheduled" in page
    assert 'aria-current="page">Emails<' in page
    assert log.count == 3, log.statements  # the session's user; the sender; one page of failures
    for n in range(10):
        failed(customer, f"More {n}")
    with count_queries(app) as more:
        client.get("/admin/emails")
    assert more.count == log.count, more.statements


def test_send_again_queues_it_afresh_from_the_current_sender_and_it_goes(app, client, as_admin, tenant, customer,
                                                                          caplog):
    message = failed(customer)
    tenant.email_sender_name, tenant.email_sender_address = "Nimbus Help", "help@nimbus.example.com"
    db.session.commit()
    with caplog.at_level(logging.INFO, logger="app.services.notifications"):
        response = post_form(client, f"/admin/emails/{message.id}/send-again")
    assert response.status_code == 303 and response.headers["Location"] == "/admin/emails"
    fresh = reloaded(message)
    assert fresh.status is EmailStatus.SENT and fresh.attempts == 1 and fresh.failed_at is None
    [sent] = app.extensions["mailman"].outbox
    assert sent.from_email == "Nimbus Help <help@nimbus.example.com>" and sent.to == [customer.email]
    assert f"email {message.id} queued again by user {as_admin.id}" in caplog.text  # who asked, in the log
    assert "No failed emails." in client.get("/admin/emails").get_data(as_text=True)


def test_send_again_refuses_what_did_not_fail_and_what_is_forgotten(client, as_admin, customer):
    sent = logged_email(customer, "Delivered fine")
    forgotten = failed(customer, "Old failure", age=timedelta(days=40))
    notifications.forget_old_bodies(30)
    response = post_form(client, f"/admin/emails/{sent.id}/send-again", follow_redirects=True)
    assert "This email is sent, not failed" in response.get_data(as_text=True)
    response = post_form(client, f"/admin/emails/{forgotten.id}/send-again", follow_redirects=True)
    assert "no longer kept, so it cannot be sent again" in response.get_data(as_text=True)
    assert reloaded(sent).status is EmailStatus.SENT and reloaded(forgotten).status is EmailStatus.FAILED


def test_another_tenants_email_is_not_found(client, as_admin, other_tenant):
    theirs = failed(factories.user(other_tenant))
    assert post_form(client, f"/admin/emails/{theirs.id}/send-again").status_code == 404
    assert reloaded(theirs).status is EmailStatus.FAILED


@pytest.mark.parametrize("who", ["customer", "support"])
def test_others_are_refused(request, client, auth, customer, who):
    message = failed(customer)
    auth.login(request.getfixturevalue(who).email)
    assert client.get("/admin/emails").status_code == 403
    assert post_form(client, f"/admin/emails/{message.id}/send-again").status_code == 403
    assert post_form(client, "/admin/emails/sender", {"name": "X", "address": "x@example.com"}).status_code == 403
    assert reloaded(message).status is EmailStatus.FAILED


def test_an_email_the_mail_server_keeps_refusing_ends_on_the_page_and_goes_once_sent_again(
        app, client, as_admin, tenant, customer, clock, monkeypatch):
    monkeypatch.setattr(EmailBackend, "send_messages",
                        lambda self, messages: (_ for _ in ()).throw(ConnectionRefusedError("no mail server")))
    message = notifications.notify(Event.REINSTATED, user=customer,
                                   subscription=factories.subscription(tenant, customer, factories.plan(tenant)))
    db.session.commit()
    for attempt in range(2, MAX_SEND_ATTEMPTS + 1):
        clock.advance(seconds=send_retry_delay(attempt - 1))
        notifications.deliver(message.id)
    assert reloaded(message).status is EmailStatus.FAILED
    page = client.get("/admin/emails").get_data(as_text=True)
    assert "subscription is active again" in page and "ConnectionRefusedError: no mail server" in page
    monkeypatch.undo()
    post_form(client, f"/admin/emails/{message.id}/send-again")
    assert reloaded(message).status is EmailStatus.SENT and len(app.extensions["mailman"].outbox) == 1


# --- the sender -------------------------------------------------------------------------------------------------

def test_the_admin_sets_the_sender_and_new_emails_use_it(app, client, as_admin, tenant, customer, caplog):
    page = client.get("/admin/emails").get_data(as_text=True)
    assert "Nimbus Test &lt;noreply@localhost&gt;" in page  # the defaults
    with caplog.at_level(logging.INFO, logger="app.services.email_settings"):
        response = post_form(client, "/admin/emails/sender", {"name": " Nimbus Help ", "address": "Help@Nimbus-Cloud.EXAMPLE.com"})
    assert response.status_code == 303
    assert f"by user {as_admin.id}" in caplog.text
    db.session.expire_all()
    row = db.session.get(Tenant, tenant.id)
    assert (row.email_sender_name, row.email_sender_address) == ("Nimbus Help", "Help@nimbus-cloud.example.com")
    assert "Nimbus Help &lt;Help@nimbus-cloud.example.com&gt;" in client.get("/admin/emails").get_data(as_text=True)
    notifications.notify(Event.REINSTATED, user=customer,
                         subscription=factories.subscription(tenant, customer, factories.plan(tenant)))
    db.session.commit()
    assert app.extensions["mailman"].outbox[-1].from_email == "Nimbus Help <Help@nimbus-cloud.example.com>"

    post_form(client, "/admin/emails/sender", {"name": "", "address": ""})
    db.session.expire_all()
    row = db.session.get(Tenant, tenant.id)
    assert (row.email_sender_name, row.email_sender_address) == (None, None)


@pytest.mark.parametrize("name, address, message", [
    ("Nimbus", "not an address", "An email address must have an @-sign."),
    ("Nimbus", "help@", "There must be something after the @-sign."),
    ("Nimbus\r\nBcc: x@evil.test", "help@nimbus.example.com", "Use up to 100 characters on one line."),
    ("x" * 101, "help@nimbus.example.com", "Field cannot be longer than 100 characters."),
])
def test_a_bad_sender_is_refused_and_nothing_changes(client, as_admin, tenant, name, address, message):
    response = post_form(client, "/admin/emails/sender", {"name": name, "address": address})
    assert response.status_code == 400 and message in response.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Tenant, tenant.id).email_sender_address is None
