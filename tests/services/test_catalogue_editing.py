"""Editing the catalogue: checked, audited field by field, drafts published; a published plan's new price reaches
existing subscribers only after its notice; orders take only what a plan offers, at its price; free plans have a
limit per customer."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from app.domain.catalogue import CatalogueState, ChangeRule, Interval, Provider
from app.domain.plan_offers import LocationOffer, TypePrice
from app.extensions import db
from app.models import CatalogueChange, Charge, EmailMessage, Plan, PlanPriceChange, Subscription
from app.services import catalogue_editing as editing
from app.services import catalogue_lifecycle, ordering, subscriptions
from app.services.actors import Actor
from app.services.errors import Forbidden, InvalidInput
from tests import factories
from tests.services.conftest import as_worker, boot, complete_profile, count, place

OFFERS = (TypePrice("cx22", 450, 379, None, True), TypePrice("cx32", 890))
LOCATIONS = (LocationOffer("nbg1", 0, True), LocationOffer("hel1", 100))


def plan_input(**changes: object) -> editing.PlanInput:
    values: dict[str, object] = dict(
        slug="vps-s", name="VPS S", description="", interval=Interval.MONTH, price_minor=0, quantity_allowed=False,
        max_quantity=None, allow_customer_location_selection=True, cancellation_rule=ChangeRule.PERIOD_END,
        downgrade_rule=ChangeRule.PERIOD_END, free_plan_limit=1, price_notice_days=30, prices=OFFERS,
        locations=LOCATIONS, images=("debian-12",), default_image="debian-12")
    values.update(changes)
    return editing.PlanInput(**values)  # type: ignore[arg-type]


@pytest.fixture
def admin_actor(admin) -> Actor:  # type: ignore[no-untyped-def]
    return Actor(admin)


@pytest.fixture
def offered(tenant, admin_actor) -> Plan:  # type: ignore[no-untyped-def]
    """A plan made through the editing service and published through the lifecycle."""
    product = factories.product(tenant)
    service_type = factories.service_type(tenant)
    plan = editing.create_plan(tenant=tenant, actor=admin_actor, product_id=product.id,
                               service_type_id=service_type.id, values=plan_input())
    catalogue_lifecycle.publish_plan(tenant=tenant, actor=admin_actor, plan_id=plan.id)
    return plan


def audit(entity: str) -> list[CatalogueChange]:
    return list(db.session.scalars(select(CatalogueChange).where(CatalogueChange.entity == entity)
                                   .order_by(CatalogueChange.id)))


def test_a_service_type_is_checked_and_its_changes_audited(tenant, admin_actor):
    values = editing.ServiceTypeInput("vps", "VPS", Provider.HETZNER, json.dumps(factories.HETZNER_SCHEMA),
                                      "#cloud-config\nhostname: {{ hostname }}\n")
    row = editing.create_service_type(tenant=tenant, actor=admin_actor, values=values)
    with pytest.raises(InvalidInput, match="not valid JSON") as error:
        editing.update_service_type(tenant=tenant, actor=admin_actor, service_type_id=row.id,
                                    values=editing.ServiceTypeInput("vps", "VPS", Provider.HETZNER, "{", ""))
    assert error.value.field == "config_schema"
    with pytest.raises(InvalidInput, match="32768"):
        editing.update_service_type(tenant=tenant, actor=admin_actor, service_type_id=row.id, values=editing.ServiceTypeInput(
            "vps", "VPS", Provider.HETZNER, values.config_schema, "x" * 40_000))
    editing.update_service_type(tenant=tenant, actor=admin_actor, service_type_id=row.id,
                                values=editing.ServiceTypeInput("vps", "VPS 2", Provider.HETZNER,
                                                                values.config_schema, values.cloud_init_template))
    changes = audit("service_type")
    assert [c.action for c in changes] == ["created", "edited"]
    assert changes[1].changes == {"name": ["VPS", "VPS 2"]} and changes[1].actor_id == admin_actor.user_id


def test_a_schema_that_drops_a_choice_a_plan_offers_is_refused(tenant, admin_actor, offered):
    schema = json.loads(json.dumps(factories.HETZNER_SCHEMA))
    schema["properties"]["serverType"]["enum"] = ["cx32"]
    with pytest.raises(InvalidInput, match="cx22"):
        editing.update_service_type(tenant=tenant, actor=admin_actor, service_type_id=offered.service_type_id,
                                    values=editing.ServiceTypeInput("st", "S", Provider.HETZNER, json.dumps(schema), ""))


def test_only_the_tenants_admins_edit(tenant, other_tenant, customer, support, offered):
    outsider = factories.user(other_tenant, role=factories.Role.TENANT_ADMIN)
    for user in (customer, support, outsider):
        with pytest.raises(Forbidden):
            editing.update_plan(tenant=tenant, actor=Actor(user), plan_id=offered.id, values=plan_input())


def test_a_product_and_a_plan_are_drafts_until_published(tenant, admin_actor):
    product = editing.create_product(tenant=tenant, actor=admin_actor,
                                     values=editing.ProductInput("vps", "VPS", "Servers", 1))
    plan = editing.create_plan(tenant=tenant, actor=admin_actor, product_id=product.id,
                               service_type_id=factories.service_type(tenant).id, values=plan_input())
    assert (product.state, plan.state) == (CatalogueState.DRAFT, CatalogueState.DRAFT)
    with pytest.raises(InvalidInput, match="no longer available"):
        ordering.orderable_plan(tenant, plan.id)
    with pytest.raises(InvalidInput, match="product first"):
        catalogue_lifecycle.publish_plan(tenant=tenant, actor=admin_actor, plan_id=plan.id)
    operation = catalogue_lifecycle.publish_product(tenant=tenant, actor=admin_actor, product_id=product.id)
    assert operation.plan_ids == [plan.id] and operation.actor_id == admin_actor.user_id
    assert ordering.orderable_plan(tenant, plan.id).id == plan.id
    with pytest.raises(InvalidInput, match="published already"):
        catalogue_lifecycle.publish_plan(tenant=tenant, actor=admin_actor, plan_id=plan.id)
    assert [c.action for c in audit("plan")] == ["created"]  # publishing is a lifecycle operation
    assert audit("plan")[0].changes["prices"] == [None, {"cx22": 450, "cx32": 890}]


def test_orders_take_only_the_plans_offers_at_their_price(tenant, customer, offered, clock):
    complete_profile(customer)
    assert ordering.price(offered, 1, server_type="cx32", location="hel1").recurring.amount == 990
    assert ordering.price(offered, 1).recurring.amount == 450  # no choice: the default type's price
    for forged in ({"serverType": "cx42"}, {"location": "fsn1"}, {"image": "ubuntu-24.04"}):
        with pytest.raises(ordering.ConfigInvalid) as error:
            place(tenant, customer, offered, config=forged)
        assert set(error.value.errors.values()) == {"Choose one of the offered options."}
    assert count(Subscription) == 0
    subscription = place(tenant, customer, offered, config={"serverType": "cx32", "location": "hel1"})
    assert subscription.price_minor == 990
    assert subscription.requested_config == {"serverType": "cx32", "location": "hel1", "image": "debian-12"}


def test_a_published_price_change_waits_for_confirmation_then_reaches_renewals_after_the_notice(
        app, tenant, customer, admin_actor, offered, clock):
    complete_profile(customer)
    subscription = place(tenant, customer, offered, config={"location": "hel1"})
    boot(clock)
    assert db.session.get(Subscription, subscription.id).price_minor == 550
    new_prices = (TypePrice("cx22", 500, None, None, True), TypePrice("cx32", 890))
    values = plan_input(prices=new_prices, price_notice_days=45)
    with pytest.raises(editing.ConfirmPriceChange) as pending:
        editing.update_plan(tenant=tenant, actor=admin_actor, plan_id=offered.id, values=values)
    assert [(c.server_type, c.old_price_minor, c.new_price_minor) for c in pending.value.changes] == [
        ("cx22", 450, 500)]
    assert pending.value.changes[0].effective_at == clock.now() + timedelta(days=45)
    assert count(PlanPriceChange) == 0
    editing.update_plan(tenant=tenant, actor=admin_actor, plan_id=offered.id, values=values, confirmed=True)
    email = db.session.scalar(select(EmailMessage).where(EmailMessage.event == "price_changed"))
    assert email.user_id == customer.id and "changes on" in email.subject
    assert audit("plan")[-1].changes["prices"] == [{"cx22": 450, "cx32": 890}, {"cx22": 500, "cx32": 890}]
    assert ordering.price(offered, 1, server_type="cx22").recurring.amount == 500  # new orders: at once

    clock.set(db.session.get(Subscription, subscription.id).current_period_end)
    assert as_worker(subscriptions.renew_due) == 1  # the first renewal falls inside the 45 days: the old price
    db.session.expire_all()
    clock.set(db.session.get(Subscription, subscription.id).current_period_end)
    assert as_worker(subscriptions.renew_due) == 1  # the next is after them: the new price, with the surcharge
    charges = db.session.scalars(select(Charge.amount_minor).where(Charge.subscription_id == subscription.id)
                                 .order_by(Charge.period_start)).all()
    assert charges == [550, 550, 600]
    assert db.session.get(Subscription, subscription.id).price_minor == 600


def test_a_subscription_ordered_after_a_price_change_keeps_what_it_paid(tenant, customer, admin_actor, offered,
                                                                        clock):
    complete_profile(customer)
    editing.update_plan(tenant=tenant, actor=admin_actor, plan_id=offered.id, confirmed=True,
                        values=plan_input(prices=(TypePrice("cx22", 500, None, None, True), TypePrice("cx32", 890))))
    subscription = place(tenant, customer, offered)
    boot(clock)
    clock.advance(days=95)
    assert as_worker(subscriptions.renew_due) == 3
    charges = db.session.scalars(select(Charge.amount_minor).where(Charge.subscription_id == subscription.id)).all()
    assert set(charges) == {500}


def test_a_published_plan_stays_free_or_paid(tenant, admin_actor, offered):
    free = (TypePrice("cx22", 0, None, None, True), TypePrice("cx32", 0))
    with pytest.raises(InvalidInput, match="stays free or paid"):
        editing.update_plan(tenant=tenant, actor=admin_actor, plan_id=offered.id, values=plan_input(prices=free),
                            confirmed=True)


def test_a_free_plan_is_held_once_per_customer(tenant, customer, admin_actor):
    complete_profile(customer, card=False)
    product = factories.product(tenant)
    trial = editing.create_plan(tenant=tenant, actor=admin_actor, product_id=product.id,
                                service_type_id=factories.service_type(tenant).id,
                                values=plan_input(prices=(TypePrice("cx22", 0, None, None, True),)))
    catalogue_lifecycle.publish_plan(tenant=tenant, actor=admin_actor, plan_id=trial.id)
    first = place(tenant, customer, trial, key="trial-1")
    assert place(tenant, customer, trial, key="trial-1").id == first.id  # the same form again: the same one
    with pytest.raises(InvalidInput, match="the most one customer may hold"):
        place(tenant, customer, trial, key="trial-2")
    assert count(Subscription) == 1
    subscriptions.cancel(tenant=tenant, actor=Actor(customer), subscription_id=first.id)
    db.session.get(Subscription, first.id).status = factories.SubscriptionStatus.CANCELED
    db.session.commit()
    assert place(tenant, customer, trial, key="trial-3").id != first.id  # a canceled one no longer counts


def test_each_subscriber_is_told_the_change_of_their_own_server_type_in_emails_written_at_once(
        app, tenant, customer, admin_actor, offered, clock):
    """Every subscription gets one email naming its server type's change; they are written in one statement per
    change and rendered by the worker that sends them (the admin's save renders none)."""
    complete_profile(customer)
    small = place(tenant, customer, offered, config={"serverType": "cx22", "location": "nbg1"})
    large = place(tenant, customer, offered, config={"serverType": "cx32", "location": "nbg1"}, key="large")
    boot(clock)
    values = plan_input(prices=(TypePrice("cx22", 500, None, None, True), TypePrice("cx32", 990)))
    editing.update_plan(tenant=tenant, actor=admin_actor, plan_id=offered.id, values=values, confirmed=True)
    emails = {email.text_body.split("Your subscription #")[1].split(" ")[0]: email for email in db.session.scalars(
        select(EmailMessage).where(EmailMessage.event == "price_changed"))}
    assert set(emails) == {str(small.id), str(large.id)}
    assert "for cx22 servers from 4.50" in emails[str(small.id)].text_body.replace("€", "").replace("EUR ", "")
    assert "for cx32 servers from 8.90" in emails[str(large.id)].text_body.replace("€", "").replace("EUR ", "")
    assert all(email.status.value == "sent" and email.user_id == customer.id for email in emails.values())


def test_a_plan_with_one_price_tells_every_subscriber_its_new_price(tenant, customer, admin_actor, clock):
    """A service without server types (one price for the plan): its change concerns every subscription."""
    service = factories.service_type(tenant, config_schema={"type": "object", "properties": {}})
    plan = factories.plan(tenant, service_type_=service, config_defaults={})
    subscription = factories.subscription(tenant, customer, plan)
    values = plan_input(slug=plan.slug, prices=(), price_minor=1290, locations=(), images=(), default_image="",
                        allow_customer_location_selection=False, price_notice_days=0)
    editing.update_plan(tenant=tenant, actor=admin_actor, plan_id=plan.id, values=values, confirmed=True)
    email = db.session.scalar(select(EmailMessage).where(EmailMessage.event == "price_changed"))
    assert email.user_id == customer.id and f"Your subscription #{subscription.id} " in email.text_body
    assert "from €9.90 to €12.90 a month" in email.text_body and " servers from" not in email.text_body


def test_a_plan_with_one_price_given_prices_per_type_tells_and_charges_its_subscribers_after_notice(
        tenant, customer, admin_actor, active_subscription, plan, clock):
    """The fixture's plan sold cx22 at its one price, 9.90: cx22 at 12.90 is a change, with notice."""
    values = plan_input(slug=plan.slug, prices=(TypePrice("cx22", 1290, None, None, True),),
                        locations=(LocationOffer("nbg1", 0, True),), images=(), default_image="", price_notice_days=0)
    with pytest.raises(editing.ConfirmPriceChange) as pending:
        editing.update_plan(tenant=tenant, actor=admin_actor, plan_id=plan.id, values=values)
    assert [(c.old_price_minor, c.new_price_minor) for c in pending.value.changes] == [(990, 1290)]
    editing.update_plan(tenant=tenant, actor=admin_actor, plan_id=plan.id, values=values, confirmed=True)
    assert count(EmailMessage, EmailMessage.event == "price_changed") == 1
    clock.set(db.session.get(Subscription, active_subscription.id).current_period_end)
    assert as_worker(subscriptions.renew_due) == 1
    assert db.session.get(Subscription, active_subscription.id).price_minor == 1290
