"""Plan changes under real concurrency on PostgreSQL: a change racing the renewal job creates no double charge."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from app.clock import now
from app.domain.billing import ChargeKind
from app.domain.plan_changes import ChangeAction, ScheduledStatus
from app.domain.pricing import period_end
from app.extensions import db
from app.models import Charge, Plan, ScheduledPlanChange, Subscription, SubscriptionEvent, Tenant, User
from app.services import plan_changes, subscriptions
from app.services.actors import Actor
from app.services.errors import ServiceError
from tests import factories
from tests.services import test_races as races
from tests.services.test_races import World, at_once

pytestmark = races.pytestmark
race_app, world = races.race_app, races.world  # the fixtures: an app of its own, a committed tenant

AT_ONCE = 8


def subscribed(world: World, *, ends_in: timedelta, downgrade: bool = False) -> tuple[int, int, int]:
    """The customer's active 9.90 EUR subscription whose period ends in `ends_in`, and another plan of the same
    service type (4.00 EUR when `downgrade`, else 30.00 EUR); with a downgrade scheduled when `downgrade`."""
    tenant = db.session.get(Tenant, world.tenant_id)
    customer = db.session.get(User, world.user_id)
    plan = db.session.get(Plan, world.plan_id)
    other = factories.plan(tenant, product_=plan.product, service_type_=plan.service_type,
                           price_minor=400 if downgrade else 3000)
    end = now() + ends_in
    start = end - (period_end(end, plan.interval) - end)
    subscription = factories.subscription(tenant, customer, plan, activated_at=start, current_period_start=start,
                                          current_period_end=end)
    if downgrade:  # as the customer scheduled it before the period ended
        db.session.add(ScheduledPlanChange(
            tenant_id=tenant.id, subscription_id=subscription.id, action=ChangeAction.PLAN, plan_id=other.id,
            quantity=1, price_minor=400, effective_at=end, status=ScheduledStatus.SCHEDULED, created_at=start))
        db.session.commit()
    return subscription.id, subscription.version, other.id


def change(world: World, subscription_id: int, version: int, plan_id: int) -> str:
    tenant = db.session.get(Tenant, world.tenant_id)
    customer = db.session.get(User, world.user_id)
    try:
        plan_changes.apply(tenant=tenant, actor=Actor(customer), subscription_id=subscription_id,
                           action=ChangeAction.PLAN, plan_id=plan_id, version=version)
    except ServiceError as error:
        return f"refused: {error}"
    return "changed"


def charges(subscription_id: int, kind: ChargeKind) -> list[int]:
    return list(db.session.scalars(select(Charge.amount_minor).where(Charge.subscription_id == subscription_id,
                                                                     Charge.kind == kind)))


def test_the_same_upgrade_confirmed_at_once_is_charged_once(race_app, world):
    with race_app.app_context():
        subscription_id, version, big = subscribed(world, ends_in=timedelta(days=10))

    results = at_once(race_app, AT_ONCE, lambda _: change(world, subscription_id, version, big))

    assert results.count("changed") == 1, results
    assert all("reload" in result for result in results if result != "changed"), results
    with race_app.app_context():
        assert len(charges(subscription_id, ChargeKind.PRORATION_CREDIT)) == 1
        assert len(charges(subscription_id, ChargeKind.PRORATION_DEBIT)) == 1


def test_an_upgrade_racing_the_renewal_is_charged_once_and_never_on_the_old_period(race_app, world):
    with race_app.app_context():
        subscription_id, version, big = subscribed(world, ends_in=-timedelta(minutes=1))  # the renewal is due

    results = at_once(race_app, AT_ONCE, lambda index: subscriptions.renew_due() if index % 2
                      else change(world, subscription_id, version, big))

    changes = [result for result in results if isinstance(result, str)]
    assert all(result.startswith("refused") for result in changes), results  # renewing, or changed meanwhile
    with race_app.app_context():
        subscriptions.renew_due()  # the next run (a renewer skips a subscription locked by a change)
        assert charges(subscription_id, ChargeKind.RENEWAL) == [990]
        assert charges(subscription_id, ChargeKind.PRORATION_DEBIT) == []


def test_a_scheduled_downgrade_racing_its_cancellation_and_the_renewal_charges_one_price_once(race_app, world):
    with race_app.app_context():
        # The period has ended: the renewal is due, and canceling the change is allowed until it runs.
        subscription_id, version, small = subscribed(world, ends_in=-timedelta(minutes=1), downgrade=True)

    def cancel() -> str:
        try:
            plan_changes.cancel_scheduled(tenant=db.session.get(Tenant, world.tenant_id),
                                          actor=Actor(db.session.get(User, world.user_id)),
                                          subscription_id=subscription_id, version=version)
        except ServiceError as error:
            return f"refused: {error}"
        return "canceled"

    results = at_once(race_app, AT_ONCE, lambda index: cancel() if index == 0 else subscriptions.renew_due())

    with race_app.app_context():
        subscriptions.renew_due()  # the next run (a renewer skips a subscription locked by the cancellation)
        renewal = charges(subscription_id, ChargeKind.RENEWAL)
        subscription = db.session.get(Subscription, subscription_id)
        waiting = db.session.scalar(select(ScheduledPlanChange).where(
            ScheduledPlanChange.subscription_id == subscription_id))
        applied = db.session.scalars(select(SubscriptionEvent.id).where(
            SubscriptionEvent.subscription_id == subscription_id,
            SubscriptionEvent.kind == "plan_change_applied")).all()
        assert len(renewal) == 1, results
        if results[0] == "canceled":
            assert waiting.status is ScheduledStatus.CANCELED and renewal == [990] and not applied
            assert subscription.plan_id == world.plan_id
        else:
            assert waiting.status is ScheduledStatus.APPLIED and renewal == [400] and len(applied) == 1
            assert subscription.plan_id == small
