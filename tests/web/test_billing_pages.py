"""What customers see of billing: the overview, the printable invoice and its PDF; the admin's PDF; the next
charge on the subscription pages."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from flask import current_app

from app.clock import now
from app.domain.accounts import Role
from app.domain.billing import BalanceEntryKind, CreditNoteMethod, CreditNoteReason, InvoiceStatus
from app.domain.subscriptions import SubscriptionStatus
from app.extensions import db
from app.models import BalanceEntry, CreditNote, Invoice
from tests import factories
from tests.helpers import complete_profile, post_form
from tests.querycount import count_queries


@pytest.fixture
def logged_in(client, customer, auth):  # type: ignore[no-untyped-def]
    """The customer, with a complete billing profile and no card yet (each test saves the cards it shows)."""
    complete_profile(customer, card=False)
    auth.login(customer.email)
    return customer


@pytest.fixture
def plan(tenant):  # type: ignore[no-untyped-def]
    return factories.plan(tenant, name="Cloud S")


@pytest.fixture
def subscription(tenant, logged_in, plan, clock):  # type: ignore[no-untyped-def]
    return factories.subscription(tenant, logged_in, plan)


def issued(subscription, *, status=InvoiceStatus.OPEN, at: datetime | None = None, **values) -> Invoice:  # type: ignore[no-untyped-def]
    """An invoice finalized at `at` (default: now); the clock moves on a minute (one charge per period start)."""
    amounts = {name: values.pop(name) for name in list(values) if name.endswith("_minor")}
    row = factories.invoice(subscription, status=status, **values)
    for name, amount in amounts.items():  # the factory bills the plan's price: these override its totals
        setattr(row, name, amount)
    if "total_minor" in amounts and "amount_due_minor" not in amounts:
        row.amount_due_minor = amounts["total_minor"]
    current_app.extensions["clock"].advance(seconds=60)
    if at is not None:
        row.created_at = row.finalized_at = row.due_at = at
    if status is InvoiceStatus.PAID:
        row.amount_paid_minor, row.amount_due_minor, row.paid_at = row.total_minor, 0, row.finalized_at
    db.session.commit()
    return row


def text_of(page: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))


# --- the overview -----------------------------------------------------------------------------------------


def test_the_overview_lists_the_customers_invoices_newest_first_without_drafts(client, subscription, clock):
    older = issued(subscription, status=InvoiceStatus.PAID, at=now() - timedelta(days=40), number="INV-2026-000001")
    void = issued(subscription, status=InvoiceStatus.VOID, number="INV-2026-000002")
    newest = issued(subscription, at=now() + timedelta(minutes=1), number="INV-2026-000003")
    issued(subscription, status=InvoiceStatus.DRAFT)

    page = client.get("/billing").get_data(as_text=True)

    assert re.findall(r"INV-2026-\d{6}", page) == ["INV-2026-000003", "INV-2026-000002",
                                                                      "INV-2026-000001"]
    assert "Draft" not in page
    assert f'href="/billing/invoices/{newest.id}"' in page and f'href="/billing/invoices/{older.id}.pdf"' in page
    # Pay now only where something is due.
    assert page.count("Pay now") == 1
    assert f'action="/billing/invoices/{newest.id}/pay"' in page
    assert f"/billing/invoices/{void.id}/pay" not in page
    assert 'name="csrf_token"' in page
    assert "badge-invoice-paid" in page and "badge-invoice-void" in page and "badge-invoice-open" in page


def test_the_spend_chart_sums_billed_invoices_per_month(client, subscription, clock):
    # The clock stands at 15 Mar 2026: the chart runs from Apr 2025 to Mar 2026.
    issued(subscription, status=InvoiceStatus.PAID, at=datetime(2026, 1, 3, tzinfo=UTC), total_minor=1000)
    issued(subscription, at=datetime(2026, 1, 20, tzinfo=UTC), total_minor=250)
    issued(subscription, status=InvoiceStatus.PAID, at=datetime(2026, 3, 1, tzinfo=UTC), total_minor=990)
    issued(subscription, status=InvoiceStatus.VOID, at=datetime(2026, 3, 2, tzinfo=UTC), total_minor=5000)
    issued(subscription, status=InvoiceStatus.PAID, at=datetime(2025, 3, 31, tzinfo=UTC), total_minor=7000)

    page = client.get("/billing").get_data(as_text=True)
    rows = dict(re.findall(r'<tr><th scope="row">([A-Z][a-z]{2} \d{4})</th><td class="num">([^<]+)</td></tr>', page))

    assert list(rows) == ["Apr 2025", "May 2025", "Jun 2025", "Jul 2025", "Aug 2025", "Sep 2025", "Oct 2025",
                          "Nov 2025", "Dec 2025", "Jan 2026", "Feb 2026", "Mar 2026"]
    assert rows["Jan 2026"] == "€12.50" and rows["Mar 2026"] == "€9.90" and rows["Feb 2026"] == "€0.00"
    assert "<svg" in page and 'class="chart-bar"' in page


def test_the_overview_shows_the_balance_and_the_default_card(client, tenant, logged_in, subscription, clock):
    issued(subscription)
    for amount in (1500, -500):
        db.session.add(BalanceEntry(tenant_id=tenant.id, user_id=logged_in.id, kind=BalanceEntryKind.ADJUSTMENT,
                                    amount_minor=amount, currency="EUR", created_at=now()))
    factories.payment_method(tenant, logged_in, last4="1881", default=False)
    factories.payment_method(tenant, logged_in, brand="mastercard", last4="4444", exp_month=3, exp_year=2029)
    db.session.commit()

    page = text_of(client.get("/billing").get_data(as_text=True))

    assert "€10.00 in your favour" in page
    assert "Mastercard ending in 4444 expires 03/2029" in page and "1881" not in page
    assert "Manage payment methods" in page


def test_a_customer_without_invoices_is_told_when_the_first_comes(client, logged_in, clock):
    page = text_of(client.get("/billing").get_data(as_text=True))

    assert "No invoices yet" in page and "Your first invoice comes when your first paid plan starts" in page
    assert "No card saved yet" in page and "Balance" not in page and "<svg" not in page


def test_the_overview_runs_three_statements_for_5_invoices_and_for_50(app, client, tenant, logged_in, subscription,
                                                                       clock):
    factories.payment_method(tenant, logged_in)
    for n in range(5):
        issued(subscription, at=now() - timedelta(days=n * 20))
    client.get("/billing")
    with count_queries(app) as few:
        page = client.get("/billing").get_data(as_text=True)
    assert page.count("Pay now") == 5
    for n in range(45):
        issued(subscription, at=now() - timedelta(days=n * 7))
    with count_queries(app) as many:
        page = client.get("/billing").get_data(as_text=True)
    assert page.count("Pay now") == 50
    assert many.count == few.count == 3, many.statements  # the session's user, the list, the summary


def test_billing_is_in_the_customers_navigation(client, logged_in, clock):
    assert 'href="/billing"' in client.get("/subscriptions/").get_data(as_text=True)


# --- the printable invoice ------------------------------------------------------------------------------------


@pytest.fixture
def full_invoice(tenant, logged_in, subscription):  # type: ignore[no-untyped-def]
    invoice = issued(subscription, number="INV-2026-000042", subtotal_minor=990, tax_minor=0, total_minor=990,
                     balance_applied_minor=200, amount_due_minor=790, tax_rate_bp=0, tax_country="AT",
                     reverse_charge=True, tax_note="Reverse charge: the recipient accounts for the VAT.",
                     seller={"name": "Nimbus Hosting GmbH", "address": ["Hauptstraße 1", "10115 Berlin"],
                             "country": "DE", "vat_id": "DE123456789"},
                     bill_to={"name": "Zoë Łukasiewicz", "address": "Ring 5\n1010 Wien", "country": "AT",
                              "vat_id": "ATU12345678"})
    db.session.add(CreditNote(tenant_id=tenant.id, invoice_id=invoice.id, user_id=logged_in.id, sequence=1,
                              number="INV-2026-000042-CN01", reason=CreditNoteReason.DUPLICATE, memo="",
                              method=CreditNoteMethod.BALANCE, subtotal_minor=100, tax_minor=0, total_minor=100,
                              currency="EUR", created_at=now()))
    db.session.commit()
    return invoice


def test_the_printable_invoice_shows_the_whole_document(client, full_invoice):
    response = client.get(f"/billing/invoices/{full_invoice.id}")
    page = text_of(response.get_data(as_text=True))

    assert response.status_code == 200
    assert "Invoice INV-2026-000042" in page and "Open" in page
    assert "Nimbus Hosting GmbH Hauptstraße 1 10115 Berlin Germany VAT ID DE123456789" in page
    assert "Zoë Łukasiewicz Ring 5 1010 Wien Austria VAT ID ATU12345678" in page
    assert "Plan, month 15 Mar 2026 \u2013 14 Apr 2026 1 €9.90 0 % €0.00 €9.90" in page
    assert "Net €9.90" in page and "Total €9.90" in page
    assert "Customer balance applied -€2.00" in page and "Amount due €7.90" in page
    assert "Reverse charge: the recipient accounts for the VAT." in page
    assert "INV-2026-000042-CN01" in page and "Duplicate charge" in page
    assert f'href="/billing/invoices/{full_invoice.id}.pdf"' in page or ".pdf" in response.get_data(as_text=True)
    assert "style=" not in response.get_data(as_text=True) and "<script>" not in response.get_data(as_text=True)


def test_the_invoice_pdf_is_a_download_with_the_same_content(client, full_invoice):
    response = client.get(f"/billing/invoices/{full_invoice.id}.pdf")

    assert response.status_code == 200 and response.mimetype == "application/pdf"
    assert response.headers["Content-Disposition"] == 'attachment; filename="INV-2026-000042.pdf"'
    body = response.get_data()
    assert body.startswith(b"%PDF")
    for text in (b"INV-2026-000042", b"Nimbus Hosting GmbH", b"EUR 7.90", b"Reverse charge", b"CN01"):
        assert text in body, text
    assert "Zoë Lukasiewicz".encode("latin-1") in body  # Ł has no Latin-1 form: spelled without its stroke


@pytest.mark.parametrize("suffix", ["", ".pdf"])
def test_only_the_owner_sees_an_invoice(client, tenant, other_tenant, plan, logged_in, subscription, suffix, auth):
    draft = issued(subscription, status=InvoiceStatus.DRAFT)
    stranger = factories.user(tenant)
    theirs = issued(factories.subscription(tenant, stranger, plan))
    elsewhere_user = factories.user(other_tenant)
    elsewhere = issued(factories.subscription(other_tenant, elsewhere_user, factories.plan(other_tenant)))

    for invoice in (draft, theirs, elsewhere):
        assert client.get(f"/billing/invoices/{invoice.id}{suffix}").status_code == 404
    assert client.get(f"/billing/invoices/999999{suffix}").status_code == 404


def test_support_impersonating_the_customer_may_view_an_invoice(client, tenant, customer, support, auth, clock):
    invoice = issued(factories.subscription(tenant, customer, factories.plan(tenant)))
    auth.login(support.email)
    assert post_form(client, f"/support/customers/{customer.id}/impersonate",
                     {"reason": "Ticket #1: invoice question"}).status_code in (302, 303)
    assert client.get(f"/billing/invoices/{invoice.id}").status_code == 200


def test_a_tenant_admin_downloads_any_invoice_of_the_tenant_as_pdf(client, tenant, other_tenant, customer, auth,
                                                                  clock):
    admin = factories.user(tenant, role=Role.TENANT_ADMIN)
    invoice = issued(factories.subscription(tenant, customer, factories.plan(tenant)), number="INV-2026-000777")
    draft = issued(factories.subscription(tenant, customer, factories.plan(tenant)), status=InvoiceStatus.DRAFT)
    elsewhere = issued(factories.subscription(other_tenant, factories.user(other_tenant),
                                              factories.plan(other_tenant)))
    auth.login(admin.email)

    response = client.get(f"/admin/invoices/{invoice.id}.pdf")
    assert response.status_code == 200 and b"INV-2026-000777" in response.get_data()
    assert response.headers["Content-Disposition"] == 'attachment; filename="INV-2026-000777.pdf"'
    drafted = client.get(f"/admin/invoices/{draft.id}.pdf")
    assert drafted.status_code == 200 and b"Draft invoice" in drafted.get_data()
    assert client.get(f"/admin/invoices/{elsewhere.id}.pdf").status_code == 404


def test_a_customer_cannot_use_the_admins_pdf(client, logged_in, subscription):
    invoice = issued(subscription)
    assert client.get(f"/admin/invoices/{invoice.id}.pdf").status_code in (302, 403, 404)


# --- the next charge -----------------------------------------------------------------------------------------


def test_the_subscription_page_says_when_the_next_charge_is(client, subscription):
    page = text_of(client.get(f"/subscriptions/{subscription.id}").get_data(as_text=True))
    assert "Next charge €9.90 on 14 Apr 2026" in page


@pytest.mark.parametrize(("values", "instead"), [
    ({"price_minor": 0}, "Runs until you cancel"),  # and nothing of charges
    ({"status": SubscriptionStatus.PENDING_CANCEL, "effective_at": datetime(2026, 4, 14, tzinfo=UTC)},
     "No further charges"),
    ({"status": SubscriptionStatus.SUSPENDED, "suspended_at": datetime(2026, 3, 1, tzinfo=UTC)},
     "No charges while suspended"),
])
def test_no_next_charge_where_it_does_not_renew(client, tenant, logged_in, plan, clock, values, instead):
    subscription = factories.subscription(tenant, logged_in, plan, **values)
    page = text_of(client.get(f"/subscriptions/{subscription.id}").get_data(as_text=True))
    assert "Next charge" not in page and instead in page
    if subscription.price_minor == 0:
        assert "Charges" not in page


def test_the_dashboard_shows_the_next_charge_from_the_same_row(client, subscription):
    page = text_of(client.get("/subscriptions/").get_data(as_text=True))
    assert "Renews 14 Apr 2026 Next charge €9.90" in page


@pytest.mark.parametrize("path", ["/billing/invoices/99999999999999999999", "/billing/invoices/-1.pdf",
                                  "/billing/invoices/abc", "/admin/invoices/99999999999999999999.pdf"])
def test_hostile_invoice_ids_are_not_found(client, logged_in, path):
    assert client.get(path).status_code in (302, 403, 404)
