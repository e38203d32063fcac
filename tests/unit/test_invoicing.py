"""Invoices in numbers: VAT treatment, tax in integers, per-line shares that add up, numbers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.domain.invoicing import (
    REVERSE_CHARGE_NOTE,
    allocate,
    credit_note_number,
    invoice_amounts,
    invoice_number,
    tax_on,
    tax_treatment,
    vat_id_country,
    vat_id_problem,
)
from app.domain.pricing import prorate

RATES = {"DE": 1900, "FR": 2000, "*": 0}


def test_a_business_in_another_eu_country_is_reverse_charged():
    treatment = tax_treatment("DE", "FR", "FR12345678901", RATES, True)
    assert (treatment.rate_bp, treatment.reverse_charge, treatment.note) == (0, True, REVERSE_CHARGE_NOTE)


@pytest.mark.parametrize(("country", "vat_id", "enabled", "rate"), [
    ("DE", "DE123456789", True, 1900),  # same country as the seller: domestic VAT
    ("FR", "", True, 2000),  # a consumer pays their country's rate
    ("FR", "FR12345678901", False, 2000),  # the tenant turned reverse charge off
    ("FR", "FR123", True, 2000),  # not a VAT id
    ("US", "", True, 0),  # outside the EU: the "*" rate
])
def test_everyone_else_pays_their_countrys_rate(country, vat_id, enabled, rate):
    treatment = tax_treatment("DE", country, vat_id, RATES, enabled)
    assert (treatment.rate_bp, treatment.reverse_charge, treatment.note) == (rate, False, "")


def test_without_a_rate_for_the_country_or_a_star_the_rate_is_zero():
    assert tax_treatment("DE", "CH", "", {"DE": 1900}, True).rate_bp == 0


def test_vat_ids_are_checked_for_their_shape_only():
    assert vat_id_country("de 123 456 789") == "DE"
    assert vat_id_country("EL123456789") == "GR"
    assert vat_id_country("NL123456789B01") == "NL"
    assert vat_id_country("DE12345678") is None
    assert vat_id_country("US123456789") is None
    assert vat_id_problem("DE123456789", "DE") is None
    assert "not from FR" in (vat_id_problem("DE123456789", "FR") or "")
    assert vat_id_problem("hello") is not None


def test_tax_rounds_half_up_in_integers():
    assert tax_on(1000, 1900) == 190
    assert tax_on(5, 1000) == 1  # 0.5 -> 1
    assert tax_on(4, 1000) == 0
    assert tax_on(-5, 1000) == -1
    assert tax_on(990, 1900) == 188  # 188.1


def test_numbers():
    assert invoice_number("INV", 2027, 42) == "INV-2027-000042"
    assert credit_note_number("INV-2027-000042", 1) == "INV-2027-000042-CN01"


def test_the_balance_pays_what_it_can_and_a_negative_total_goes_back_to_the_balance():
    amounts = invoice_amounts([1000, 500], 1900, balance=300)
    assert (amounts.subtotal, amounts.tax, amounts.total, amounts.balance_applied, amounts.amount_due) == (
        1500, 285, 1785, 300, 1485)
    assert sum(amounts.line_taxes) == 285
    credit = invoice_amounts([-1000, 400], 1900, balance=0)
    assert (credit.total, credit.amount_due, credit.excess_credit) == (-714, 0, 714)


amounts = st.integers(min_value=0, max_value=10**9)
rates = st.integers(min_value=0, max_value=2700)


@given(st.lists(st.integers(min_value=-10**9, max_value=10**9), min_size=1, max_size=12),
       st.integers(min_value=-10**8, max_value=10**8))
def test_allocated_shares_add_up_exactly(weights, total):
    if sum(weights) == 0:
        total = 0
    shares = allocate(total, weights)
    assert sum(shares) == total
    assert all(type(share) is int for share in shares)
    whole = sum(weights)
    if whole:
        for share, weight in zip(shares, weights, strict=True):
            assert abs(share * whole - total * weight) < abs(whole)  # within one unit of the exact share


@given(amounts, amounts, rates, st.integers(min_value=1, max_value=400 * 86400), st.data())
def test_proration_lines_and_their_tax_reconcile_to_the_minor_unit(old, new, rate, seconds, data):
    start = datetime(2027, 1, 1, tzinfo=UTC)
    end = start + timedelta(seconds=seconds)
    at = start + timedelta(seconds=data.draw(st.integers(min_value=0, max_value=seconds)))
    proration = prorate(old, new, "EUR", start, end, at)
    nets = [proration.credit.amount, proration.debit.amount]
    exact_net = (new - old) * proration.remaining_seconds / proration.period_seconds
    assert abs(sum(nets) - exact_net) <= 1  # within one minor unit per line, both lines together
    result = invoice_amounts(nets, rate, balance=0)
    assert all(type(value) is int for value in (result.subtotal, result.tax, result.total, *result.line_taxes))
    assert sum(result.line_taxes) == result.tax == tax_on(sum(nets), rate)
    assert result.total == result.subtotal + result.tax
    assert result.amount_due + result.balance_applied - result.excess_credit == result.total


@given(st.lists(amounts, min_size=1, max_size=10), rates, st.integers(min_value=0, max_value=10**9))
def test_line_taxes_sum_to_the_invoice_tax_and_the_balance_never_overpays(nets, rate, balance):
    result = invoice_amounts(nets, rate, balance)
    assert sum(result.line_taxes) == result.tax
    assert 0 <= result.balance_applied <= min(balance, result.total)
    assert result.amount_due == result.total - result.balance_applied
    assert abs(result.tax * 10_000 - sum(nets) * rate) <= 5_000
