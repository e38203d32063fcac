"""The lifecycle's emails: one per transition, whoever applies it, in its transaction; none for a refusal."""

from __future__ import annotations

import smtplib

import pytest
from flask_mailman.backends.locmem import EmailBackend
from sqlalchemy import select

from app.domain.catalogue import ChangeRule
from app.domain.notifications import EmailStatus, Event
from app.domain.subscriptions import Action, SubscriptionStatus
from app.extensions import db
from app.models import EmailMessage, Subscription
from app.services import lifecycle, subscriptions
from app.services.actors import Actor
from app.services.errors import InvalidInput
from tests import factories
from tests.services.conftest import boot, place

# Of setting a subscription up: its server is ready, its first invoice issued and paid.
SETUP_EVENTS = (Event.SERVER_READY.value, Event.INVOICE_ISSUED.value, Event.PAYMENT_RECEIVED.value)


def outbox(app):  # type: ignore[no-untyped-def]
    """The emails sent, but the "server ready" ones of setting the subscriptions up (provisioning sends those)
    and the first invoices with their receipts (the billing run sends those)."""
    return [sent for sent in app.extensions["mailman"].outbox
            if not sent.subject.endswith(" is ready") and not sent.subject.startswith(("Invoice ", "Receipt: "))]


def logged(subscription: Subscription) -> list[tuple[str, EmailStatus]]:
    """The lifecycle emails logged for `subscription` (not the "server ready" one of its provisioning)."""
    db.session.expire_all()
    return [(m.event, m.status) for m in db.session.scalars(
        select(EmailMessage).where(EmailMessage.subscription_id == subscription.id,
                                   EmailMessage.event != Event.SERVER_READY.value).order_by(EmailMessage.id))]


def reloaded(subscription: Subscription) -> Subscription:
    db.session.expire_all()
    return db.session.get(Subscription, subscription.id)


def test_a_scheduled_cancellation_is_emailed_once_with_its_date(app, tenant, customer, active_subscription):
    subscriptions.cancel(tenant=tenant, actor=Actor(customer), subscription_id=active_subscription.id)
    ends = reloaded(active_subscription).effective_at
    assert logged(active_subscription) == [("cancellation_scheduled", EmailStatus.SENT)]
    [sent] = outbox(app)
    assert sent.to == [customer.email]
    assert sent.subject == f"Your {active_subscription.plan.name} subscription ends on {ends:%-d %b %Y}"
    assert f"takes effect on {ends:%-d %b %Y, %H:%M} UTC" in sent.body
    assert f"http://localhost/subscriptions/{active_subscription.id}" in sent.body
    assert "turn off these emails: http://localhost/account/notifications" in sent.body  # optional

    with pytest.raises(InvalidInput):  # refused: nothing changes, nothing is sent
        subscriptions.cancel(tenant=tenant, actor=Actor(customer), subscription_id=active_subscription.id)
    subscriptions.resume(tenant=tenant, actor=Actor(customer), subscription_id=active_subscription.id)
    assert len(outbox(app)) == 1 and len(logged(active_subscription)) == 1  # resuming sends nothing


def test_the_expiry_job_emails_the_cancellation_once_with_the_deletion_date(app, tenant, customer,
                                                                             active_subscription, clock):
    subscriptions.cancel(tenant=tenant, actor=Actor(customer), subscription_id=active_subscription.id)
    clock.set(reloaded(active_subscription).effective_at)
    assert subscriptions.expire_due_cancellations() == 1
    assert subscriptions.expire_due_cancellations() == 0
    fresh = reloaded(active_subscription)
    assert logged(active_subscription) == [("cancellation_scheduled", EmailStatus.SENT),
                                           ("cancellation_effective", EmailStatus.SENT)]
    sent = outbox(app)[-1]
    hostname = fresh.items[0].hostname
    assert sent.subject == f"Your {fresh.plan.name} subscription is canceled"
    assert f"kept, switched off, until {fresh.servers_delete_at:%-d %b %Y, %H:%M} UTC: {hostname}" in sent.body
    assert "Billing has stopped." in sent.body
    assert "This message is about your account's deletion; it is always sent." in sent.body


def test_an_immediate_cancellation_by_an_admin_emails_the_owner(app, tenant, customer, admin, profile, sandbox,
                                                                 clock):
    plan = factories.plan(tenant, cancellation_rule=ChangeRule.IMMEDIATE)
    subscription = place(tenant, customer, plan)
    boot(clock)
    subscriptions.cancel(tenant=tenant, actor=Actor(admin), subscription_id=subscription.id, reason="Abuse")
    assert logged(subscription) == [("cancellation_effective", EmailStatus.SENT)]
    assert outbox(app)[-1].to == [customer.email]


def test_an_order_canceled_while_setting_up_says_nothing_is_kept(app, tenant, customer, profile, plan, sandbox):
    subscription = place(tenant, customer, plan)  # the server is still booting
    subscriptions.cancel(tenant=tenant, actor=Actor(customer), subscription_id=subscription.id)
    assert logged(subscription) == [("cancellation_effective", EmailStatus.SENT)]
    assert "No server of it was running" in outbox(app)[-1].body


def test_support_acting_as_the_customer_sends_the_customer_the_email(app, tenant, customer, support,
                                                                       active_subscription):
    subscriptions.cancel(tenant=tenant, actor=Actor(customer, impersonator=support),
                         subscription_id=active_subscription.id)
    assert [m.to for m in outbox(app)] == [[customer.email]]


def test_suspend_reinstate_and_the_grace_end_each_email_once(app, tenant, customer, admin, active_subscription,
                                                              clock):
    subscriptions.suspend(tenant=tenant, actor=Actor(admin), subscription_id=active_subscription.id,
                          reason="Your card was declined.")
    grace_end = reloaded(active_subscription).effective_at
    suspended = outbox(app)[-1]
    assert suspended.subject == f"Your {active_subscription.plan.name} subscription is suspended"
    assert "Reason: Your card was declined." in suspended.body
    assert f"reinstated by {grace_end:%-d %b %Y, %H:%M} UTC" in suspended.body
    with pytest.raises(InvalidInput):
        subscriptions.suspend(tenant=tenant, actor=Actor(admin), subscription_id=active_subscription.id,
                              reason="Again")
    subscriptions.reinstate(tenant=tenant, actor=Actor(admin), subscription_id=active_subscription.id,
                            reason="Paid")
    assert outbox(app)[-1].subject == f"Your {active_subscription.plan.name} subscription is active again"

    subscriptions.suspend(tenant=tenant, actor=Actor(admin), subscription_id=active_subscription.id,
                          reason="Declined again")
    clock.advance(days=31)
    assert subscriptions.end_grace_periods() == 1
    assert subscriptions.end_grace_periods() == 0  # a second run: nothing more
    assert reloaded(active_subscription).status is SubscriptionStatus.CANCELED
    assert [event for event, _ in logged(active_subscription)] == [
        "suspended", "reinstated", "suspended", "cancellation_effective"]
    assert "ended without payment" in outbox(app)[-1].body


def test_a_renewal_sends_no_lifecycle_email(app, tenant, customer, active_subscription, clock):
    clock.set(reloaded(active_subscription).current_period_end)
    assert subscriptions.renew_due() == 1
    assert logged(active_subscription) == []


def test_a_turned_off_optional_email_is_logged_as_skipped_and_required_ones_go(app, tenant, customer,
                                                                                active_subscription, clock):
    customer.email_opt_outs = [Event.CANCELLATION_SCHEDULED.value]
    db.session.commit()
    subscriptions.cancel(tenant=tenant, actor=Actor(customer), subscription_id=active_subscription.id)
    assert logged(active_subscription) == [("cancellation_scheduled", EmailStatus.SKIPPED)]
    assert outbox(app) == []
    clock.set(reloaded(active_subscription).effective_at)
    subscriptions.expire_due_cancellations()
    assert logged(active_subscription)[-1] == ("cancellation_effective", EmailStatus.SENT)
    assert len(outbox(app)) == 1


def test_a_mail_server_that_fails_never_undoes_the_cancellation(app, tenant, customer, active_subscription,
                                                                 monkeypatch):
    def refuse(self, messages):  # type: ignore[no-untyped-def]
        raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")

    monkeypatch.setattr(EmailBackend, "send_messages", refuse)
    subscriptions.cancel(tenant=tenant, actor=Actor(customer), subscription_id=active_subscription.id)
    assert reloaded(active_subscription).status is SubscriptionStatus.PENDING_CANCEL
    [message] = db.session.scalars(select(EmailMessage).where(EmailMessage.event.not_in(SETUP_EVENTS))).all()
    assert message.status is EmailStatus.QUEUED and message.attempts == 1  # kept, to be tried again
    assert "SMTPServerDisconnected" in message.last_error
    assert message.next_attempt_at > message.created_at
    assert outbox(app) == []


def test_the_email_goes_in_the_transition_s_transaction(app, tenant, customer, active_subscription):
    subscription = lifecycle.lock(tenant, active_subscription.id)
    lifecycle.apply(subscription, Action.CANCEL, actor=Actor(customer))
    assert outbox(app) == []  # not before the commit
    db.session.rollback()
    assert outbox(app) == [] and logged(active_subscription) == []
    assert reloaded(active_subscription).status is SubscriptionStatus.ACTIVE


def test_an_email_that_cannot_be_rendered_is_logged_as_failed_and_the_change_stays(app, tenant, customer,
                                                                                    active_subscription,
                                                                                    monkeypatch):
    from app.services import notifications

    def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("a template bug")

    monkeypatch.setattr(notifications, "render", broken)
    subscriptions.cancel(tenant=tenant, actor=Actor(customer), subscription_id=active_subscription.id)
    assert reloaded(active_subscription).status is SubscriptionStatus.PENDING_CANCEL
    [message] = db.session.scalars(select(EmailMessage).where(EmailMessage.event.not_in(SETUP_EVENTS))).all()
    assert message.status is EmailStatus.FAILED and message.subject == "Cancellation scheduled"
    assert message.last_error == "Not rendered: RuntimeError: a template bug" and message.text_body is None
    assert outbox(app) == []


def test_links_in_an_email_a_job_sends_go_to_the_tenants_host_on_the_public_port(app, tenant, customer,
                                                                                   active_subscription, clock,
                                                                                   monkeypatch):
    monkeypatch.setitem(app.config, "PUBLIC_PORT", 5123)  # what `flask up --port 5123` sets
    subscriptions.cancel(tenant=tenant, actor=Actor(customer), subscription_id=active_subscription.id)
    clock.set(reloaded(active_subscription).effective_at)
    subscriptions.expire_due_cancellations()
    assert f"http://localhost:5123/subscriptions/{active_subscription.id}" in outbox(app)[-1].body
