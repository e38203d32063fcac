"""The tenant admin's invoices: the filtered list, one invoice, and a credit note issued from its page."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.domain.accounts import Role
from app.domain.billing import InvoiceStatus, PaymentStatus, PaymentTrigger
from app.extensions import db
from app.models import CreditNote, Invoice, Payment
from app.providers.payments.base import PaymentError, PaymentErrorKind
from app.sandbox.payments import SandboxPayments, ledger
from tests import factories
from tests.helpers import post_form
from tests.querycount import count_queries


@pytest.fixture
def as_admin(client, auth, admin):
    auth.login(admin.email)
    return admin


@pytest.fixture
def subscription(tenant, customer, clock):
    return factories.subscription(tenant, customer, factories.plan(tenant))


def invoice_of(subscription, number: str, **values) -> Invoice:
    return factories.invoice(subscription, number=number, **values)


def test_the_list_shows_the_tenants_invoices_newest_first(app, client, as_admin, tenant, other_tenant,
                                                          subscription, clock):
    older = invoice_of(subscription, "INV-2026-000001")
    clock.advance(seconds=60)
    newer = invoice_of(factories.subscription(tenant, subscription.user, factories.plan(tenant)), "INV-2026-000002")
    stranger = factories.user(other_tenant)
    invoice_of(factories.subscription(other_tenant, stranger, factories.plan(other_tenant)), "OTH-2026-000001")
    client.get("/admin/invoices")
    with count_queries(app) as log:
        page = client.get("/admin/invoices").get_data(as_text=True)
    assert page.index(newer.number) < page.index(older.number)
    assert "OTH-2026" not in page and 'aria-current="page">Invoices<' in page
    for n in range(5):
        invoice_of(factories.subscription(tenant, subscription.user, factories.plan(tenant)), f"INV-2026-00010{n}")
    with count_queries(app) as more:
        client.get("/admin/invoices")
    assert more.count == log.count, more.statements


def test_filters_keep_status_email_number_and_month(client, as_admin, tenant, customer, subscription, clock):
    invoice_of(subscription, "INV-2026-000001")
    other = factories.user(tenant, email="olli@example.com")
    invoice_of(factories.subscription(tenant, other, factories.plan(tenant)), "INV-2026-000002",
               status=InvoiceStatus.PAID)
    clock.advance(days=40)
    invoice_of(factories.subscription(tenant, other, factories.plan(tenant)), "INV-2026-000003")

    def shown(query: str) -> list[str]:
        page = client.get(f"/admin/invoices?{query}").get_data(as_text=True)
        return [n for n in ("INV-2026-000001", "INV-2026-000002", "INV-2026-000003") if n in page]

    assert shown("status=paid") == ["INV-2026-000002"]
    assert shown("email=olli") == ["INV-2026-000002", "INV-2026-000003"]
    assert shown("number=000003") == ["INV-2026-000003"]
    assert shown("month=2026-03") == ["INV-2026-000001", "INV-2026-000002"]
    assert shown("month=2026-04") == ["INV-2026-000003"]
    assert shown("status=nonsense&month=99-99&page=-3&number=%25") == []  # ignored where nonsense, nothing fails
    assert client.get("/admin/invoices?status=nonsense&month=2026-13").status_code == 200


def test_an_invoice_shows_its_lines_totals_payments_and_credit_notes(client, as_admin, subscription):
    invoice = invoice_of(subscription, "INV-2026-000009", tax_note="Reverse charge: VAT to be accounted for",
                         bill_to={"name": "Casey", "company": "Casey SA", "address": "Rue 1", "postal_code": "75001",
                                  "city": "Paris", "country": "FR", "vat_id": "FR12345678901",
                                  "email": "b@example.com"})
    page = client.get(f"/admin/invoices/{invoice.id}").get_data(as_text=True)
    for text in ("INV-2026-000009", "Casey SA", "FR12345678901", "Plan, month", "€9.90", "Reverse charge",
                 f"/admin/invoices/{invoice.id}.pdf", "Issue credit note", "No payment tried yet."):
        assert text in page, text


def test_a_credit_note_is_issued_from_the_invoice_page(client, as_admin, subscription):
    invoice = invoice_of(subscription, "INV-2026-000009")
    response = post_form(client, f"/admin/invoices/{invoice.id}/credit-notes",
                         {"amount": "2.50", "reason": "duplicate", "method": "balance", "memo": "Sorry"})
    assert response.status_code == 303
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Credit note INV-2026-000009-CN01 is issued." in page and "Duplicate charge" in page
    db.session.expire_all()
    assert db.session.get(Invoice, invoice.id).amount_due_minor == 740


@pytest.mark.parametrize(("data", "message"), [
    ({"amount": "abc"}, "Enter an amount like 12.50"),
    ({"amount": "0"}, "Enter an amount above zero."),
    ({"amount": "100"}, "more than is left"),
    ({"amount": "1", "method": "refund"}, "still has an amount due"),
    ({"amount": "1", "reason": "whim"}, "Not a valid choice"),
    ({"amount": "1.234"}, "at most 2 decimals"),
])
def test_a_credit_note_that_does_not_fit_is_refused_with_why(client, as_admin, subscription, data, message):
    invoice = invoice_of(subscription, "INV-2026-000009")
    response = post_form(client, f"/admin/invoices/{invoice.id}/credit-notes",
                         {"reason": "duplicate", "method": "balance", **data})
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert db.session.scalars(select(CreditNote)).all() == []


def test_a_credit_note_without_the_csrf_token_is_refused(client, as_admin, subscription):
    invoice = invoice_of(subscription, "INV-2026-000009")
    client.get("/admin/invoices")
    response = client.post(f"/admin/invoices/{invoice.id}/credit-notes",
                           data={"amount": "1", "reason": "duplicate", "method": "balance"})
    assert response.status_code == 400
    assert db.session.scalars(select(CreditNote)).all() == []


def test_another_tenants_invoice_is_not_found(client, as_admin, other_tenant):
    stranger = factories.user(other_tenant)
    theirs = invoice_of(factories.subscription(other_tenant, stranger, factories.plan(other_tenant)), "OTH-1")
    assert client.get(f"/admin/invoices/{theirs.id}").status_code == 404
    assert post_form(client, f"/admin/invoices/{theirs.id}/credit-notes",
                     {"amount": "1", "reason": "duplicate", "method": "balance"}).status_code == 404
    assert client.get("/admin/invoices/999999").status_code == 404


@pytest.mark.parametrize("role", [Role.CUSTOMER, Role.SUPPORT])
def test_customers_and_support_cannot_see_or_credit_invoices(client, auth, tenant, subscription, role):
    invoice = invoice_of(subscription, "INV-2026-000009")
    person = factories.user(tenant, role=role)
    auth.login(person.email)
    for response in (client.get("/admin/invoices"), client.get(f"/admin/invoices/{invoice.id}"),
                     post_form(client, f"/admin/invoices/{invoice.id}/credit-notes",
                               {"amount": "1", "reason": "duplicate", "method": "balance"})):
        assert response.status_code in (403, 404)
    assert db.session.scalars(select(CreditNote)).all() == []


def test_a_draft_shows_no_credit_note_form(client, as_admin, subscription):
    draft = factories.invoice(subscription, status=InvoiceStatus.DRAFT)
    page = client.get(f"/admin/invoices/{draft.id}").get_data(as_text=True)
    assert "Draft invoice" in page and "Issue credit note" not in page


def test_a_refund_the_provider_refuses_is_kept_and_tried_again_once(client, as_admin, tenant, subscription,
                                                                    monkeypatch):
    invoice = invoice_of(subscription, "INV-2026-000009", status=InvoiceStatus.PAID, amount_paid_minor=990)
    invoice.amount_due_minor = 0
    db.session.add(Payment(tenant_id=tenant.id, invoice_id=invoice.id, user_id=invoice.user_id, attempt=1,
                           trigger=PaymentTrigger.AUTOMATIC, provider="sandbox", external_id="pi_test9",
                           idempotency_key="pay-9", amount_minor=990, currency="EUR",
                           status=PaymentStatus.SUCCEEDED, created_at=invoice.created_at))
    db.session.commit()
    real_refund = SandboxPayments.refund

    def unavailable(self, **kwargs):
        raise PaymentError(PaymentErrorKind.TRANSIENT, "The provider did not answer.")

    monkeypatch.setattr(SandboxPayments, "refund", unavailable)
    response = post_form(client, f"/admin/invoices/{invoice.id}/credit-notes",
                         {"amount": "9.90", "reason": "other", "method": "refund"})
    assert response.status_code == 303
    assert "is issued, but the refund failed" in client.get(response.headers["Location"]).get_data(as_text=True)
    [note] = db.session.scalars(select(CreditNote)).all()
    assert note.refund_external_id is None
    assert "not confirmed" in client.get(f"/admin/invoices/{invoice.id}").get_data(as_text=True)

    monkeypatch.setattr(SandboxPayments, "refund", real_refund)
    response = post_form(client, f"/admin/invoices/{invoice.id}/credit-notes/{note.id}/refund")
    assert response.status_code == 303
    assert "is confirmed" in client.get(response.headers["Location"]).get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(CreditNote, note.id).refund_external_id
    assert list(ledger(tenant.id).refunds) == [f"credit-note-{note.id}"]
