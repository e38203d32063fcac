"""The billing run's invoicing: gathered per customer and currency, numbered gaplessly, taxed, balance applied,
and nothing made twice by a rerun, also after a crash half-way (RELIABILITY row 24)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from app.clock import now
from app.domain.billing import BalanceEntryKind, ChargeKind, InvoiceStatus
from app.domain.invoicing import REVERSE_CHARGE_NOTE
from app.extensions import db
from app.models import BalanceEntry, BillingSettings, Charge, EmailMessage, Invoice, InvoiceSequence
from app.services import balance, billing_run, invoicing
from tests import factories
from tests.querycount import count_queries
from tests.services.conftest import boot, complete_profile, count, place

_periods = iter(range(1, 10_000))


def charge(subscription, amount: int = 1000, *, currency: str = "EUR", start: datetime | None = None,
           kind: ChargeKind = ChargeKind.RENEWAL) -> Charge:
    start = start or now() - timedelta(days=next(_periods))  # a distinct period each: the unique key
    row = Charge(tenant_id=subscription.tenant_id, subscription_id=subscription.id, user_id=subscription.user_id,
                 kind=kind, description="Plan, month", amount_minor=amount, currency=currency, period_start=start,
                 period_end=start + timedelta(days=30), created_at=now())
    db.session.add(row)
    db.session.commit()
    return row


def settings(tenant, **values) -> BillingSettings:
    values = {"seller_name": "Nimbus GmbH", "seller_address": "Hauptstr. 1, Berlin", "seller_vat_id": "DE123456789",
              "seller_country": "DE", "tax_rates": {"DE": 1900, "FR": 2000, "*": 0}, "payment_terms_days": 14,
              **values}
    row = BillingSettings(tenant_id=tenant.id, **values)
    db.session.add(row)
    db.session.commit()
    return row


@pytest.fixture
def subscription(tenant, customer, clock):
    complete_profile(customer)
    return factories.subscription(tenant, customer, factories.plan(tenant))


def invoices(*where):
    return db.session.scalars(select(Invoice).where(*where).order_by(Invoice.id)).all()


def run(clock=None) -> str:
    db.session.commit()
    summary = invoicing.invoice_due(now())
    db.session.expire_all()
    return summary


def test_charges_are_gathered_per_customer_and_currency(tenant, customer, subscription):
    other = factories.user(tenant, email="olli@example.com")
    complete_profile(other)
    theirs = factories.subscription(tenant, other, factories.plan(tenant))
    first, second = charge(subscription, 1000), charge(subscription, 500)
    dollars = charge(subscription, 700, currency="USD")
    later = charge(subscription, 900, start=now() + timedelta(days=1))
    charge(theirs, 300)

    run()

    mine = invoices(Invoice.user_id == customer.id)
    assert [(i.currency, [line.id for line in i.lines]) for i in mine] == [
        ("EUR", [first.id, second.id]), ("USD", [dollars.id])]
    assert [i.subtotal_minor for i in mine] == [1500, 700]
    assert len(invoices(Invoice.user_id == other.id)) == 1
    db.session.refresh(later)
    assert later.invoice_id is None  # its period has not started


def test_numbers_are_gapless_per_tenant_and_year(tenant, other_tenant, customer, subscription, clock):
    elsewhere = factories.user(other_tenant, email="x@example.com")
    charge(factories.subscription(other_tenant, elsewhere, factories.plan(other_tenant)))
    settings(tenant, invoice_prefix="NIM")
    charge(subscription)
    run()
    charge(subscription)
    run()
    assert [i.number for i in invoices(Invoice.tenant_id == tenant.id)] == ["NIM-2026-000001", "NIM-2026-000002"]
    assert [i.number for i in invoices(Invoice.tenant_id == other_tenant.id)] == ["INV-2026-000001"]

    clock.set(datetime(2027, 1, 2, tzinfo=UTC))
    charge(subscription)
    run()
    assert invoices(Invoice.tenant_id == tenant.id)[-1].number == "NIM-2027-000001"
    assert db.session.get(InvoiceSequence, (tenant.id, 2026)).last_number == 2


def test_a_domestic_customer_pays_the_sellers_vat_on_the_net_sum(tenant, customer, subscription):
    settings(tenant)
    customer.profile.country = "DE"
    lines = [charge(subscription, 333), charge(subscription, 333), charge(subscription, 334)]
    run()
    [invoice] = invoices()
    assert (invoice.subtotal_minor, invoice.tax_minor, invoice.total_minor, invoice.tax_rate_bp) == (
        1000, 190, 1190, 1900)
    taxes = invoice.line_taxes  # the tax on the net, split over the lines when shown
    assert [taxes[line.id] for line in lines] == [63, 63, 64] and sum(taxes.values()) == 190
    assert (invoice.reverse_charge, invoice.tax_note) == (False, "")
    assert invoice.status is InvoiceStatus.OPEN and invoice.amount_due_minor == 1190
    assert invoice.due_at == invoice.finalized_at + timedelta(days=14) and invoice.next_attempt_at == now()
    assert invoice.seller["vat_id"] == "DE123456789" and invoice.bill_to["country"] == "DE"


def test_a_business_in_another_eu_country_is_reverse_charged(tenant, customer, subscription):
    settings(tenant)
    customer.profile.country, customer.profile.vat_id, customer.profile.company = "FR", "FR12345678901", "Acme SA"
    charge(subscription, 1000)
    run()
    [invoice] = invoices()
    assert (invoice.tax_minor, invoice.total_minor, invoice.reverse_charge, invoice.tax_note) == (
        0, 1000, True, REVERSE_CHARGE_NOTE)
    assert invoice.bill_to["vat_id"] == "FR12345678901" and invoice.bill_to["company"] == "Acme SA"


def test_a_consumer_elsewhere_pays_their_countrys_rate_or_the_default(tenant, customer, subscription):
    settings(tenant)
    customer.profile.country = "FR"
    charge(subscription, 1000)
    run()
    assert invoices()[0].tax_minor == 200


def test_the_customer_balance_is_applied_once(tenant, customer, subscription):
    db.session.add(BalanceEntry(tenant_id=tenant.id, user_id=customer.id, kind=BalanceEntryKind.ADJUSTMENT,
                                amount_minor=400, currency="EUR", created_at=now()))
    charge(subscription, 1000)
    run()
    [invoice] = invoices()
    assert (invoice.balance_applied_minor, invoice.amount_due_minor, invoice.status) == (400, 600, InvoiceStatus.OPEN)
    applied = db.session.scalars(select(BalanceEntry).where(BalanceEntry.kind == BalanceEntryKind.APPLIED)).all()
    assert [(e.amount_minor, e.invoice_id) for e in applied] == [(-400, invoice.id)]


def test_an_invoice_the_balance_pays_in_full_is_paid_and_not_collected(tenant, customer, subscription):
    db.session.add(BalanceEntry(tenant_id=tenant.id, user_id=customer.id, kind=BalanceEntryKind.ADJUSTMENT,
                                amount_minor=5000, currency="EUR", created_at=now()))
    charge(subscription, 1000)
    run()
    [invoice] = invoices()
    assert (invoice.status, invoice.amount_due_minor, invoice.next_attempt_at) == (InvoiceStatus.PAID, 0, None)


def test_credits_above_debits_go_to_the_balance(tenant, customer, subscription):
    charge(subscription, -900, kind=ChargeKind.PRORATION_CREDIT)
    charge(subscription, 300, kind=ChargeKind.PRORATION_DEBIT)
    run()
    [invoice] = invoices()
    assert (invoice.total_minor, invoice.amount_due_minor, invoice.status) == (-600, 0, InvoiceStatus.PAID)
    assert balance.balance_of(tenant, customer.id, "EUR") == 600


def test_the_customer_is_emailed_the_invoice(tenant, customer, subscription):
    charge(subscription, 1000)
    run()
    [invoice] = invoices()
    [message] = db.session.scalars(select(EmailMessage).where(EmailMessage.event == "invoice_issued")).all()
    assert invoice.number in message.subject
    assert "€10.00" in message.text_body and f"/billing/invoices/{invoice.id}" in message.text_body


def test_a_rerun_makes_nothing_twice(tenant, customer, subscription):
    charge(subscription)
    charge(subscription, currency="USD")
    first = run()
    assert "2 invoices finalized" in first
    assert "0 charges gathered, 0 invoices finalized" in run()
    assert len(invoices()) == 2 and count(EmailMessage, EmailMessage.event == "invoice_issued") == 2


class Crash(BaseException):
    """The process dies: nothing catches it."""


def test_a_crash_half_way_then_a_rerun_makes_nothing_twice_and_leaves_no_gap(tenant, customer, subscription,
                                                                            monkeypatch):
    customers = [customer] + [factories.user(tenant, email=f"c{n}@example.com") for n in range(4)]
    for person in customers:
        db.session.add(BalanceEntry(tenant_id=tenant.id, user_id=person.id, kind=BalanceEntryKind.ADJUSTMENT,
                                    amount_minor=100, currency="EUR", created_at=now()))
        charge(factories.subscription(tenant, person, factories.plan(tenant)), 1000)
    real_notify, calls = invoicing.notify_later, []

    def notify_then_crash(*args, **kwargs):  # once per batch (and tenant)
        calls.append(1)
        if len(calls) == 2:
            raise Crash()
        return real_notify(*args, **kwargs)

    monkeypatch.setattr(invoicing, "notify_later", notify_then_crash)
    monkeypatch.setattr(invoicing, "BATCH", 2)  # the crash comes in the second batch: the first is kept
    with pytest.raises(Crash):
        run()
    db.session.rollback()
    assert sorted(i.number for i in invoices(Invoice.status != InvoiceStatus.DRAFT)) == [
        "INV-2026-000001", "INV-2026-000002"]

    run()
    run()
    numbers = [i.number for i in invoices()]
    assert sorted(numbers) == [f"INV-2026-{n:06d}" for n in range(1, 6)]
    assert count(BalanceEntry, BalanceEntry.kind == BalanceEntryKind.APPLIED) == 5
    assert count(EmailMessage, EmailMessage.event == "invoice_issued") == 5
    assert count(Charge, Charge.invoice_id.is_(None)) == 0


def test_one_failing_invoice_does_not_hold_up_the_others(tenant, customer, subscription, monkeypatch):
    other = factories.user(tenant, email="olli@example.com")
    charge(subscription)
    charge(factories.subscription(tenant, other, factories.plan(tenant)))
    real_bill_to = invoicing.bill_to

    def refuse_one(person, profile):
        if person.id == customer.id:
            raise RuntimeError("boom")
        return real_bill_to(person, profile)

    monkeypatch.setattr(invoicing, "bill_to", refuse_one)
    assert "1 failed" in run()
    assert [i.user_id for i in invoices(Invoice.status == InvoiceStatus.OPEN)] == [other.id]
    monkeypatch.setattr(invoicing, "bill_to", real_bill_to)
    run()
    assert [i.number for i in invoices()] == ["INV-2026-000002", "INV-2026-000001"]


def test_a_paid_subscription_is_invoiced_and_charged_as_soon_as_it_is_delivered(active_subscription, customer):
    [invoice] = invoices(Invoice.user_id == customer.id)
    assert invoice.total_minor == active_subscription.price_minor
    assert invoice.status is InvoiceStatus.PAID and invoice.amount_due_minor == 0  # the card saved before ordering


def test_free_plans_are_never_invoiced(tenant, customer, profile, sandbox, clock):
    subscription = place(tenant, customer, factories.plan(tenant, price_minor=0))
    boot(clock)
    db.session.refresh(subscription)
    assert subscription.status.value == "active"
    billing_run.run()
    assert invoices() == [] and count(Charge) == 0


def test_the_billing_run_includes_invoicing(tenant, customer, subscription):
    charge(subscription)
    db.session.commit()
    assert "invoicing: 1 charges gathered, 1 invoices finalized" in billing_run.run()


def test_a_run_reads_what_is_due_not_what_was_billed_before(app, tenant, customer, subscription):
    charge(subscription)
    run()
    with count_queries(app) as idle:
        run()
    for _ in range(10):
        charge(subscription)
        run()
    with count_queries(app) as later_idle:
        run()
    assert len(later_idle.statements) == len(idle.statements) == 2, later_idle.statements  # what is due; drafts
