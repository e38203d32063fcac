"""Credit notes: numbered per invoice, first reducing what is due, the rest to the balance or refunded once;
and the customer balance an admin adjusts."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.clock import now
from app.domain.accounts import Role
from app.domain.billing import (
    BalanceEntryKind,
    CreditNoteMethod,
    CreditNoteReason,
    InvoiceStatus,
    PaymentStatus,
    PaymentTrigger,
)
from app.extensions import db
from app.models import BalanceEntry, CreditNote, EmailMessage, Invoice, Payment
from app.sandbox.payments import ledger
from app.services import balance, credit_notes
from app.services.actors import Actor
from app.services.errors import Forbidden, InvalidInput, NotFound
from tests import factories

BALANCE, REFUND = CreditNoteMethod.BALANCE, CreditNoteMethod.REFUND


@pytest.fixture
def subscription(tenant, customer, clock):
    return factories.subscription(tenant, customer, factories.plan(tenant), price_minor=1190)


def taxed(invoice):
    """19 % of 1000 in its 1190."""
    invoice.subtotal_minor, invoice.tax_minor = 1000, 190
    db.session.commit()
    return invoice


@pytest.fixture
def open_invoice(subscription):
    return taxed(factories.invoice(subscription, number="INV-2026-000007"))


@pytest.fixture
def paid_invoice(tenant, subscription):
    invoice = taxed(factories.invoice(subscription, status=InvoiceStatus.PAID, number="INV-2026-000008",
                                      amount_paid_minor=1190))
    invoice.amount_due_minor = 0
    db.session.add(Payment(tenant_id=tenant.id, invoice_id=invoice.id, user_id=invoice.user_id, attempt=1,
                           trigger=PaymentTrigger.AUTOMATIC, provider="sandbox", external_id="pi_test1",
                           idempotency_key=f"invoice-{invoice.id}-1", amount_minor=1190, currency="EUR",
                           status=PaymentStatus.SUCCEEDED, created_at=now()))
    db.session.commit()
    return invoice


def issue(tenant, admin, invoice, amount, method=BALANCE, **values):
    return credit_notes.issue(tenant=tenant, actor=Actor(admin), invoice_id=invoice.id, amount_minor=amount,
                              reason=values.pop("reason", CreditNoteReason.DUPLICATE), method=method,
                              memo=values.pop("memo", ""))


def reloaded(invoice) -> Invoice:
    db.session.expire_all()
    return db.session.get(Invoice, invoice.id)


def test_a_credit_note_on_an_open_invoice_reduces_what_is_due(tenant, admin, customer, open_invoice):
    note = issue(tenant, admin, open_invoice, 500, memo="Sorry")
    assert (note.number, note.total_minor, note.subtotal_minor + note.tax_minor) == ("INV-2026-000007-CN01", 500, 500)
    assert note.tax_minor == 80  # 500 x 190 / 1190, rounded
    invoice = reloaded(open_invoice)
    assert (invoice.amount_due_minor, invoice.credited_minor, invoice.status) == (690, 500, InvoiceStatus.OPEN)
    assert balance.balance_of(tenant, customer.id, "EUR") == 0  # nothing was paid: nothing to give back

    second = issue(tenant, admin, open_invoice, 690)
    assert second.number == "INV-2026-000007-CN02"
    invoice = reloaded(open_invoice)
    assert (invoice.amount_due_minor, invoice.status, invoice.next_attempt_at) == (0, InvoiceStatus.VOID, None)


def test_an_open_invoice_part_paid_by_the_balance_is_paid_when_credited_in_full(tenant, admin, customer, subscription):
    invoice = factories.invoice(subscription, balance_applied_minor=190)
    invoice.amount_due_minor = 1000
    issue(tenant, admin, invoice, 1190)
    invoice = reloaded(invoice)
    assert (invoice.status, invoice.amount_due_minor) == (InvoiceStatus.PAID, 0)
    assert balance.balance_of(tenant, customer.id, "EUR") == 190  # what the balance paid goes back to it


def test_a_credit_note_on_a_paid_invoice_goes_to_the_balance(tenant, admin, customer, paid_invoice):
    note = issue(tenant, admin, paid_invoice, 300)
    [entry] = db.session.scalars(select(BalanceEntry)).all()
    assert (entry.kind, entry.amount_minor, entry.credit_note_id) == (BalanceEntryKind.CREDIT_NOTE, 300, note.id)
    assert balance.balance_of(tenant, customer.id, "EUR") == 300


def test_a_refund_goes_back_to_the_card_once(tenant, admin, paid_invoice):
    note = issue(tenant, admin, paid_invoice, 400, REFUND)
    refunds = ledger(tenant.id).refunds
    assert refunds[f"credit-note-{note.id}"].amount_minor == 400
    assert note.refund_external_id == refunds[f"credit-note-{note.id}"].external_id
    again = credit_notes.retry_refund(tenant=tenant, actor=Actor(admin), credit_note_id=note.id)
    assert again.refund_external_id == note.refund_external_id and len(refunds) == 1
    assert db.session.scalars(select(BalanceEntry)).all() == []

    issue(tenant, admin, paid_invoice, 790, REFUND)
    with pytest.raises(InvalidInput, match="Nothing is left"):
        issue(tenant, admin, paid_invoice, 1)


def credit_note_emails():
    return db.session.scalars(select(EmailMessage).where(EmailMessage.event == "credit_note_issued")
                              .order_by(EmailMessage.id)).all()


def test_the_customer_is_emailed_a_credit_note_that_reduces_what_is_due(tenant, admin, customer, open_invoice):
    issue(tenant, admin, open_invoice, 500, memo="Sorry for the outage")
    [email] = credit_note_emails()
    number = open_invoice.number
    assert (email.user_id, email.subject) == (customer.id, f"Credit note {number}-CN01 for invoice {number}")
    assert "Sorry for the outage" in email.text_body
    assert "reduces what is due on the invoice by €5.00; €6.90 is still due" in email.text_body


def test_the_customer_is_told_where_the_money_of_a_credit_note_goes(tenant, admin, customer, paid_invoice):
    issue(tenant, admin, paid_invoice, 300)
    issue(tenant, admin, paid_invoice, 200, REFUND)
    to_balance, refunded = credit_note_emails()
    assert to_balance.subject == f"Credit note {paid_invoice.number}-CN01 for invoice {paid_invoice.number}"
    assert "€3.00 goes to your balance" in to_balance.text_body and "refund" not in to_balance.text_body
    assert "€2.00 is refunded to the card" in refunded.text_body


def test_only_what_the_card_paid_is_refunded(tenant, admin, paid_invoice):
    paid_invoice.balance_applied_minor, paid_invoice.amount_paid_minor = 500, 690
    db.session.scalar(select(Payment)).amount_minor = 690
    db.session.commit()
    with pytest.raises(InvalidInput, match="paid by card"):
        issue(tenant, admin, paid_invoice, 691, REFUND)
    issue(tenant, admin, paid_invoice, 690, REFUND)
    issue(tenant, admin, paid_invoice, 500)  # what the balance paid goes back to the balance


def test_an_open_invoice_is_not_refunded(tenant, admin, open_invoice):
    with pytest.raises(InvalidInput, match="amount due"):
        issue(tenant, admin, open_invoice, 100, REFUND)


@pytest.mark.parametrize("amount", [0, -5, 1191, True])
def test_the_amount_is_above_zero_and_at_most_what_is_left(tenant, admin, open_invoice, amount):
    with pytest.raises(InvalidInput):
        issue(tenant, admin, open_invoice, amount)
    assert db.session.scalars(select(CreditNote)).all() == []


def test_bad_reason_method_and_memo_are_refused(tenant, admin, open_invoice):
    with pytest.raises(InvalidInput):
        issue(tenant, admin, open_invoice, 1, reason="because")
    with pytest.raises(InvalidInput):
        issue(tenant, admin, open_invoice, 1, method="cash")
    with pytest.raises(InvalidInput):
        issue(tenant, admin, open_invoice, 1, memo="x" * 501)


def test_only_the_tenants_admins_credit_the_tenants_finalized_invoices(tenant, other_tenant, admin, customer,
                                                                       support, subscription, open_invoice):
    for person in (customer, support):
        with pytest.raises(Forbidden):
            issue(tenant, person, open_invoice, 100)
    with pytest.raises(Forbidden):
        credit_notes.issue(tenant=tenant, actor=Actor(customer, impersonator=support), invoice_id=open_invoice.id,
                           amount_minor=100, reason="other", method="balance")
    stranger = factories.user(other_tenant, role=Role.TENANT_ADMIN)
    with pytest.raises(NotFound):
        issue(other_tenant, stranger, open_invoice, 100)
    draft = factories.invoice(factories.subscription(tenant, customer, factories.plan(tenant)),
                              status=InvoiceStatus.DRAFT)
    with pytest.raises(NotFound):
        issue(tenant, admin, draft, 100)


def test_an_admin_adjusts_the_balance_never_below_zero(tenant, admin, customer, support, other_tenant, clock):
    entry = balance.adjust(tenant=tenant, actor=Actor(admin), user_id=customer.id, amount_minor=500, currency="EUR",
                           reason="  Goodwill  ")
    assert (entry.kind, entry.description, entry.created_by_id) == (BalanceEntryKind.ADJUSTMENT, "Goodwill", admin.id)
    balance.adjust(tenant=tenant, actor=Actor(admin), user_id=customer.id, amount_minor=-200, currency="EUR",
                   reason="Typo")
    assert balance.balance_of(tenant, customer.id, "EUR") == 300
    with pytest.raises(InvalidInput):
        balance.adjust(tenant=tenant, actor=Actor(admin), user_id=customer.id, amount_minor=-301, currency="EUR",
                       reason="Too much")
    with pytest.raises(InvalidInput):
        balance.adjust(tenant=tenant, actor=Actor(admin), user_id=customer.id, amount_minor=5, currency="EUR",
                       reason=" ")
    with pytest.raises(Forbidden):
        balance.adjust(tenant=tenant, actor=Actor(support), user_id=customer.id, amount_minor=5, currency="EUR",
                       reason="Me")
    stranger = factories.user(other_tenant, role=Role.TENANT_ADMIN)
    with pytest.raises(NotFound):
        balance.adjust(tenant=other_tenant, actor=Actor(stranger), user_id=customer.id, amount_minor=5,
                       currency="EUR", reason="Not mine")
