"""Pure helpers behind the customer's Billing pages: months of the spend chart, the next charge, tax rates,
address blocks and the PDF's Latin-1 text."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.domain.charts import last_months, month_label, monthly_chart
from app.domain.subscriptions import SubscriptionStatus, charge_outlook
from app.web.formatting import party_lines, tax_rate
from app.web.invoice_pdf import latin1

END = datetime(2027, 1, 15, tzinfo=UTC)


def test_last_months_run_up_to_the_given_month_across_years():
    assert last_months(2027, 2, 3) == (202612, 202701, 202702)
    assert len(last_months(2027, 1)) == 12 and last_months(2027, 1)[0] == 202602


def test_month_labels_and_a_monthly_chart_with_gaps():
    chart = monthly_chart("Spend", (202611, 202612), {202612: 990}, lambda v: f"{v / 100:.2f}")
    assert month_label(202612) == "Dec 2026"
    assert [(bar.label, bar.value, bar.text) for bar in chart.bars] == [("Nov 2026", 0, "0.00"),
                                                                         ("Dec 2026", 990, "9.90")]


def test_the_next_charge_is_the_period_end_of_a_renewing_paid_subscription():
    assert charge_outlook(SubscriptionStatus.ACTIVE, price_minor=990, auto_renew=True, period_end=END).at == END


@pytest.mark.parametrize(("status", "price", "renews", "instead"), [
    (SubscriptionStatus.ACTIVE, 0, True, ""),  # a free plan never speaks of billing
    (SubscriptionStatus.ACTIVE, 990, False, "No further charges: it ends with the current period"),
    (SubscriptionStatus.PENDING_CANCEL, 990, True, "No further charges: it ends with the current period"),
    (SubscriptionStatus.SUSPENDED, 990, True, "No charges while suspended: paying the open invoice reinstates it"),
    (SubscriptionStatus.CANCELED, 990, True, "No further charges"),
    (SubscriptionStatus.PENDING_FULFILLMENT, 990, True, ""),
])
def test_no_next_charge_when_it_does_not_renew(status, price, renews, instead):
    outlook = charge_outlook(status, price_minor=price, auto_renew=renews, period_end=END)
    assert outlook.at is None and outlook.instead == instead


def test_tax_rates_in_percent():
    assert [tax_rate(bp) for bp in (1900, 550, 0, 2050)] == ["19 %", "5.5 %", "0 %", "20.5 %"]


def test_party_lines_take_the_address_as_text_or_lines_and_skip_what_is_missing():
    assert party_lines({"name": "ACME", "address": "Road 1\n\n12345 Town", "country": "FR", "vat_id": "FR1"}) == [
        "ACME", "Road 1", "12345 Town", "France", "VAT ID FR1"]
    assert party_lines({"name": "B", "address_lines": ["x"], "country": ""}) == ["B", "x"]
    assert party_lines(None) == []


def test_latin1_spells_out_what_the_core_font_lacks():
    assert latin1("€9.90 \u2013 \u201cZoë\u201d Łódź 日本") == 'EUR 9.90 - "Zoë" Lódz ??'
    assert latin1("Müller") == "Müller"
    latin1("\U0001f600 \u0301 \ufffd").encode("latin-1")  # never fails


def test_invoice_totals_leave_out_what_was_not_taken_off():
    from types import SimpleNamespace

    from app.web.formatting import invoice_totals

    paid = SimpleNamespace(subtotal_minor=1000, tax_rate_bp=1900, tax_minor=190, total_minor=1190,
                           balance_applied_minor=0, credited_minor=0, amount_paid_minor=1190, amount_due_minor=0)
    assert invoice_totals(paid) == [("Net", 1000), ("Tax (19 %)", 190), ("Total", 1190), ("Paid", -1190),
                                    ("Amount due", 0)]
