"""Pages of collection: the customer's "Pay now", the tenant admin's billing settings, payments and overdue
subscriptions with extending a grace period. Other tenants' ids answer 404, customers and support 403, no input
500."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from app.domain.billing import InvoiceStatus
from app.domain.subscriptions import SubscriptionStatus
from app.extensions import db
from app.models import BillingSettings, Invoice, Payment, Subscription
from app.sandbox.payments import SandboxPayments
from app.services import collection, subscriptions
from app.services.actors import Actor
from tests import factories
from tests.helpers import post_form
from tests.services.cards import FAILS_EVERY_CHARGE, save_card
from tests.web.test_impersonation import impersonate


@pytest.fixture
def subscription(tenant, customer):  # type: ignore[no-untyped-def]
    return factories.subscription(tenant, customer, factories.plan(tenant))


@pytest.fixture
def invoice(subscription, clock):  # type: ignore[no-untyped-def]
    return factories.invoice(subscription, next_attempt_at=clock.now())


@pytest.fixture
def as_admin(client, auth, admin):  # type: ignore[no-untyped-def]
    auth.login(admin.email)
    return admin


def fresh_invoice(invoice: Invoice) -> Invoice:
    db.session.expire_all()
    return db.session.get(Invoice, invoice.id)


# --- Pay now -----------------------------------------------------------------------------------------------------

def test_pay_now_pays_and_says_so(client, auth, tenant, customer, invoice):
    save_card(tenant, customer)
    auth.login(customer.email)
    response = post_form(client, f"/billing/invoices/{invoice.id}/pay")
    assert response.status_code == 303 and response.location.endswith(f"/billing/invoices/{invoice.id}")
    assert fresh_invoice(invoice).status is InvoiceStatus.PAID
    with client.session_transaction() as session:
        assert any("the invoice is paid" in message for _, message in session["_flashes"])
    again = post_form(client, f"/billing/invoices/{invoice.id}/pay")
    assert again.status_code == 303
    with client.session_transaction() as session:
        assert any("already paid" in message for _, message in session["_flashes"])
    assert len(SandboxPayments(tenant.id).succeeded_charges) == 1


def test_pay_now_with_a_declining_card_flashes_the_reason(client, auth, tenant, customer, invoice):
    save_card(tenant, customer, FAILS_EVERY_CHARGE)
    auth.login(customer.email)
    assert post_form(client, f"/billing/invoices/{invoice.id}/pay").status_code == 303
    with client.session_transaction() as session:
        assert any("The payment failed: Your card was declined." in message for _, message in session["_flashes"])


@pytest.mark.parametrize("data", [{"payment_method_id": "abc"}, {"payment_method_id": "-1"},
                                  {"payment_method_id": "99999999999999999999"}, {"payment_method_id": "424242"}])
def test_pay_now_hostile_inputs_never_500(client, auth, tenant, customer, invoice, data):
    save_card(tenant, customer)
    auth.login(customer.email)
    response = post_form(client, f"/billing/invoices/{invoice.id}/pay", data)
    assert response.status_code in (303, 404)
    assert fresh_invoice(invoice).status is InvoiceStatus.OPEN


def test_pay_now_refusals(client, auth, tenant, other_tenant, customer, support, invoice):
    save_card(tenant, customer)
    stranger = factories.user(tenant, email="stranger@example.com")
    auth.login(stranger.email)
    assert post_form(client, f"/billing/invoices/{invoice.id}/pay").status_code == 404
    assert post_form(client, "/billing/invoices/999999/pay").status_code == 404
    auth.logout()
    auth.login(customer.email)
    assert client.post(f"/billing/invoices/{invoice.id}/pay").status_code == 400  # no CSRF token
    assert client.get(f"/billing/invoices/{invoice.id}/pay").status_code == 405
    auth.logout()
    auth.login(support.email)
    assert post_form(client, f"/billing/invoices/{invoice.id}/pay").status_code == 403
    assert impersonate(client, customer).status_code == 303
    assert post_form(client, f"/billing/invoices/{invoice.id}/pay").status_code == 403
    assert not db.session.scalars(select(Payment)).all()


# --- billing settings -----------------------------------------------------------------------------------------------

FORM = {"seller_name": "Nimbus GmbH", "seller_address": "Hauptstrasse 1\n10115 Berlin", "seller_vat_id": "DE123456789",
        "seller_country": "DE", "invoice_prefix": "NIM", "payment_terms_days": "14", "retry_days": "2, 4",
        "suspend_after_days": "10", "grace_days": "20", "reverse_charge": "y",
        "tax_country": ["DE", "at", "", "*"], "tax_rate": ["19", "20", "", "0"]}


def test_the_settings_page_shows_the_defaults_then_saves(client, as_admin, tenant):
    page = client.get("/admin/billing").get_data(as_text=True)
    assert 'aria-current="page">Billing settings<' in page and 'value="3, 5, 7"' in page
    response = post_form(client, "/admin/billing", FORM)
    assert response.status_code == 303, response.get_data(as_text=True)
    db.session.expire_all()
    row = db.session.get(BillingSettings, tenant.id)
    assert row.tax_rates == {"*": 0, "AT": 2000, "DE": 1900} and row.retry_days == [2, 4] and row.grace_days == 20
    page = client.get("/admin/billing").get_data(as_text=True)
    assert 'value="AT"' in page and 'value="20"' in page and 'value="2, 4"' in page


@pytest.mark.parametrize("changes", [
    {"retry_days": "5, 3"}, {"grace_days": "0"}, {"grace_days": "9" * 40}, {"payment_terms_days": "1e9"},
    {"invoice_prefix": "in voice"}, {"seller_country": "ZZ"}, {"seller_name": ""},
    {"tax_country": ["DE", "DE"], "tax_rate": ["19", "7"]}, {"tax_country": ["DE"], "tax_rate": ["19.999"]},
    {"tax_country": ["DE"], "tax_rate": [""]}, {"tax_country": ["XX"], "tax_rate": ["5"]},
    {"tax_country": ["DE", "AT"], "tax_rate": ["19"]}, {"seller_address": "\x00"}, {"suspend_after_days": "-5"},
])
def test_refused_settings_answer_400_with_nothing_saved(client, as_admin, tenant, changes):
    response = post_form(client, "/admin/billing", {**FORM, **changes})
    assert response.status_code == 400, response.status_code
    assert "Nothing was changed" in response.get_data(as_text=True) or "error" in response.get_data(as_text=True)
    assert db.session.get(BillingSettings, tenant.id) is None


@pytest.mark.parametrize("path", ["/admin/billing", "/admin/payments", "/admin/overdue"])
def test_customers_and_support_are_refused(client, auth, customer, support, path):
    for user in (customer, support):
        auth.login(user.email)
        assert client.get(path).status_code == 403
        auth.logout()
    assert client.get(path).status_code in (302, 303)


def test_settings_need_the_csrf_token(client, as_admin, tenant):
    assert client.post("/admin/billing", data=FORM).status_code == 400
    assert db.session.get(BillingSettings, tenant.id) is None


# --- payments and overdue ------------------------------------------------------------------------------------------

def test_the_payments_page_lists_tries_newest_first_with_a_status_filter(client, as_admin, tenant, other_tenant,
                                                                         customer, invoice, clock):
    save_card(tenant, customer, FAILS_EVERY_CHARGE)
    collection.collect_due(clock.now())
    clock.advance(days=3)
    save_card(tenant, customer)
    collection.collect_due(clock.now())
    page = client.get("/admin/payments").get_data(as_text=True)
    assert page.index("<td>Succeeded</td>") < page.index("Your card was declined.")
    failed_only = client.get("/admin/payments?status=failed").get_data(as_text=True)
    assert "Your card was declined." in failed_only and "<td>Succeeded</td>" not in failed_only
    assert client.get("/admin/payments?status=bogus&page=-3").status_code == 200
    assert client.get("/admin/payments?page=99999999999999999999").status_code == 200


def test_another_tenants_payments_are_not_shown(client, as_admin, other_tenant, clock):
    theirs = factories.user(other_tenant, email="them@other.test")
    invoice = factories.invoice(factories.subscription(other_tenant, theirs, factories.plan(other_tenant)),
                                next_attempt_at=clock.now())
    collection.collect_due(clock.now())
    assert db.session.scalars(select(Payment).where(Payment.invoice_id == invoice.id)).one()
    assert "them@other.test" not in client.get("/admin/payments").get_data(as_text=True)


def test_overdue_shows_dates_and_extends_grace(client, as_admin, tenant, customer, subscription, invoice, clock):
    page = client.get("/admin/overdue").get_data(as_text=True)
    assert "Nothing is overdue" in page  # due now, not past
    clock.advance(days=15)
    page = client.get("/admin/overdue").get_data(as_text=True)
    assert f"#{subscription.id}" in page and "(planned)" in page and "29 Mar 2026" in page
    subscriptions.suspend(tenant=tenant, actor=Actor.system("dunning"), subscription_id=subscription.id,
                          reason="Unpaid", grace_ends_at=clock.now() + timedelta(days=30))
    page = client.get("/admin/overdue").get_data(as_text=True)
    assert "29 Apr 2026" in page and "Extend" in page
    prefix = f"grace-{subscription.id}-"
    response = post_form(client, f"/admin/subscriptions/{subscription.id}/grace",
                         {prefix + "until": "2026-05-20", prefix + "reason": "Paying by bank transfer"})
    assert response.status_code == 303, response.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Subscription, subscription.id).effective_at.date().isoformat() == "2026-05-20"
    for until, reason in (("2020-01-01", "Too early"), ("2030-01-01", "Too late"), ("not a day", "x y z"),
                          ("2026-05-25", "")):
        response = post_form(client, f"/admin/subscriptions/{subscription.id}/grace",
                             {prefix + "until": until, prefix + "reason": reason})
        assert response.status_code == 400, (until, response.status_code)
    assert client.post(f"/admin/subscriptions/{subscription.id}/grace").status_code == 400  # no CSRF token


def test_extend_grace_of_another_tenants_subscription_is_not_found(client, as_admin, other_tenant, clock):
    theirs = factories.subscription(other_tenant, factories.user(other_tenant, email="them@other.test"),
                                    factories.plan(other_tenant), status=SubscriptionStatus.SUSPENDED,
                                    effective_at=clock.now() + timedelta(days=3))
    response = post_form(client, f"/admin/subscriptions/{theirs.id}/grace",
                         {f"grace-{theirs.id}-until": "2026-04-20", f"grace-{theirs.id}-reason": "Not mine"})
    assert response.status_code == 404
    assert post_form(client, "/admin/subscriptions/999999/grace",
                     {"grace-999999-until": "2026-04-20", "grace-999999-reason": "None"}).status_code == 404


def test_support_cannot_extend_grace(client, auth, support, subscription, clock):
    auth.login(support.email)
    assert post_form(client, f"/admin/subscriptions/{subscription.id}/grace").status_code == 403


