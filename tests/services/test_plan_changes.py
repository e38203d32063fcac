"""Plan and quantity changes and migrations: preview equals charge (per server type and location), scheduled
downgrades, refusals, resizes."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from app.clock import now
from app.domain.accounts import Role
from app.domain.billing import ChargeKind
from app.domain.catalogue import CatalogueState, ChangeRule, Provider
from app.domain.plan_changes import ChangeAction, ScheduledStatus
from app.domain.pricing import period_end
from app.domain.subscriptions import ItemStatus
from app.extensions import db
from app.models import (
    Charge,
    EmailMessage,
    Invoice,
    PlanLocation,
    PlanPrice,
    ScheduledPlanChange,
    SubscriptionEvent,
    SubscriptionItem,
)
from app.services import plan_changes, subscriptions, work
from app.services.actors import Actor
from app.services.errors import Conflict, Forbidden, InvalidInput, NotFound
from app.services.ordering import PaymentMethodRequired
from app.services.work import Job
from tests import factories
from tests.services.conftest import complete_profile


@pytest.fixture
def resizes(monkeypatch):
    """The resize jobs queued (their task is bound by the cloud side of the portal)."""
    queued: list[int] = []
    monkeypatch.setitem(work._runners, Job.RESIZE_ITEM, queued.append)
    return queued


@pytest.fixture
def world(tenant, customer, clock):
    """The customer (profile and card) on a 10.00 EUR plan, ten days into a monthly period; Big costs 30.00 EUR,
    Small 4.00 EUR, both of the same service type."""
    complete_profile(customer)
    service_type = factories.service_type(tenant)
    product = factories.product(tenant)
    current = factories.plan(tenant, product_=product, service_type_=service_type, name="Medium", price_minor=1000)
    big = factories.plan(tenant, product_=product, service_type_=service_type, name="Big", price_minor=3000,
                         config_defaults={"serverType": "cx32", "location": "nbg1"})
    small = factories.plan(tenant, product_=product, service_type_=service_type, name="Small", price_minor=400)
    start = now() - timedelta(days=10)
    subscription = factories.subscription(tenant, customer, current, price_minor=1000, activated_at=start,
                                          current_period_start=start,
                                          current_period_end=period_end(start, current.interval))
    return subscription, current, big, small


def apply(tenant, user, subscription, action=ChangeAction.PLAN, **kwargs):
    return plan_changes.apply(tenant=tenant, actor=Actor(user), subscription_id=subscription.id, action=action,
                              version=kwargs.pop("version", subscription.version), **kwargs)


def proration_charges(subscription):
    return db.session.scalars(select(Charge).where(
        Charge.subscription_id == subscription.id,
        Charge.kind.in_([ChargeKind.PRORATION_CREDIT, ChargeKind.PRORATION_DEBIT])).order_by(Charge.kind)).all()


def test_an_upgrade_charges_exactly_what_the_preview_showed_and_is_invoiced_now(tenant, customer, world):
    subscription, _, big, _ = world
    shown = plan_changes.preview(tenant=tenant, actor=Actor(customer), subscription_id=subscription.id,
                                 action=ChangeAction.PLAN, plan_id=big.id).preview

    apply(tenant, customer, subscription, plan_id=big.id)

    charges = proration_charges(subscription)
    assert [(c.kind, c.amount_minor) for c in charges] == [
        (ChargeKind.PRORATION_CREDIT, shown.proration.credit.amount),
        (ChargeKind.PRORATION_DEBIT, shown.proration.debit.amount)]
    assert sum(c.amount_minor for c in charges) == shown.due_now.amount > 0
    assert (subscription.plan_id, subscription.price_minor) == (big.id, 3000)
    invoice = db.session.scalar(select(Invoice).where(Invoice.user_id == customer.id))
    assert invoice is not None and invoice.subtotal_minor == shown.due_now.amount  # billed now
    event = db.session.scalar(select(SubscriptionEvent).where(SubscriptionEvent.kind == "plan_changed"))
    assert event.actor_id == customer.id and event.data["plan"] == "Big"
    assert "plan_changed" in db.session.scalars(select(EmailMessage.event).where(EmailMessage.user_id == customer.id))


def test_the_same_confirmation_sent_twice_charges_once(tenant, customer, world):
    subscription, _, big, _ = world
    version = subscription.version
    apply(tenant, customer, subscription, plan_id=big.id, version=version)

    with pytest.raises(Conflict, match="reload"):
        apply(tenant, customer, subscription, plan_id=big.id, version=version)
    assert len(proration_charges(subscription)) == 2


def test_a_downgrade_is_scheduled_and_the_renewal_charges_the_new_price(tenant, customer, world, clock):
    subscription, current, _, small = world
    shown = apply(tenant, customer, subscription, plan_id=small.id).preview

    waiting = plan_changes.scheduled(tenant, subscription.id)
    assert waiting is not None and waiting.effective_at == subscription.current_period_end == shown.effective_at
    assert subscription.plan_id == current.id and proration_charges(subscription) == []

    clock.set(subscription.current_period_end + timedelta(minutes=1))
    subscriptions.renew_due()
    db.session.refresh(subscription)
    renewal = db.session.scalar(select(Charge).where(Charge.subscription_id == subscription.id,
                                                     Charge.kind == ChargeKind.RENEWAL))
    assert renewal.amount_minor == 400 == subscription.price_minor and subscription.plan_id == small.id
    assert db.session.get(ScheduledPlanChange, waiting.id).status is ScheduledStatus.APPLIED
    told = db.session.scalars(select(EmailMessage.subject).where(EmailMessage.event == "plan_changed")
                               .order_by(EmailMessage.id)).all()
    assert told == [f"Your plan change to {small.name} is scheduled", f"Your subscription is now on {small.name}"]
    subscriptions.renew_due()  # a rerun changes nothing
    assert db.session.scalars(select(Charge).where(Charge.subscription_id == subscription.id)).all() == [renewal]


def test_a_canceled_scheduled_change_leaves_the_plan_and_the_renewal_as_they_were(tenant, customer, world, clock):
    subscription, current, _, small = world
    apply(tenant, customer, subscription, plan_id=small.id)
    plan_changes.cancel_scheduled(tenant=tenant, actor=Actor(customer), subscription_id=subscription.id,
                                  version=subscription.version)
    with pytest.raises(InvalidInput, match="no scheduled change"):
        plan_changes.cancel_scheduled(tenant=tenant, actor=Actor(customer), subscription_id=subscription.id,
                                      version=subscription.version)

    clock.set(subscription.current_period_end + timedelta(minutes=1))
    subscriptions.renew_due()
    db.session.refresh(subscription)
    assert subscription.plan_id == current.id and subscription.price_minor == 1000


def test_a_second_change_waits_until_the_scheduled_one_is_canceled(tenant, customer, world):
    subscription, _, big, small = world
    apply(tenant, customer, subscription, plan_id=small.id)
    with pytest.raises(InvalidInput, match="Cancel it first"):
        apply(tenant, customer, subscription, plan_id=big.id)


def test_a_downgrade_of_a_plan_that_changes_at_once_credits_the_balance(tenant, customer, world):
    subscription, current, _, small = world
    current.downgrade_rule = ChangeRule.IMMEDIATE
    shown = apply(tenant, customer, subscription, plan_id=small.id).preview

    assert shown.immediate and shown.due_now.amount == 0 and shown.balance_credit.amount > 0
    assert sum(c.amount_minor for c in proration_charges(subscription)) == -shown.balance_credit.amount
    assert subscription.plan_id == small.id


def test_migrating_a_deprecated_plan_to_its_target(tenant, customer, world):
    subscription, current, big, _ = world
    current.state, current.migration_target_id = CatalogueState.DEPRECATED, big.id
    apply(tenant, customer, subscription, ChangeAction.MIGRATE)
    assert subscription.plan_id == big.id


def test_refusals_change_nothing(tenant, other_tenant, customer, world):
    subscription, current, big, _ = world
    foreign = factories.plan(other_tenant, price_minor=100)
    with pytest.raises(NotFound, match="no such plan"):
        apply(tenant, customer, subscription, plan_id=foreign.id)
    with pytest.raises(InvalidInput, match="already"):
        apply(tenant, customer, subscription, plan_id=current.id)
    with pytest.raises(InvalidInput, match="no migration target"):
        apply(tenant, customer, subscription, ChangeAction.MIGRATE)
    with pytest.raises(InvalidInput, match="single unit"):
        apply(tenant, customer, subscription, ChangeAction.QUANTITY, quantity=2)
    big.state = CatalogueState.DEPRECATED
    with pytest.raises(InvalidInput, match="not available"):
        apply(tenant, customer, subscription, plan_id=big.id)
    with pytest.raises(Conflict):
        apply(tenant, customer, subscription, plan_id=big.id, version=subscription.version - 1)
    other = factories.user(tenant, email="other@example.com")
    with pytest.raises(NotFound):
        apply(tenant, other, subscription, plan_id=big.id)
    with pytest.raises(NotFound):
        plan_changes.apply(tenant=other_tenant, actor=Actor(customer), subscription_id=subscription.id,
                           action=ChangeAction.PLAN, plan_id=big.id, version=subscription.version)
    db.session.refresh(subscription)
    assert subscription.plan_id == current.id and proration_charges(subscription) == []


def test_staff_as_themselves_cannot_change_plans_and_support_for_the_customer_can(tenant, customer, admin, world):
    subscription, _, big, _ = world
    with pytest.raises(Forbidden):
        apply(tenant, admin, subscription, plan_id=big.id)
    support = factories.user(tenant, email="sam@example.com", role=Role.SUPPORT)
    plan_changes.apply(tenant=tenant, actor=Actor(customer, impersonator=support), subscription_id=subscription.id,
                       action=ChangeAction.PLAN, plan_id=big.id, version=subscription.version)
    event = db.session.scalar(select(SubscriptionEvent).where(SubscriptionEvent.kind == "plan_changed"))
    assert (event.actor_id, event.impersonator_id) == (customer.id, support.id)


def test_a_paid_target_without_a_card_asks_for_one(tenant, customer, clock):
    complete_profile(customer, card=False)
    service_type = factories.service_type(tenant)
    free = factories.plan(tenant, service_type_=service_type, price_minor=0)
    paid = factories.plan(tenant, service_type_=service_type, price_minor=500)
    subscription = factories.subscription(tenant, customer, free, price_minor=0, current_period_start=now(),
                                          current_period_end=now() + timedelta(days=30))
    with pytest.raises(PaymentMethodRequired, match="add a card"):
        apply(tenant, customer, subscription, plan_id=paid.id)
    factories.payment_method(tenant, customer)
    apply(tenant, customer, subscription, plan_id=paid.id)
    assert subscription.price_minor == 500


def test_seats_change_quantity_at_the_price_per_seat(tenant, customer, clock):
    complete_profile(customer)
    seats = factories.plan(tenant, service_type_=factories.service_type(tenant, provider=Provider.NONE),
                           price_minor=500, quantity_allowed=True, max_quantity=5, config_defaults={})
    subscription = factories.subscription(tenant, customer, seats, price_minor=500, current_period_start=now(),
                                          current_period_end=now() + timedelta(days=30))
    shown = apply(tenant, customer, subscription, ChangeAction.QUANTITY, quantity=3).preview
    assert (subscription.quantity, subscription.price_minor) == (3, 1500) and shown.due_now.amount == 1000
    with pytest.raises(InvalidInput, match="at most 5"):
        apply(tenant, customer, subscription, ChangeAction.QUANTITY, quantity=6)


def add_server(tenant, subscription, server_type, location="nbg1"):
    item = SubscriptionItem(tenant_id=tenant.id, subscription_id=subscription.id, status=ItemStatus.ACTIVE,
                            provider=Provider.HETZNER, config={"serverType": server_type, "location": location},
                            server_id="42", hostname=f"srv{subscription.id}")
    db.session.add(item)
    db.session.commit()
    db.session.refresh(subscription)
    return item


def offer(plan, prices, locations=()):
    """`plan` offers these server types at these prices (the first the default) and these locations with their
    surcharges."""
    plan.prices = [PlanPrice(server_type=kind, price_minor=price, sort=n, is_default=n == 0)
                   for n, (kind, price) in enumerate(prices)]
    plan.locations = [PlanLocation(location=where, surcharge_minor=surcharge, sort=n, is_default=n == 0)
                      for n, (where, surcharge) in enumerate(locations)]
    plan.config_defaults = {**plan.config_defaults, "serverType": prices[0][0]}
    db.session.commit()


def test_a_target_without_the_current_server_type_resizes_to_its_default_and_a_smaller_disk_is_refused(
        tenant, customer, world, resizes):
    subscription, current, big, _ = world
    offer(big, [("cx32", 3000)])
    item = add_server(tenant, subscription, "cx22")
    shown = apply(tenant, customer, subscription, plan_id=big.id).preview

    assert shown.resize_to == "cx32" and item.config["server_type"] == "cx32"
    assert shown.target.server_type == "cx32" and subscription.requested_config["serverType"] == "cx32"
    assert resizes == [item.id]

    back = factories.plan(tenant, product_=current.product, service_type_=current.service_type, price_minor=4000,
                          config_defaults={"serverType": "cx22", "location": "nbg1"})
    offer(back, [("cx22", 4000)])
    with pytest.raises(InvalidInput, match="disk can never shrink"):
        apply(tenant, customer, subscription, plan_id=back.id)
    assert subscription.plan_id == big.id


def test_the_customers_server_type_and_location_are_kept_and_priced_as_the_target_prices_them(
        tenant, customer, world, resizes):
    subscription, _, big, _ = world
    big.allow_customer_location_selection = True  # else it places servers only in its default location
    offer(big, [("cx32", 3000), ("cx22", 1500)], [("nbg1", 0), ("hel1", 250)])
    item = add_server(tenant, subscription, "cx22", "hel1")
    shown = plan_changes.preview(tenant=tenant, actor=Actor(customer), subscription_id=subscription.id,
                                 action=ChangeAction.PLAN, plan_id=big.id)

    assert (shown.preview.target.server_type, shown.location, shown.preview.resize_to) == ("cx22", "hel1", None)
    assert shown.preview.new_price.amount == 1500 + 250  # cx22's price, not the default's, plus the surcharge
    assert shown.surcharge_minor == 250
    apply(tenant, customer, subscription, plan_id=big.id)

    charges = proration_charges(subscription)
    assert [c.amount_minor for c in charges] == [shown.preview.proration.credit.amount,
                                                 shown.preview.proration.debit.amount]
    assert sum(c.amount_minor for c in charges) == shown.preview.due_now.amount > 0
    assert (subscription.plan_id, subscription.price_minor) == (big.id, 1750)
    assert "server_type" not in item.config and resizes == []


def test_a_target_not_offered_where_the_servers_are_is_refused(tenant, customer, world, resizes):
    subscription, current, big, _ = world
    big.allow_customer_location_selection = True
    offer(big, [("cx22", 3000)], [("nbg1", 0), ("fsn1", 0)])
    add_server(tenant, subscription, "cx22", "hel1")
    version = subscription.version
    with pytest.raises(InvalidInput, match="cannot move to another location"):
        apply(tenant, customer, subscription, plan_id=big.id)
    assert (subscription.plan_id, subscription.price_minor, subscription.version) == (current.id, 1000, version)
    assert proration_charges(subscription) == [] and resizes == []


def test_a_metered_plan_does_not_move_to_a_plan_with_other_usage_prices(tenant, customer, world):
    subscription, current, big, _ = world
    current.usage_prices = [{"metric": "traffic_gb", "label": "Traffic", "unit": "GB", "unit_price_minor": 1}]
    with pytest.raises(InvalidInput, match="usage at other prices"):
        apply(tenant, customer, subscription, plan_id=big.id)
    assert subscription.plan_id == current.id


def test_canceling_the_subscription_drops_its_scheduled_change(tenant, customer, world):
    subscription, current, _, small = world
    current.cancellation_rule = ChangeRule.IMMEDIATE
    apply(tenant, customer, subscription, plan_id=small.id)
    subscriptions.cancel(tenant=tenant, actor=Actor(customer), subscription_id=subscription.id)
    assert plan_changes.scheduled(tenant, subscription.id) is None
    assert db.session.scalar(select(ScheduledPlanChange.status)) is ScheduledStatus.CANCELED
