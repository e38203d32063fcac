"""Selling prices, margins and the differences a price import would make: integers only, no database."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.domain.cloud_prices import Change, PriceChange, TypeCost, margin_bp, price_changes, selling_price, type_costs
from app.domain.plan_offers import TypePrice

costs = st.integers(min_value=0, max_value=10**9)
markups = st.integers(min_value=-10_000, max_value=100_000)


def test_selling_price_rounds_half_up() -> None:
    assert selling_price(459, 2500) == 574  # 573.75
    assert selling_price(2, 2500) == 3  # 2.5 rounds up
    assert selling_price(1000, 0) == 1000
    assert selling_price(1000, -10_000) == 0


@given(costs, markups)
def test_selling_price_matches_decimal_half_up(cost: int, markup: int) -> None:
    exact = Decimal(cost) * (Decimal(10_000 + markup) / Decimal(10_000))
    assert selling_price(cost, markup) == int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))


@given(costs, st.integers(min_value=0, max_value=100_000))
def test_a_markup_never_sells_below_cost(cost: int, markup: int) -> None:
    assert selling_price(cost, markup) >= cost


def test_negative_inputs_are_refused() -> None:
    with pytest.raises(ValueError):
        selling_price(-1, 0)
    with pytest.raises(ValueError):
        selling_price(100, -10_001)


def test_margin() -> None:
    assert margin_bp(1000, 800) == 2000
    assert margin_bp(1000, 1200) == -2000
    assert margin_bp(0, 100) is None
    assert margin_bp(3, 2) == 3333


@given(st.integers(min_value=1, max_value=10**9), costs)
def test_margin_matches_decimal_half_up(price: int, cost: int) -> None:
    exact = Decimal(price - cost) * 10_000 / Decimal(price)
    assert margin_bp(price, cost) == int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def test_price_changes() -> None:
    current = {("cx22", "fsn1"): 459, ("cx22", "nbg1"): 459, ("cx32", "fsn1"): 799}
    imported = {("cx22", "fsn1"): 459, ("cx22", "nbg1"): 499, ("cx42", "fsn1"): 1899}
    assert price_changes(current, imported) == [
        PriceChange("cx22", "nbg1", Change.CHANGED, 459, 499),
        PriceChange("cx32", "fsn1", Change.REMOVED, 799, None),
        PriceChange("cx42", "fsn1", Change.ADDED, None, 1899),
    ]


prices = st.dictionaries(st.tuples(st.sampled_from(["a", "b", "c"]), st.sampled_from(["x", "y"])), costs)


@given(prices, prices)
def test_applying_the_changes_gives_the_import(current: dict, imported: dict) -> None:
    result = dict(current)
    for change in price_changes(current, imported):
        key = (change.server_type, change.location)
        assert change.old_minor == current.get(key)
        if change.new_minor is None:
            del result[key]
        else:
            result[key] = change.new_minor
    assert result == imported


HETZNER = {("cx22", "nbg1"): 459, ("cx22", "fsn1"): 459, ("cpx21", "nbg1"): 899, ("cpx21", "ash"): 1049,
           ("cpx21", "sin"): 1349}


def test_the_dearest_of_the_plans_locations_sets_a_types_cost() -> None:
    costs = type_costs(HETZNER, locations=frozenset({"nbg1", "ash"}), months=1)
    assert costs == {"cpx21": TypeCost("cpx21", 1049, (("ash", 1049), ("nbg1", 899))),
                     "cx22": TypeCost("cx22", 459)}
    assert costs["cpx21"].spread_minor == 150 and costs["cx22"].spread_minor == 0
    assert type_costs(HETZNER, locations=None, months=1)["cpx21"].cost_minor == 1349
    assert type_costs(HETZNER, locations=frozenset({"sin"}), months=12) == {"cpx21": TypeCost("cpx21", 1349 * 12)}
    with pytest.raises(ValueError):
        type_costs(HETZNER, locations=None, months=0)


def test_a_price_shows_its_margin_in_basis_points() -> None:
    assert TypePrice("cx22", 551, 459).margin_bp == 1670
    assert TypePrice("cx22", 551).margin_bp is None
    assert TypePrice("cx22", 0, 0).margin_bp is None
