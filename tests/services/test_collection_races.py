"""Real races on PostgreSQL: many "Pay now" requests for one invoice at once, with the billing run among them,
charge it once (RELIABILITY rows 21-24 for payments). Built like tests/services/test_races.py: its own app and
committed rows in a tenant of its own, deleted at the end."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from app.clock import now
from app.domain.billing import InvoiceStatus, PaymentStatus
from app.extensions import db
from app.models import Invoice, Payment, Subscription, Tenant, User
from app.sandbox import payments as sandbox_payments
from app.sandbox.payments import SandboxPayments
from app.services import collection
from app.services.actors import Actor
from app.services.errors import Conflict
from tests import factories
from tests.services.cards import save_card
from tests.services.test_races import World, at_once, pytestmark, race_app, world  # noqa: F401  (fixtures)

REQUESTS_AT_ONCE = 8


@pytest.fixture
def invoice_id(race_app: Flask, world: World) -> Iterator[int]:  # noqa: F811
    sandbox_payments.reset()
    with race_app.app_context():
        tenant = db.session.get(Tenant, world.tenant_id)
        customer = db.session.get(User, world.user_id)
        plan = factories.plan(tenant)
        subscription = factories.subscription(tenant, customer, plan)
        save_card(tenant, customer)
        invoice = factories.invoice(db.session.get(Subscription, subscription.id), next_attempt_at=now())
        yield invoice.id
    sandbox_payments.reset()


def pay_or_run(world: World, invoice_id: int, index: int) -> Any:  # noqa: F811
    tenant = db.session.get(Tenant, world.tenant_id)
    try:
        if index == 0:
            return ("run", collection.collect_due(now()))
        customer = db.session.get(User, world.user_id)
        payment = collection.pay_invoice(tenant=tenant, actor=Actor(customer), invoice_id=invoice_id)
        return ("paid", payment.id, payment.status.value)
    except Conflict as error:
        return ("conflict", error.message)


def test_pay_now_at_once_with_the_billing_run_charges_once(race_app, world, invoice_id):  # noqa: F811
    results = at_once(race_app, REQUESTS_AT_ONCE, lambda index: pay_or_run(world, invoice_id, index))
    with race_app.app_context():
        payments = db.session.scalars(select(Payment).where(Payment.invoice_id == invoice_id)).all()
        assert [p.status for p in payments] == [PaymentStatus.SUCCEEDED], results
        assert db.session.get(Invoice, invoice_id).status is InvoiceStatus.PAID
    assert len(SandboxPayments(world.tenant_id).succeeded_charges) == 1, results
    for result in results:
        assert result[0] in ("run", "paid", "conflict"), result
        if result[0] == "conflict":
            assert "already paid" in result[1] or "changed in the meantime" in result[1]
