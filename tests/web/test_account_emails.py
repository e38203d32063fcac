"""The customer's email log and notification choices, under their account."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from app.clock import now
from app.domain.notifications import OPTIONAL_EVENTS, EmailStatus, Event
from app.extensions import db
from app.models import EmailMessage, User
from app.services import notifications
from tests import factories
from tests.helpers import post_form
from tests.querycount import count_queries


def logged_email(user: User, subject: str = "Hello", *, event: Event = Event.CANCELLATION_SCHEDULED,
                 status: EmailStatus = EmailStatus.SENT, age: timedelta = timedelta(0), attempts: int = 1,
                 text: str | None = "Hello there, see http://localhost/subscriptions/1 for more.") -> EmailMessage:
    message = EmailMessage(tenant_id=user.tenant_id, user_id=user.id, event=event.value, to_address=user.email,
                           from_address="Nimbus <noreply@localhost>", subject=subject, text_body=text,
                           html_body=f"<p>{text}</p>" if text else None, status=status, attempts=attempts,
                           created_at=now() - age)
    db.session.add(message)
    db.session.commit()
    return message


@pytest.fixture
def logged_in(client, auth, customer):
    auth.login(customer.email)
    return customer


def reloaded(user: User) -> User:
    db.session.expire_all()
    return db.session.get(User, user.id)


# --- the log ---------------------------------------------------------------------------------------------------

def test_the_log_lists_the_customers_own_emails_newest_first_with_their_status(client, tenant, other_tenant,
                                                                                logged_in, clock):
    logged_email(logged_in, "Sent one", age=timedelta(hours=5))
    logged_email(logged_in, "Waiting one", status=EmailStatus.QUEUED, attempts=0, age=timedelta(hours=4))
    logged_email(logged_in, "Retried one", status=EmailStatus.QUEUED, attempts=2, age=timedelta(hours=3))
    logged_email(logged_in, "Failed one", status=EmailStatus.FAILED, attempts=5, age=timedelta(hours=2))
    logged_email(logged_in, "Skipped one", status=EmailStatus.SKIPPED, attempts=0, age=timedelta(hours=1))
    logged_email(factories.user(tenant), "Someone else's")
    logged_email(factories.user(other_tenant), "Another tenant's")
    page = client.get("/account/emails").get_data(as_text=True)
    subjects = re.findall(r'href="/account/emails/\d+">([^<]+)<', page)
    assert subjects == ["Skipped one", "Failed one", "Retried one", "Waiting one", "Sent one"]
    for status in ("Sent", "Queued", "Retrying", "Failed", "Skipped: turned off"):
        assert f">{status}</span>" in page
    assert "Cancellation scheduled" in page and 'aria-current="page">Emails<' in page


def test_the_log_pages_by_25(client, logged_in):
    for n in range(30):
        logged_email(logged_in, f"Email {n:02}", age=timedelta(minutes=n))
    first = client.get("/account/emails").get_data(as_text=True)
    assert "Email 00" in first and "Email 24" in first and "Email 25" not in first and "Older →" in first
    second = client.get("/account/emails?page=2").get_data(as_text=True)
    assert "Email 25" in second and "Email 29" in second and "Email 24" not in second and "← Newer" in second


def test_the_log_reads_a_fixed_number_of_statements(app, client, logged_in):
    for n in range(3):
        logged_email(logged_in, f"Email {n}")
    client.get("/account/emails")
    with count_queries(app) as few:
        assert client.get("/account/emails").status_code == 200
    for n in range(30):
        logged_email(logged_in, f"More {n}")
    with count_queries(app) as many:
        assert client.get("/account/emails").status_code == 200
    assert few.count == many.count == 2, many.statements  # the session's user; one page of the log


def test_an_email_shows_its_text_with_links(client, logged_in):
    message = logged_email(logged_in, "Your plan ends")
    page = client.get(f"/account/emails/{message.id}").get_data(as_text=True)
    assert "Your plan ends" in page and logged_in.email in page and "Nimbus &lt;noreply@localhost&gt;" in page
    assert '<a href="http://localhost/subscriptions/1" rel="noopener noreferrer">' in page


def test_an_email_s_html_is_never_rendered_as_html(client, logged_in):
    message = logged_email(logged_in, "Tricky", text="<script>alert(1)</script> <img src=x onerror=alert(1)>")
    page = client.get(f"/account/emails/{message.id}").get_data(as_text=True)
    assert "<script>alert(1)" not in page and "<img src=x" not in page and "&lt;script&gt;alert(1)" in page


def test_an_email_whose_text_is_forgotten_says_so(client, logged_in):
    message = logged_email(logged_in, "Old one", age=timedelta(days=40))
    notifications.forget_old_bodies(30)
    page = client.get(f"/account/emails/{message.id}").get_data(as_text=True)
    assert "Old one" in page and "The text of this email is no longer kept" in page


def test_another_customers_or_tenants_email_is_not_found(client, tenant, other_tenant, logged_in):
    theirs = logged_email(factories.user(tenant), "Not yours")
    elsewhere = logged_email(factories.user(other_tenant), "Not here")
    for message in (theirs, elsewhere):
        assert client.get(f"/account/emails/{message.id}").status_code == 404
    assert client.get("/account/emails/99999999").status_code == 404


@pytest.mark.parametrize("who", ["admin", "support"])
def test_staff_have_no_email_log_or_choices(request, client, auth, who):
    auth.login(request.getfixturevalue(who).email)
    for path in ("/account/emails", "/account/emails/1", "/account/notifications"):
        assert client.get(path).status_code == 403


def test_anonymous_visitors_are_sent_to_log_in(client, tenant):
    response = client.get("/account/emails")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login?next=")


# --- while support acts for the customer -----------------------------------------------------------------------

@pytest.fixture
def acting(client, auth, support, customer, clock):
    auth.login(support.email)
    response = post_form(client, f"/support/customers/{customer.id}/impersonate", {"reason": "Ticket #1: emails"})
    assert response.status_code == 303
    return customer


def test_support_acting_for_the_customer_reads_the_log_but_not_secret_links(client, acting):
    plain = logged_email(acting, "Your plan ends")
    secret = logged_email(acting, "Reset your password", event=Event.PASSWORD_RESET,
                          text="Set a new password: http://localhost/reset/SECRET-TOKEN")
    assert "Reset your password" in client.get("/account/emails").get_data(as_text=True)
    assert "Hello there" in client.get(f"/account/emails/{plain.id}").get_data(as_text=True)
    page = client.get(f"/account/emails/{secret.id}").get_data(as_text=True)
    assert "SECRET-TOKEN" not in page and "shown only to the customer" in page


def test_the_customer_sees_their_own_secret_links(client, logged_in):
    secret = logged_email(logged_in, "Reset your password", event=Event.PASSWORD_RESET,
                          text="Set a new password: http://localhost/reset/SECRET-TOKEN")
    assert "SECRET-TOKEN" in client.get(f"/account/emails/{secret.id}").get_data(as_text=True)


# --- notification choices --------------------------------------------------------------------------------------

def test_the_choices_list_every_optional_email_and_say_why_the_others_always_go(client, logged_in):
    logged_in.email_opt_outs = [Event.REINSTATED.value]
    db.session.commit()
    page = client.get("/account/notifications").get_data(as_text=True)
    for event in OPTIONAL_EVENTS:
        checked = "" if event is Event.REINSTATED else " checked"
        assert f'name="wanted" value="{event.value}"{checked}>' in page
    assert "Servers to be deleted in a few days" in page and "It is about servers or data being deleted." in page
    assert "Password reset link" in page and "It is about the security of your account." in page
    assert "Subscription suspended" in page and "It is about money you owe or were charged." in page


def test_saving_turns_off_what_is_unchecked(client, logged_in):
    response = post_form(client, "/account/notifications", {"wanted": [Event.SERVER_READY.value]})
    assert response.status_code == 303 and response.headers["Location"] == "/account/notifications"
    expected = sorted(e.value for e in OPTIONAL_EVENTS if e is not Event.SERVER_READY)
    assert sorted(reloaded(logged_in).email_opt_outs) == expected
    assert "Your email choices are saved." in client.get("/account/notifications").get_data(as_text=True)
    post_form(client, "/account/notifications", {"wanted": [e.value for e in OPTIONAL_EVENTS]})
    assert reloaded(logged_in).email_opt_outs == []


def test_a_required_or_unknown_email_cannot_be_chosen(client, logged_in):
    for value in (Event.PASSWORD_RESET.value, "nonsense"):
        response = post_form(client, "/account/notifications", {"wanted": [value]})
        assert response.status_code == 400 and "There is no such optional email." in response.get_data(as_text=True)
    assert reloaded(logged_in).email_opt_outs == []


def test_support_acting_for_the_customer_sees_the_choices_but_cannot_change_them(client, acting):
    page = client.get("/account/notifications").get_data(as_text=True)
    assert "only they can change them" in page and "disabled" in page
    response = post_form(client, "/account/notifications", {"wanted": []})
    assert response.status_code == 403
    assert "email choices can only be changed by the customer" in response.get_data(as_text=True)
    assert reloaded(acting).email_opt_outs == []


# --- a mail server that is down ---------------------------------------------------------------------------------

def test_a_cancel_with_the_mail_server_down_is_kept_and_its_email_waits_for_a_retry(app, client, tenant, logged_in,
                                                                                     monkeypatch):
    import smtplib

    from flask_mailman.backends.locmem import EmailBackend

    from app.domain.subscriptions import SubscriptionStatus
    from app.models import Subscription

    def refuse(self, messages):  # type: ignore[no-untyped-def]
        raise smtplib.SMTPConnectError(421, "Service not available")

    monkeypatch.setattr(EmailBackend, "send_messages", refuse)
    subscription = factories.subscription(tenant, logged_in, factories.plan(tenant, name="Cloud S"))
    response = post_form(client, f"/subscriptions/{subscription.id}/cancel",
                         {"version": str(subscription.version), "reason": ""})
    assert response.status_code == 303
    db.session.expire_all()
    assert db.session.get(Subscription, subscription.id).status is SubscriptionStatus.PENDING_CANCEL
    page = client.get("/account/emails").get_data(as_text=True)
    assert "Your Cloud S subscription ends on" in page and ">Retrying</span>" in page
    assert app.extensions["mailman"].outbox == []
