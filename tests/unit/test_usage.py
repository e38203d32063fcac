"""Metered prices, the rules for a record, period lines and the CSV upload (app.domain.usage)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.domain.catalogue import Interval
from app.domain.usage import (
    MAX_QUANTITY,
    MeteredPrice,
    UsageError,
    UsageLine,
    check_record,
    lines,
    metered_prices,
    open_from,
    parse_csv,
    record_period,
)

TRAFFIC = {"metric": "traffic_gb", "label": "Outgoing traffic", "unit": "GB", "unit_price_minor": 1}
NOW = datetime(2026, 3, 15, 10, tzinfo=UTC)
START = datetime(2026, 3, 1, tzinfo=UTC)
HEADER = "subscription_id,metric,quantity,timestamp,idempotency_key\n"


def test_prices_are_read_with_their_included_units() -> None:
    prices = metered_prices([TRAFFIC, {**TRAFFIC, "metric": "snapshot_gb", "included": 5}])
    assert prices == (MeteredPrice("traffic_gb", "Outgoing traffic", "GB", 1),
                      MeteredPrice("snapshot_gb", "Outgoing traffic", "GB", 1, 5))
    assert metered_prices([]) == metered_prices(None) == ()


@pytest.mark.parametrize(("raw", "message"), [
    ({"metric": "x"}, "must be a list"),
    (["x"], "must be an object"),
    ([{**TRAFFIC, "metric": "Traffic GB"}], "metric must be"),
    ([{**TRAFFIC, "unit_price_minor": 1.5}], "unit price must be a whole number"),
    ([{**TRAFFIC, "unit_price_minor": True}], "unit price must be a whole number"),
    ([{**TRAFFIC, "included": -1}], "included units"),
    ([{**TRAFFIC, "label": ""}], "label"),
    ([{**TRAFFIC, "colour": "red"}], "unknown keys: colour"),
    ([TRAFFIC, TRAFFIC], "listed twice"),
])
def test_bad_prices_are_named(raw: object, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        metered_prices(raw)


def check(quantity: object = 1, at: datetime = NOW, metric: str = "traffic_gb") -> MeteredPrice:
    return check_record(metered_prices([TRAFFIC]), metric=metric, quantity=quantity, recorded_at=at, now=NOW,
                        open_since=START)


@pytest.mark.parametrize(("quantity", "at", "metric", "message"), [
    (1, NOW, "cpu", "no metric 'cpu'; it meters traffic_gb"),
    (-1, NOW, "traffic_gb", "from 0 to"),
    (MAX_QUANTITY + 1, NOW, "traffic_gb", "from 0 to"),
    ("5", NOW, "traffic_gb", "whole number"),
    (1.0, NOW, "traffic_gb", "whole number"),
    (1, NOW + timedelta(minutes=5, seconds=1), "traffic_gb", "in the future"),
    (1, START - timedelta(microseconds=1), "traffic_gb", "closed billing period"),
    (1, datetime(2026, 3, 10), "traffic_gb", "timezone"),
])
def test_records_the_rules_refuse(quantity: object, at: datetime, metric: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        check(quantity, at, metric)


def test_records_the_rules_take() -> None:
    assert check(0, START).metric == "traffic_gb"
    assert check(MAX_QUANTITY, NOW + timedelta(minutes=5)).metric == "traffic_gb"


def test_a_plan_without_metered_prices_takes_no_usage() -> None:
    with pytest.raises(UsageError, match="no metered prices"):
        check_record((), metric="traffic_gb", quantity=1, recorded_at=NOW, now=NOW, open_since=START)


def test_the_period_of_a_record_is_the_billing_period_containing_it() -> None:
    anchor = datetime(2026, 1, 31, 9, tzinfo=UTC)
    assert record_period(anchor, Interval.MONTH, datetime(2026, 3, 1, tzinfo=UTC)) == (
        datetime(2026, 2, 28, 9, tzinfo=UTC), datetime(2026, 3, 31, 9, tzinfo=UTC))
    # the renewal has not moved the subscription's period yet: the period that has ended is closed
    assert open_from(anchor, Interval.MONTH, datetime(2026, 2, 28, 9, tzinfo=UTC),
                     datetime(2026, 4, 1, tzinfo=UTC)) == datetime(2026, 3, 31, 9, tzinfo=UTC)


@given(quantity=st.integers(0, MAX_QUANTITY), included=st.integers(0, MAX_QUANTITY),
       unit_price=st.integers(0, 10**9))
def test_a_line_bills_the_units_beyond_the_included_ones(quantity: int, included: int, unit_price: int) -> None:
    line = UsageLine(MeteredPrice("m", "M", "u", unit_price, included), quantity)
    assert line.billable == max(quantity - included, 0)
    assert line.amount_minor == line.billable * unit_price >= 0
    assert isinstance(line.amount_minor, int)


def test_lines_follow_the_plan_with_zero_for_unused_metrics() -> None:
    prices = metered_prices([TRAFFIC, {**TRAFFIC, "metric": "snapshot_gb"}])
    assert [(line.price.metric, line.quantity) for line in lines(prices, {"snapshot_gb": 3})] == [
        ("traffic_gb", 0), ("snapshot_gb", 3)]


def test_a_good_csv_is_read_in_utc() -> None:
    rows, problems = parse_csv(HEADER + "12,traffic_gb,5,2026-03-10T01:00:00+01:00,a\r\n\n13,x,0,2026-03-10T00:00Z,b\n")
    assert problems == []
    assert [(row.line, row.subscription_id, row.quantity, row.recorded_at) for row in rows] == [
        (2, 12, 5, datetime(2026, 3, 10, tzinfo=UTC)), (4, 13, 0, datetime(2026, 3, 10, tzinfo=UTC))]


@pytest.mark.parametrize(("text", "problem"), [
    ("", "The file is empty"),
    ("id,metric\n1,x\n", "Line 1: the header must be"),
    (HEADER, "no rows"),
    (HEADER + "1,x,5\n", "Line 2: expected 5 fields"),
    (HEADER + "abc,x,5,2026-03-10T00:00:00Z,a\n", "Line 2: the subscription id 'abc'"),
    (HEADER + "1,Traffic,5,2026-03-10T00:00:00Z,a\n", "Line 2: the metric 'Traffic'"),
    (HEADER + "1,x,-5,2026-03-10T00:00:00Z,a\n", "Line 2: the quantity '-5'"),
    (HEADER + "1,x,1.5,2026-03-10T00:00:00Z,a\n", "Line 2: the quantity '1.5'"),
    (HEADER + "1,x,5,yesterday,a\n", "Line 2: the time 'yesterday' is not ISO 8601"),
    (HEADER + "1,x,5,2026-03-10T00:00:00,a\n", "Line 2: the time '2026-03-10T00:00:00' has no timezone"),
    (HEADER + "1,x,5,2026-03-10T00:00:00Z,\n", "Line 2: the idempotency key"),
    (HEADER + "1,x,5,2026-03-10T00:00:00Z,a\n1,x,6,2026-03-10T00:00:00Z,a\n", "Line 3: the key 'a' is already used"),
])
def test_each_bad_row_is_named_by_its_line(text: str, problem: str) -> None:
    _rows, problems = parse_csv(text)
    assert problem in problems[0]


def test_every_bad_row_is_listed() -> None:
    _, problems = parse_csv(HEADER + "x,x,5,2026-03-10T00:00:00Z,a\n1,x,5,2026-03-10T00:00:00Z,b\n1,x,z,t,c\n")
    assert [problem[:6] for problem in problems] == ["Line 2", "Line 4"]


@given(st.text(max_size=300))
def test_no_text_breaks_the_parser(text: str) -> None:
    rows, problems = parse_csv(text)
    assert bool(rows) != bool(problems) or not rows
