"""The end of life's emails: the deletion ahead (once per subscription, however often the job runs) and done."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from app.domain.catalogue import ChangeRule
from app.domain.notifications import EmailStatus
from app.extensions import db
from app.models import EmailMessage, Subscription
from app.services import decommissioning, subscriptions
from app.services.actors import Actor
from tests import factories
from tests.services.conftest import boot, place


@pytest.fixture
def plan(tenant):  # type: ignore[no-untyped-def]
    return factories.plan(tenant, cancellation_rule=ChangeRule.IMMEDIATE)


@pytest.fixture
def ended(tenant, customer, profile, plan, sandbox, clock) -> Subscription:  # type: ignore[no-untyped-def]
    """A canceled subscription whose delivered server is kept, off, until the retention ends (7 days)."""
    subscription = place(tenant, customer, plan)
    boot(clock)
    subscriptions.cancel(tenant=tenant, actor=Actor(customer), subscription_id=subscription.id)
    return reloaded(subscription)


def reloaded(subscription: Subscription) -> Subscription:
    db.session.expire_all()
    return db.session.get(Subscription, subscription.id)


def emails(subscription: Subscription, event: str) -> list[EmailMessage]:
    db.session.expire_all()
    return list(db.session.scalars(select(EmailMessage).where(EmailMessage.subscription_id == subscription.id,
                                                              EmailMessage.event == event)))


def outbox(app):  # type: ignore[no-untyped-def]
    return app.extensions["mailman"].outbox


def test_the_owner_is_told_three_days_ahead_once_however_often_the_job_runs(app, customer, ended, clock):
    delete_at = ended.servers_delete_at
    clock.set(delete_at - timedelta(days=3, seconds=1))
    assert decommissioning.warn_of_deletions() == 0  # not yet
    clock.set(delete_at - timedelta(days=3))
    assert decommissioning.warn_of_deletions() == 1
    assert decommissioning.warn_of_deletions() == 0
    clock.advance(days=1)
    assert decommissioning.warn_of_deletions() == 0
    [message] = emails(ended, "deletion_ahead")
    assert message.status is EmailStatus.SENT and message.to_address == customer.email
    sent = outbox(app)[-1]
    assert sent.subject == f"Your {ended.plan.name} servers are deleted on {delete_at:%-d %b %Y}"
    assert ended.items[0].hostname in sent.body and f"On {delete_at:%-d %b %Y, %H:%M} UTC" in sent.body


def test_the_job_by_hand_as_of_a_time_tells_once(app, runner, ended, clock):
    as_of = (ended.servers_delete_at - timedelta(days=2)).isoformat()
    db.session.commit()
    first = runner.invoke(args=["jobs", "run", "deletion-ahead", "--as-of", as_of])
    second = runner.invoke(args=["jobs", "run", "deletion-ahead", "--as-of", as_of])
    assert first.exit_code == 0 and "1 owner told of a deletion ahead" in first.output, first.output
    assert second.exit_code == 0 and "0 owners told of a deletion ahead" in second.output, second.output
    assert len(emails(ended, "deletion_ahead")) == 1


def test_no_warning_for_what_was_never_delivered_kept_longer_or_already_gone(app, tenant, customer, profile, plan,
                                                                              sandbox, ended, admin, clock):
    never = place(tenant, customer, plan)  # canceled while its server was still being made
    subscriptions.cancel(tenant=tenant, actor=Actor(customer), subscription_id=never.id)
    first_date = ended.servers_delete_at
    subscriptions.extend_retention(tenant=tenant, actor=Actor(admin), subscription_id=ended.id,
                                   until=first_date + timedelta(days=30), reason="Customer asked")
    clock.set(first_date - timedelta(days=1))
    assert decommissioning.warn_of_deletions() == 0
    clock.set(first_date + timedelta(days=29))
    assert decommissioning.warn_of_deletions() == 1  # the new date comes near
    assert emails(never, "deletion_ahead") == []


def test_the_owner_is_told_once_when_the_servers_are_deleted(app, customer, ended, sandbox, clock):
    clock.set(ended.servers_delete_at + timedelta(minutes=1))
    assert decommissioning.delete_due() == 1
    assert decommissioning.delete_due() == 0
    [message] = emails(ended, "deletion_done")
    assert message.status is EmailStatus.SENT
    assert outbox(app)[-1].subject == f"Your {ended.plan.name} servers were deleted"
    assert decommissioning.warn_of_deletions() == 0  # purged: nothing ahead any more


def test_a_purged_order_that_was_never_delivered_sends_no_deletion_email(app, tenant, customer, profile, plan,
                                                                         sandbox, clock):
    never = place(tenant, customer, plan)
    subscriptions.cancel(tenant=tenant, actor=Actor(customer), subscription_id=never.id)
    clock.set(reloaded(never).servers_delete_at + timedelta(minutes=1))
    assert decommissioning.delete_due() == 1
    assert emails(never, "deletion_done") == []
