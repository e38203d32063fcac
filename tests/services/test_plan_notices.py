"""Telling a deprecated plan's subscribers, with where to move (no deprecate action calls it yet)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.domain.catalogue import CatalogueState
from app.domain.notifications import EmailStatus, Event
from app.domain.subscriptions import SubscriptionStatus
from app.extensions import db
from app.models import EmailMessage
from app.services import plan_notices
from app.services.actors import Actor
from app.services.errors import Forbidden, InvalidInput, NotFound
from tests import factories


@pytest.fixture
def deprecated(tenant):  # type: ignore[no-untyped-def]
    target = factories.plan(tenant, name="Cloud M v2")
    return factories.plan(tenant, name="Cloud M", state=CatalogueState.DEPRECATED, migration_target_id=target.id)


def logged() -> list[tuple[str, str, EmailStatus]]:
    db.session.expire_all()
    return [(m.to_address, m.event, m.status) for m in db.session.scalars(select(EmailMessage).order_by(EmailMessage.id))]


def test_every_subscriber_keeping_the_plan_is_told_where_to_move(app, tenant, other_tenant, customer, admin,
                                                                 deprecated):
    quiet = factories.user(tenant, email="quiet@example.com")
    quiet.email_opt_outs = [Event.PLAN_DEPRECATED.value]
    leaving = factories.user(tenant, email="leaving@example.com")
    factories.subscription(tenant, customer, deprecated)
    factories.subscription(tenant, quiet, deprecated, status=SubscriptionStatus.SUSPENDED)
    factories.subscription(tenant, leaving, deprecated, status=SubscriptionStatus.PENDING_CANCEL)
    factories.subscription(tenant, leaving, deprecated, status=SubscriptionStatus.CANCELED)
    factories.subscription(tenant, leaving, factories.plan(tenant))  # another plan

    told = plan_notices.announce_deprecation(tenant=tenant, actor=Actor(admin), plan_id=deprecated.id)

    assert told == 2
    assert logged() == [(customer.email, "plan_deprecated", EmailStatus.SENT),
                        ("quiet@example.com", "plan_deprecated", EmailStatus.SKIPPED)]
    [sent] = app.extensions["mailman"].outbox
    assert sent.subject == "The Cloud M plan is no longer offered"
    assert "We recommend moving to Cloud M v2" in sent.body and "keeps running on it as it is" in sent.body


def test_without_a_target_the_email_names_none(app, tenant, customer):
    plan = factories.plan(tenant, name="Old", state=CatalogueState.DEPRECATED)
    factories.subscription(tenant, customer, plan)
    assert plan_notices.announce_deprecation(tenant=tenant, actor=Actor.system("catalogue"), plan_id=plan.id) == 1
    assert "We recommend" not in app.extensions["mailman"].outbox[0].body


def test_refusals(tenant, other_tenant, customer, admin, deprecated):
    published = factories.plan(tenant)
    theirs = factories.plan(other_tenant, state=CatalogueState.DEPRECATED)
    with pytest.raises(Forbidden):
        plan_notices.announce_deprecation(tenant=tenant, actor=Actor(customer), plan_id=deprecated.id)
    with pytest.raises(InvalidInput):
        plan_notices.announce_deprecation(tenant=tenant, actor=Actor(admin), plan_id=published.id)
    with pytest.raises(NotFound):
        plan_notices.announce_deprecation(tenant=tenant, actor=Actor(admin), plan_id=theirs.id)
    assert logged() == []
