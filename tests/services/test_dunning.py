"""Dunning walked through with a card that saves and then fails every charge: tries on day 0, 3, 5 and 7, the
subscription suspended on day 14 (its server powered off at the sandbox cloud), reinstated at once when the
customer pays with a good card (powered on), or canceled for non-payment when the grace ends unpaid."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from app.domain.billing import InvoiceStatus
from app.domain.subscriptions import SubscriptionStatus
from app.extensions import db
from app.models import BillingSettings, EmailMessage, Invoice, Subscription, SubscriptionEvent
from app.providers.base import PowerState
from app.sandbox.payments import SandboxPayments
from app.services import billing_run, collection, dunning, subscriptions
from app.services.actors import Actor
from app.services.errors import Forbidden, InvalidInput
from tests import factories
from tests.services.cards import FAILS_EVERY_CHARGE, save_card


@pytest.fixture
def overdue(tenant, customer, active_subscription, clock):  # type: ignore[no-untyped-def]
    """An invoice of the running subscription, finalized now and due now, and a card that fails every charge."""
    save_card(tenant, customer, FAILS_EVERY_CHARGE)
    return factories.invoice(active_subscription, next_attempt_at=clock.now())


def reloaded(subscription: Subscription) -> Subscription:
    db.session.expire_all()
    return db.session.get(Subscription, subscription.id)


def power(sandbox, clock) -> PowerState:  # type: ignore[no-untyped-def]
    clock.advance(seconds=30)  # the sandbox's power actions take a few seconds
    [server] = sandbox.list_servers()
    return server.power


def run_days(clock, start, days) -> list[str]:  # type: ignore[no-untyped-def]
    """The hourly billing run on each of `days` after `start` (a minute past the hour)."""
    summaries = []
    for day in days:
        clock.set(start + timedelta(days=day, minutes=1))
        summaries.append(billing_run.run())
    return summaries


def events_of(subscription: Subscription, kind: str) -> list[SubscriptionEvent]:
    return list(db.session.scalars(select(SubscriptionEvent).where(
        SubscriptionEvent.subscription_id == subscription.id, SubscriptionEvent.kind == kind)))


def test_declined_then_suspended_on_day_14_then_paid_with_a_good_card_and_reinstated(
        tenant, customer, active_subscription, overdue, sandbox, clock):
    start = clock.now()
    summaries = run_days(clock, start, [0, 1, 3, 5, 7, 13])
    assert ["collection: 0 paid, 1 declined" in s for s in summaries] == [True, False, True, True, True,
                                                                                   False]
    assert reloaded(active_subscription).status is SubscriptionStatus.ACTIVE
    assert power(sandbox, clock) is PowerState.RUNNING

    [summary] = run_days(clock, start, [14])
    assert "dunning: 1 suspended for non-payment" in summary
    suspended = reloaded(active_subscription)
    assert suspended.status is SubscriptionStatus.SUSPENDED
    assert suspended.effective_at == clock.now() + timedelta(days=30)
    [event] = events_of(active_subscription, "suspend")
    assert event.reason == f"Invoice {overdue.number} unpaid since 15 March 2026." and event.data["by"] == "dunning"
    assert power(sandbox, clock) is PowerState.OFF
    assert "dunning: 0 suspended" in run_days(clock, start, [15])[0]  # once

    good = save_card(tenant, customer)
    payment = collection.pay_invoice(tenant=tenant, actor=Actor(customer), invoice_id=overdue.id,
                                     payment_method_id=good.id)
    assert payment.status.value == "succeeded"
    assert reloaded(active_subscription).status is SubscriptionStatus.ACTIVE
    assert events_of(active_subscription, "reinstate")[0].data["by"] == "collection"
    assert power(sandbox, clock) is PowerState.RUNNING
    receipt = db.session.scalar(select(EmailMessage).where(EmailMessage.event == "payment_received")
                                .order_by(EmailMessage.id.desc()))
    assert overdue.number in receipt.text_body and "reinstated" in receipt.text_body
    # The first invoice, paid with the card saved before ordering when the server was ready, and this one.
    assert len(SandboxPayments(tenant.id).succeeded_charges) == 2
    assert "dunning: 0 suspended" in run_days(clock, start, [16])[0]


def test_unpaid_through_grace_is_canceled_for_non_payment(tenant, customer, active_subscription, overdue, sandbox,
                                                          clock):
    start = clock.now()
    run_days(clock, start, [0, 3, 5, 7, 14])
    assert reloaded(active_subscription).status is SubscriptionStatus.SUSPENDED
    clock.set(start + timedelta(days=44, minutes=2))
    assert subscriptions.end_grace_periods() == 1  # the grace-end job
    canceled = reloaded(active_subscription)
    assert canceled.status is SubscriptionStatus.CANCELED
    assert canceled.servers_delete_at == canceled.canceled_at + timedelta(days=tenant.retention_days)
    [event] = events_of(active_subscription, "grace_ended")
    assert event.reason.startswith(f"Canceled for non-payment: invoice {overdue.number}")
    assert event.data["non_payment"] is True
    assert db.session.scalar(select(EmailMessage).where(EmailMessage.event == "cancellation_effective"))
    assert db.session.get(Invoice, overdue.id).status is InvoiceStatus.OPEN  # still owed


def test_an_admins_suspension_is_not_lifted_by_a_payment(tenant, customer, admin, active_subscription, overdue,
                                                         clock):
    subscriptions.suspend(tenant=tenant, actor=Actor(admin), subscription_id=active_subscription.id,
                          reason="Abuse report")
    save_card(tenant, customer)
    collection.collect_due(clock.now())
    assert db.session.get(Invoice, overdue.id).status is InvoiceStatus.PAID
    assert reloaded(active_subscription).status is SubscriptionStatus.SUSPENDED


def test_the_tenants_suspend_after_and_grace_days_decide(tenant, active_subscription, overdue, clock):
    db.session.add(BillingSettings(tenant_id=tenant.id, suspend_after_days=2, grace_days=5))
    db.session.commit()
    start = clock.now()
    assert "dunning: 0 suspended" in run_days(clock, start, [1])[0]
    assert "dunning: 1 suspended" in run_days(clock, start, [2])[0]
    assert reloaded(active_subscription).effective_at == clock.now() + timedelta(days=5)


def extend(tenant, actor, subscription, until, reason="Customer promised to pay"):  # type: ignore[no-untyped-def]
    return dunning.extend_grace(tenant=tenant, actor=actor, subscription_id=subscription.id, until=until,
                                reason=reason)


def test_extend_grace(tenant, admin, customer, support, active_subscription, overdue, clock, other_tenant):
    start = clock.now()
    run_days(clock, start, [14])
    ends = reloaded(active_subscription).effective_at
    later = ends + timedelta(days=10)
    extended = extend(tenant, Actor(admin), active_subscription, later)
    assert extended.effective_at == later and extended.status is SubscriptionStatus.SUSPENDED
    [event] = events_of(active_subscription, "grace_extended")
    assert event.reason == "Customer promised to pay" and event.actor_id == admin.id
    assert event.data["previous"] == ends.isoformat()

    with pytest.raises(InvalidInput, match="future"):
        extend(tenant, Actor(admin), active_subscription, clock.now() - timedelta(days=1))
    with pytest.raises(InvalidInput, match="within a year"):
        extend(tenant, Actor(admin), active_subscription, clock.now() + timedelta(days=366))
    with pytest.raises(InvalidInput, match="after the current end"):
        extend(tenant, Actor(admin), active_subscription, later - timedelta(days=1))
    with pytest.raises(InvalidInput, match="reason"):
        extend(tenant, Actor(admin), active_subscription, later + timedelta(days=1), reason=" ")
    for actor in (Actor(customer), Actor(support), Actor(admin, impersonator=support)):
        with pytest.raises(Forbidden):
            extend(tenant, actor, active_subscription, later + timedelta(days=1))
    other_admin = factories.user(other_tenant, email="admin@other.test", role=admin.role)
    with pytest.raises(Forbidden):
        extend(tenant, Actor(other_admin), active_subscription, later + timedelta(days=1))
    assert reloaded(active_subscription).effective_at == later

    clock.set(ends + timedelta(minutes=1))
    assert subscriptions.end_grace_periods() == 0  # the old end passed: not canceled
    clock.set(later + timedelta(minutes=1))
    assert subscriptions.end_grace_periods() == 1


def test_only_a_suspended_subscription_has_grace_to_extend(tenant, admin, active_subscription, clock):
    with pytest.raises(InvalidInput, match="suspended"):
        extend(tenant, Actor(admin), active_subscription, clock.now() + timedelta(days=3))
