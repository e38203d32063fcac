"""Saved cards: added on the hosted page (the in-process sandbox), stored once, made default, removed."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import func, select

from app.domain.accounts import Role
from app.domain.billing import SetupStatus
from app.extensions import db
from app.models import PaymentCustomer, PaymentMethod, PaymentSetup
from app.sandbox.payments import SandboxPayments
from app.services import payment_methods
from app.services.actors import Actor
from app.services.errors import Forbidden, InvalidInput, NotFound
from tests import factories

BACK = "http://localhost/billing/payment-methods/added"


def start(tenant, actor, **options):
    url = payment_methods.start_setup(tenant=tenant, actor=actor, return_url=BACK, **options)
    return parse_qs(urlsplit(url).query)["session_id"][0]


def add_card(tenant, actor, number="4242 4242 4242 4242", **options):
    session_id = start(tenant, actor, **options)
    assert SandboxPayments(tenant.id).complete_setup(session_id, number)
    return payment_methods.finish_setup(tenant=tenant, actor=actor, session_id=session_id)


def cards(customer):
    return db.session.scalars(select(PaymentMethod).where(PaymentMethod.user_id == customer.id,
                                                          PaymentMethod.removed_at.is_(None))
                              .order_by(PaymentMethod.id)).all()


def test_the_first_card_is_saved_as_the_default_and_the_customer_is_made_once(tenant, customer, actor):
    outcome = add_card(tenant, actor, next_url="/order/7?quantity=2")
    assert outcome.status is SetupStatus.COMPLETE and outcome.next_url == "/order/7?quantity=2"
    method = outcome.method
    assert (method.brand, method.last4, method.is_default, method.provider) == ("visa", "4242", True, "sandbox")
    second = add_card(tenant, actor, "5555 5555 5555 4444").method
    assert (second.brand, second.is_default) == ("mastercard", False)
    assert db.session.scalar(select(func.count()).select_from(PaymentCustomer)) == 1
    assert payment_methods.has_card(tenant, customer)


def test_finishing_twice_stores_the_card_once(tenant, customer, actor):
    session_id = start(tenant, actor)
    SandboxPayments(tenant.id).complete_setup(session_id, "4242424242424242")
    by_webhook = payment_methods.finish_setup(tenant=tenant, actor=Actor.system("stripe-webhook"),
                                              session_id=session_id)
    by_return = payment_methods.finish_setup(tenant=tenant, actor=actor, session_id=session_id)
    assert by_webhook.method.id == by_return.method.id
    assert len(cards(customer)) == 1


def test_an_unfinished_page_stores_nothing(tenant, customer, actor):
    session_id = start(tenant, actor)
    assert not SandboxPayments(tenant.id).complete_setup(session_id, "4000 0000 0000 0002")
    outcome = payment_methods.finish_setup(tenant=tenant, actor=actor, session_id=session_id)
    assert (outcome.status, outcome.method) == (SetupStatus.OPEN, None)
    assert cards(customer) == []


def test_next_must_be_a_local_path(tenant, actor):
    session_id = start(tenant, actor, next_url="https://evil.example/")
    assert db.session.scalar(select(PaymentSetup.next_url).where(PaymentSetup.external_id == session_id)) == ""


def test_someone_elses_setup_invoice_or_card_is_not_found(tenant, customer, actor, other_tenant):
    session_id = start(tenant, actor)
    stranger = Actor(factories.user(tenant))
    with pytest.raises(NotFound):
        payment_methods.finish_setup(tenant=tenant, actor=stranger, session_id=session_id)
    with pytest.raises(NotFound):
        payment_methods.finish_setup(tenant=other_tenant, actor=actor, session_id=session_id)
    method = add_card(tenant, actor).method
    with pytest.raises(NotFound):
        payment_methods.make_default(tenant=tenant, actor=stranger, method_id=method.id)
    with pytest.raises(NotFound):
        payment_methods.remove(tenant=other_tenant, actor=actor, method_id=method.id)
    foreign = factories.invoice(factories.subscription(tenant, stranger.user, factories.plan(tenant)))
    with pytest.raises(NotFound):
        payment_methods.start_setup(tenant=tenant, actor=actor, invoice_id=foreign.id, return_url=BACK)


def test_support_impersonating_the_customer_is_refused(tenant, customer, actor):
    method = add_card(tenant, actor).method
    impersonated = Actor(customer, impersonator=factories.user(tenant, role=Role.SUPPORT))
    for call in (lambda: start(tenant, impersonated),
                 lambda: payment_methods.make_default(tenant=tenant, actor=impersonated, method_id=method.id),
                 lambda: payment_methods.remove(tenant=tenant, actor=impersonated, method_id=method.id)):
        with pytest.raises(Forbidden, match="impersonating"):
            call()
    assert len(cards(customer)) == 1


def test_make_default_moves_the_badge(tenant, customer, actor):
    first, second = add_card(tenant, actor).method, add_card(tenant, actor).method
    payment_methods.make_default(tenant=tenant, actor=actor, method_id=second.id)
    assert [(m.id, m.is_default) for m in cards(customer)] == [(first.id, False), (second.id, True)]


def test_removing_the_default_promotes_another_and_detaches_it(tenant, customer, actor):
    first, second = add_card(tenant, actor).method, add_card(tenant, actor).method
    payment_methods.remove(tenant=tenant, actor=actor, method_id=first.id)
    assert [(m.id, m.is_default) for m in cards(customer)] == [(second.id, True)]
    assert first.external_id in SandboxPayments(tenant.id).ledger.detached


def test_the_last_card_stays_while_money_is_owed_or_paid_plans_run(tenant, customer, actor):
    method = add_card(tenant, actor).method
    subscription = factories.subscription(tenant, customer, factories.plan(tenant))
    with pytest.raises(InvalidInput, match="paid subscriptions running"):
        payment_methods.remove(tenant=tenant, actor=actor, method_id=method.id)
    add_card(tenant, actor)
    payment_methods.remove(tenant=tenant, actor=actor, method_id=method.id)  # another card is left
    factories.invoice(subscription)
    [last] = cards(customer)
    with pytest.raises(InvalidInput, match="open invoice"):
        payment_methods.remove(tenant=tenant, actor=actor, method_id=last.id)


def test_the_last_card_may_go_without_paid_plans(tenant, customer, actor):
    method = add_card(tenant, actor).method
    payment_methods.remove(tenant=tenant, actor=actor, method_id=method.id)
    assert cards(customer) == [] and not payment_methods.has_card(tenant, customer)
