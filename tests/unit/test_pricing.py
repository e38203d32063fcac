"""Money, quotes, billing periods and proration (no app, no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.domain.catalogue import ChangeRule, Interval
from app.domain.pricing import (
    Money,
    PlanPrice,
    PricingError,
    QuoteLine,
    add_periods,
    change_effective_at,
    current_period,
    parse_amount,
    period_end,
    prorate,
    quote,
    total,
)

NOW = datetime(2025, 3, 15, 12, 30, tzinfo=UTC)
MONTHLY = PlanPrice(unit_amount=500, currency="EUR", interval=Interval.MONTH)
SEATS = PlanPrice(500, "EUR", Interval.MONTH, quantity_allowed=True, max_quantity=10)

# No example database: the suite must not write a .hypothesis folder into the project.
PROPERTY = settings(database=None, max_examples=300, deadline=None)


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


# --- Money ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "currency", "text"),
    [
        (1250, "EUR", "€12.50"),
        (500, "USD", "$5.00"),
        (1250, "CHF", "12.50 CHF"),
        (5, "GBP", "£0.05"),
        (0, "EUR", "€0.00"),
        (-1250, "EUR", "-€12.50"),
        (-7, "CHF", "-0.07 CHF"),
        (123456789, "USD", "$1,234,567.89"),
        (500, "JPY", "¥500"),
        (1500, "KRW", "1,500 KRW"),
        (1234, "KWD", "1.234 KWD"),
    ],
)
def test_money_format(amount: int, currency: str, text: str) -> None:
    assert Money(amount, currency).format() == text == str(Money(amount, currency))


@pytest.mark.parametrize("currency", ["eur", "EU", "EURO", "€", "", "E1R"])
def test_money_rejects_bad_currency(currency: str) -> None:
    with pytest.raises(ValueError, match="three upper-case letters"):
        Money(100, currency)


@pytest.mark.parametrize("amount", [12.5, 12.0, "12", True, None])
def test_money_rejects_non_integer_amounts(amount: object) -> None:
    with pytest.raises(TypeError, match="must be an int"):
        Money(amount, "EUR")  # type: ignore[arg-type]


def test_money_arithmetic_in_one_currency() -> None:
    assert Money(100, "EUR") + Money(250, "EUR") == Money(350, "EUR")
    assert Money(100, "EUR") - Money(250, "EUR") == Money(-150, "EUR")
    assert -Money(100, "EUR") == Money(-100, "EUR")
    assert Money(100, "EUR") * 3 == 3 * Money(100, "EUR") == Money(300, "EUR")
    assert total([Money(1, "EUR"), Money(2, "EUR")], "EUR") == Money(3, "EUR")
    assert total([], "USD") == Money.zero("USD")


def test_money_refuses_to_mix_currencies() -> None:
    with pytest.raises(ValueError, match="EUR and USD"):
        Money(100, "EUR") + Money(100, "USD")
    with pytest.raises(ValueError, match="USD and EUR"):
        Money(100, "USD") - Money(100, "EUR")
    with pytest.raises(ValueError, match="EUR and USD"):
        total([Money(1, "USD")], "EUR")


def test_money_is_immutable() -> None:
    money = Money(100, "EUR")
    with pytest.raises(AttributeError):
        money.amount = 5  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "currency", "amount"),
    [
        ("12.50", "EUR", 1250),
        ("12.5", "EUR", 1250),
        (" 7 ", "EUR", 700),
        ("0.05", "USD", 5),
        ("500", "JPY", 500),
    ],
)
def test_parse_amount(text: str, currency: str, amount: int) -> None:
    assert parse_amount(text, currency) == amount


@pytest.mark.parametrize(
    ("text", "currency"), [("12.505", "EUR"), ("5.5", "JPY"), ("-1", "EUR"), ("1e3", "EUR"), ("", "EUR")]
)
def test_parse_amount_rejects(text: str, currency: str) -> None:
    with pytest.raises(PricingError):
        parse_amount(text, currency)


# --- Quotes --------------------------------------------------------------------------------------


def test_quote_single_unit_is_due_in_full_for_the_first_period() -> None:
    result = quote(MONTHLY, quantity=1, now=NOW)

    assert result.recurring == result.due_now == Money(500, "EUR")
    assert (result.interval, result.quantity) == (Interval.MONTH, 1)
    assert (result.period_start, result.period_end) == (NOW, at(2025, 4, 15, 12, 30))
    assert result.lines == (QuoteLine("Plan, per month", 1, Money(500, "EUR")),)


def test_quote_multiplies_unit_and_surcharge_by_quantity() -> None:
    result = quote(SEATS, quantity=3, config_surcharge=120, now=NOW)

    assert result.recurring == result.due_now == Money((500 + 120) * 3, "EUR")
    assert [line.amount for line in result.lines] == [Money(1500, "EUR"), Money(360, "EUR")]


def test_quote_uses_the_delivery_time_as_period_start() -> None:
    yearly = PlanPrice(12000, "USD", Interval.YEAR)

    result = quote(yearly, quantity=1, now=NOW, period_start=at(2024, 2, 29))

    assert (result.period_start, result.period_end) == (at(2024, 2, 29), at(2025, 2, 28))
    assert result.due_now == Money(12000, "USD")


def test_quote_of_a_free_plan_is_zero() -> None:
    free = PlanPrice(0, "EUR", Interval.MONTH)

    assert quote(free, quantity=1, now=NOW).due_now == Money(0, "EUR")


@pytest.mark.parametrize(
    ("plan", "quantity", "message"),
    [
        (MONTHLY, 2, "sold as a single unit"),
        (MONTHLY, 0, "at least 1"),
        (SEATS, 0, "at least 1"),
        (SEATS, -3, "at least 1"),
        (SEATS, 11, "at most 10"),
        (SEATS, 2.0, "whole number"),
        (SEATS, True, "whole number"),
        (SEATS, "2", "whole number"),
    ],
)
def test_quote_rejects_bad_quantities(plan: PlanPrice, quantity: object, message: str) -> None:
    with pytest.raises(PricingError, match=message):
        quote(plan, quantity=quantity, now=NOW)  # type: ignore[arg-type]


def test_quote_allows_any_quantity_without_a_maximum() -> None:
    unlimited = PlanPrice(100, "EUR", Interval.MONTH, quantity_allowed=True)

    assert quote(unlimited, quantity=1000, now=NOW).recurring == Money(100_000, "EUR")


def test_quote_rejects_a_negative_surcharge() -> None:
    with pytest.raises(ValueError, match="config_surcharge"):
        quote(MONTHLY, quantity=1, config_surcharge=-1, now=NOW)


def test_plan_price_validates_itself() -> None:
    with pytest.raises(ValueError, match="unit_amount"):
        PlanPrice(-1, "EUR", Interval.MONTH)
    with pytest.raises(ValueError, match="max_quantity"):
        PlanPrice(1, "EUR", Interval.MONTH, quantity_allowed=True, max_quantity=0)
    with pytest.raises(ValueError, match="currency"):
        PlanPrice(1, "euro", Interval.MONTH)


# --- Billing periods -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "interval", "end"),
    [
        (at(2025, 1, 15, 9), Interval.MONTH, at(2025, 2, 15, 9)),
        (at(2025, 1, 31), Interval.MONTH, at(2025, 2, 28)),
        (at(2024, 1, 31), Interval.MONTH, at(2024, 2, 29)),
        (at(2025, 3, 31), Interval.MONTH, at(2025, 4, 30)),
        (at(2025, 12, 31, 23, 59, 59), Interval.MONTH, at(2026, 1, 31, 23, 59, 59)),
        (at(2024, 2, 29), Interval.YEAR, at(2025, 2, 28)),
        (at(2023, 2, 28), Interval.YEAR, at(2024, 2, 28)),
        (at(2025, 6, 1), Interval.YEAR, at(2026, 6, 1)),
    ],
)
def test_period_end(start: datetime, interval: Interval, end: datetime) -> None:
    assert period_end(start, interval) == end


def test_period_end_keeps_the_anchor_day_after_a_short_month() -> None:
    anchor = at(2025, 1, 31)

    assert period_end(at(2025, 2, 28), Interval.MONTH, anchor=anchor) == at(2025, 3, 31)
    assert period_end(at(2025, 2, 28), Interval.MONTH) == at(2025, 3, 28)


def test_period_end_of_a_leap_day_anchor_comes_back_in_leap_years() -> None:
    anchor = at(2024, 2, 29)

    assert [add_periods(anchor, Interval.YEAR, n) for n in range(5)] == [
        at(2024, 2, 29), at(2025, 2, 28), at(2026, 2, 28), at(2027, 2, 28), at(2028, 2, 29)
    ]  # fmt: skip


def test_add_periods_never_drifts() -> None:
    anchor = at(2025, 1, 31, 8)

    ends = [add_periods(anchor, Interval.MONTH, n) for n in range(1, 5)]

    assert ends == [at(2025, 2, 28, 8), at(2025, 3, 31, 8), at(2025, 4, 30, 8), at(2025, 5, 31, 8)]


def test_period_end_works_on_the_utc_calendar() -> None:
    berlin_midnight = datetime(2025, 2, 1, 0, 30, tzinfo=timezone(timedelta(hours=1)))  # 31 Jan in UTC

    assert period_end(berlin_midnight, Interval.MONTH) == at(2025, 2, 28, 23, 30)


def test_period_end_rejects_naive_datetimes() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        period_end(datetime(2025, 1, 1), Interval.MONTH)


@pytest.mark.parametrize(
    ("moment", "bounds"),
    [
        (at(2025, 1, 31), (at(2025, 1, 31), at(2025, 2, 28))),
        (at(2025, 2, 27, 23), (at(2025, 1, 31), at(2025, 2, 28))),
        (at(2025, 2, 28), (at(2025, 2, 28), at(2025, 3, 31))),
        (at(2025, 3, 30), (at(2025, 2, 28), at(2025, 3, 31))),
        (at(2026, 7, 1), (at(2026, 6, 30), at(2026, 7, 31))),
    ],
)
def test_current_period(moment: datetime, bounds: tuple[datetime, datetime]) -> None:
    assert current_period(at(2025, 1, 31), Interval.MONTH, moment) == bounds


# --- Proration -----------------------------------------------------------------------------------

START, END = at(2025, 4, 1), at(2025, 5, 1)  # 30 days
HALFWAY = START + (END - START) / 2


def test_prorate_halfway_credits_and_charges_half() -> None:
    result = prorate(1000, 3000, "EUR", START, END, HALFWAY)

    assert (result.credit, result.debit) == (Money(-500, "EUR"), Money(1500, "EUR"))
    assert result.net == Money(1000, "EUR")
    assert (result.remaining_seconds, result.period_seconds) == (15 * 86400, 30 * 86400)
    assert [line.amount for line in result.lines] == [result.credit, result.debit]


def test_prorate_downgrade_can_owe_the_customer() -> None:
    assert prorate(3000, 1000, "EUR", START, END, HALFWAY).net == Money(-1000, "EUR")


def test_prorate_rounds_each_line_half_up() -> None:
    # 1 of 2 seconds left: 1 * 1/2 = 0.5 -> 1, and 3 * 1/2 = 1.5 -> 2, each on its own.
    start = at(2025, 1, 1)
    result = prorate(1, 3, "EUR", start, start + timedelta(seconds=2), start + timedelta(seconds=1))

    assert (result.credit.amount, result.debit.amount, result.net.amount) == (-1, 2, 1)


def test_prorate_rounds_below_half_down() -> None:
    # 1 of 3 seconds left: 100 / 3 = 33.3 -> 33.
    start = at(2025, 1, 1)
    result = prorate(100, 100, "EUR", start, start + timedelta(seconds=3), start + timedelta(seconds=2))

    assert (result.credit.amount, result.debit.amount) == (-33, 33)


def test_prorate_counts_whole_seconds() -> None:
    result = prorate(1000, 1000, "EUR", START, END, START + timedelta(seconds=1, microseconds=999_999))

    assert result.remaining_seconds == 30 * 86400 - 2


def test_prorate_at_period_bounds() -> None:
    assert prorate(1000, 2000, "USD", START, END, START).net == Money(1000, "USD")
    assert prorate(1000, 2000, "USD", START, END, END).net == Money(0, "USD")


@pytest.mark.parametrize("moment", [START - timedelta(seconds=1), END + timedelta(microseconds=1)])
def test_prorate_outside_the_period_is_refused(moment: datetime) -> None:
    with pytest.raises(PricingError, match="within the current billing period"):
        prorate(1000, 2000, "EUR", START, END, moment)


def test_prorate_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="after period_start"):
        prorate(1000, 2000, "EUR", END, START, END)
    with pytest.raises(ValueError, match="old_amount"):
        prorate(-1, 2000, "EUR", START, END, START)
    with pytest.raises(ValueError, match="currency"):
        prorate(1, 2, "eur", START, END, START)


@pytest.mark.parametrize(
    ("old", "new", "rule", "expected"),
    [
        (1000, 2000, ChangeRule.PERIOD_END, NOW),
        (1000, 1000, ChangeRule.PERIOD_END, NOW),
        (2000, 1000, ChangeRule.PERIOD_END, END),
        (2000, 1000, ChangeRule.IMMEDIATE, NOW),
    ],
)
def test_upgrades_apply_now_and_downgrades_follow_the_rule(
    old: int, new: int, rule: ChangeRule, expected: datetime
) -> None:
    assert change_effective_at(old, new, downgrade_rule=rule, now=NOW, period_end=END) == expected


# --- Properties ----------------------------------------------------------------------------------

amounts = st.integers(min_value=0, max_value=10**12)
currencies = st.sampled_from(["EUR", "USD", "JPY", "CHF", "KWD"])
starts = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC))
lengths = st.integers(min_value=1, max_value=400 * 86400).map(lambda s: timedelta(seconds=s))


@st.composite
def periods(draw: st.DrawFn) -> tuple[datetime, datetime, datetime]:
    start = draw(starts)
    end = start + draw(lengths)
    offset = draw(st.integers(min_value=0, max_value=int((end - start).total_seconds())))
    return start, end, start + timedelta(seconds=offset)


@PROPERTY
@given(old=amounts, new=amounts, currency=currencies, period=periods())
def test_prorate_properties(old: int, new: int, currency: str, period: tuple[datetime, ...]) -> None:
    start, end, moment = period

    result = prorate(old, new, currency, start, end, moment)

    assert type(result.credit.amount) is int and type(result.debit.amount) is int
    assert -old <= result.credit.amount <= 0
    assert 0 <= result.debit.amount <= new
    assert result.net.amount == result.credit.amount + result.debit.amount
    assert result.net == total((line.amount for line in result.lines), currency)


@PROPERTY
@given(old=amounts, new=amounts, period=periods())
def test_prorate_at_period_start_is_full_and_at_period_end_is_zero(
    old: int, new: int, period: tuple[datetime, ...]
) -> None:
    start, end, _ = period

    full = prorate(old, new, "EUR", start, end, start)
    none = prorate(old, new, "EUR", start, end, end)

    assert (full.credit.amount, full.debit.amount) == (-old, new)
    assert (none.credit.amount, none.debit.amount) == (0, 0)


@PROPERTY
@given(amount=amounts, period=periods())
def test_prorate_same_plan_costs_nothing(amount: int, period: tuple[datetime, ...]) -> None:
    start, end, moment = period

    assert prorate(amount, amount, "EUR", start, end, moment).net.amount == 0


@PROPERTY
@given(amount=amounts, period=periods(), later=st.integers(min_value=0, max_value=10**6))
def test_prorate_credit_shrinks_as_time_passes(amount: int, period: tuple[datetime, ...], later: int) -> None:
    start, end, moment = period
    after = min(end, moment + timedelta(seconds=later))

    earlier_credit = prorate(amount, 0, "EUR", start, end, moment).credit.amount
    later_credit = prorate(amount, 0, "EUR", start, end, after).credit.amount

    assert earlier_credit <= later_credit <= 0


@PROPERTY
@given(anchor=starts, interval=st.sampled_from(list(Interval)), count=st.integers(min_value=0, max_value=60))
def test_periods_follow_each_other_and_keep_the_anchor_day(
    anchor: datetime, interval: Interval, count: int
) -> None:
    start = add_periods(anchor, interval, count)
    end = period_end(start, interval, anchor=anchor)

    assert end == add_periods(anchor, interval, count + 1)
    assert start < end
    # Either the anchor day itself, or the last day of a month too short for it.
    assert end.day == anchor.day or (end.day < anchor.day and (end + timedelta(days=1)).day == 1)
    assert end.time() == anchor.time()


@PROPERTY
@given(anchor=starts, interval=st.sampled_from(list(Interval)), moment=starts)
def test_current_period_contains_the_moment(anchor: datetime, interval: Interval, moment: datetime) -> None:
    start, end = current_period(anchor, interval, moment)

    assert start <= moment < end
    assert end == period_end(start, interval, anchor=anchor)
