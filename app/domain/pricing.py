"""Money, price previews, billing periods and proration.

Amounts are integers in the currency's minor unit (cents for EUR) with the currency beside them;
no float ever touches an amount. Datetimes must be timezone-aware; periods are computed on the
UTC calendar.
"""

from __future__ import annotations

import re
from calendar import monthrange
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from app.domain.catalogue import ChangeRule, Interval

# ISO 4217 minor-unit exponents that differ from the usual 2.
_EXPONENTS: Final = {
    "JPY": 0, "KRW": 0, "ISK": 0, "CLP": 0, "VND": 0, "UGX": 0, "PYG": 0, "XOF": 0, "XAF": 0,
    "BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
}  # fmt: skip
_SYMBOLS: Final = {"EUR": "€", "USD": "$", "GBP": "£", "JPY": "¥"}
_CURRENCY: Final = re.compile(r"[A-Z]{3}")
_AMOUNT: Final = re.compile(r"(\d{1,15})(?:\.(\d+))?")
_MONTHS: Final = {Interval.MONTH: 1, Interval.YEAR: 12}
_SECOND: Final = timedelta(seconds=1)


class PricingError(ValueError):
    """A price that cannot be computed for the given input; the message is written for the customer."""


def currency_exponent(currency: str) -> int:
    """Number of decimals of the currency's minor unit (2 unless listed otherwise)."""
    return _EXPONENTS.get(currency, 2)


@dataclass(frozen=True, slots=True)
class Money:
    """An amount in minor units of a currency, e.g. Money(1250, "EUR") is €12.50."""

    amount: int
    currency: str

    def __post_init__(self) -> None:
        _require_int(self.amount, "amount")
        if not isinstance(self.currency, str) or not _CURRENCY.fullmatch(self.currency):
            raise ValueError(f"currency must be three upper-case letters, got {self.currency!r}")

    @classmethod
    def zero(cls, currency: str) -> Money:
        """Nothing, in `currency`: the start of a sum."""
        return cls(0, currency)

    def __add__(self, other: Money) -> Money:
        return Money(self.amount + self._same_currency(other).amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        return Money(self.amount - self._same_currency(other).amount, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    def __mul__(self, factor: int) -> Money:
        _require_int(factor, "factor")
        return Money(self.amount * factor, self.currency)

    __rmul__ = __mul__

    def _same_currency(self, other: Money) -> Money:
        if not isinstance(other, Money):
            raise TypeError(f"cannot combine Money with {type(other).__name__}")
        if other.currency != self.currency:
            raise ValueError(f"Cannot combine amounts in {self.currency} and {other.currency}.")
        return other

    def format(self) -> str:
        """For people: "€12.50", "-$5.00", "¥500", "1,234.50 CHF" (code after when no symbol is known)."""
        sign = "-" if self.amount < 0 else ""
        symbol = _SYMBOLS.get(self.currency)
        digits = self._digits()
        return f"{sign}{symbol}{digits}" if symbol else f"{sign}{digits} {self.currency}"

    def _digits(self) -> str:
        exponent = currency_exponent(self.currency)
        major, minor = divmod(abs(self.amount), 10**exponent)
        return f"{major:,}.{minor:0{exponent}d}" if exponent else f"{major:,}"

    def __str__(self) -> str:
        return self.format()


def total(amounts: Iterable[Money], currency: str) -> Money:
    """Sum of `amounts`, all in `currency` (zero when empty)."""
    result = Money.zero(currency)
    for amount in amounts:
        result += amount
    return result


def parse_amount(text: str, currency: str) -> int:
    """Minor units from what a person typed, e.g. "12.5" EUR -> 1250; no floats involved."""
    match = _AMOUNT.fullmatch(text.strip())
    if match is None:
        raise PricingError("Enter an amount like 12.50, with digits and a dot.")
    exponent = currency_exponent(currency)
    whole, fraction = match.group(1), match.group(2) or ""
    if len(fraction) > exponent:
        raise PricingError(f"{currency} amounts have at most {exponent} decimals.")
    scale: int = 10**exponent
    return int(whole) * scale + int(fraction.ljust(exponent, "0") or "0")


@dataclass(frozen=True, slots=True)
class PlanPrice:
    """What a plan costs: `unit_amount` minor units per unit and interval."""

    unit_amount: int
    currency: str
    interval: Interval
    quantity_allowed: bool = False
    max_quantity: int | None = None

    def __post_init__(self) -> None:
        _require_non_negative(self.unit.amount, "unit_amount")
        if self.max_quantity is not None and _require_int(self.max_quantity, "max_quantity") < 1:
            raise ValueError("max_quantity must be at least 1 (or None for no limit)")

    @property
    def unit(self) -> Money:
        """The price of one unit for one interval."""
        return Money(self.unit_amount, self.currency)


@dataclass(frozen=True, slots=True)
class QuoteLine:
    """One line of a quote or an invoice: `quantity` times `unit_amount`."""

    description: str
    quantity: int
    unit_amount: Money

    @property
    def amount(self) -> Money:
        """The line's total."""
        return self.unit_amount * self.quantity


@dataclass(frozen=True, slots=True)
class Quote:
    """A price preview: the recurring price per interval and what is due for the first period."""

    recurring: Money
    due_now: Money
    interval: Interval
    quantity: int
    lines: tuple[QuoteLine, ...]
    period_start: datetime
    period_end: datetime


def check_quantity(plan: PlanPrice, quantity: int) -> int:
    """Return `quantity` if the plan can be ordered that many times, else raise `PricingError`."""
    if isinstance(quantity, bool) or not isinstance(quantity, int):
        raise PricingError("The quantity must be a whole number.")
    if quantity < 1:
        raise PricingError("The quantity must be at least 1.")
    if quantity > 1 and not plan.quantity_allowed:
        raise PricingError("This plan is sold as a single unit; the quantity must be 1.")
    if plan.max_quantity is not None and quantity > plan.max_quantity:
        raise PricingError(f"This plan allows a quantity of at most {plan.max_quantity}.")
    return quantity


def quote(
    plan: PlanPrice,
    *,
    quantity: int,
    config_surcharge: int = 0,
    now: datetime,
    period_start: datetime | None = None,
) -> Quote:
    """Price preview for ordering `quantity` units of `plan` with a per-unit `config_surcharge`.

    Recurring price per interval = (unit_amount + config_surcharge) * quantity.
    Due now: billing starts when the service is delivered and every period is charged in advance,
    in full. The first period starts at delivery and later periods are anchored on that day, so
    the first charge is one whole period at the recurring price, never a prorated stub.
    `period_start` is the delivery time when known; a preview before delivery estimates it as `now`.
    """
    check_quantity(plan, quantity)
    surcharge = Money(_require_non_negative(config_surcharge, "config_surcharge"), plan.currency)
    lines = _quote_lines(plan, quantity, surcharge)
    recurring = total((line.amount for line in lines), plan.currency)
    start = _utc(period_start or now, "period_start")
    end = period_end(start, plan.interval)
    return Quote(recurring, recurring, plan.interval, quantity, lines, start, end)


def _quote_lines(plan: PlanPrice, quantity: int, surcharge: Money) -> tuple[QuoteLine, ...]:
    base = QuoteLine(f"Plan, per {plan.interval.value}", quantity, plan.unit)
    if surcharge.amount == 0:
        return (base,)
    return (base, QuoteLine(f"Configuration, per {plan.interval.value}", quantity, surcharge))


def period_end(start: datetime, interval: Interval, *, anchor: datetime | None = None) -> datetime:
    """End of the billing period that begins at `start` (the next period begins at this instant).

    Periods are calendar months or years on the UTC calendar, keeping the time of day. They are
    anchored to the subscription's start day: a subscription started on 31 January renews on
    28 (29 in leap years) February, then 31 March, then 30 April. Pass the first period's start as
    `anchor` when `start` is a later period start that was clamped to a short month's end; it
    defaults to `start` itself.
    """
    start = _utc(start, "start")
    day = _utc(anchor or start, "anchor").day
    return _shift(start, _MONTHS[interval], day)


def add_periods(anchor: datetime, interval: Interval, count: int) -> datetime:
    """Start of period number `count` (0 is the first) of a subscription that began at `anchor`."""
    anchor = _utc(anchor, "anchor")
    return _shift(anchor, _MONTHS[interval] * count, anchor.day)


def current_period(anchor: datetime, interval: Interval, at: datetime) -> tuple[datetime, datetime]:
    """(start, end) of the period, anchored at `anchor`, that contains `at` (start <= at < end)."""
    anchor, at = _utc(anchor, "anchor"), _utc(at, "at")
    months = (at.year - anchor.year) * 12 + at.month - anchor.month
    # The month count can overshoot by one when `at` is earlier in its month than the anchor day.
    count = months // _MONTHS[interval]
    while add_periods(anchor, interval, count) > at:
        count -= 1
    while add_periods(anchor, interval, count + 1) <= at:
        count += 1
    return add_periods(anchor, interval, count), add_periods(anchor, interval, count + 1)


def _shift(moment: datetime, months: int, day: int) -> datetime:
    year, month_index = divmod(moment.year * 12 + moment.month - 1 + months, 12)
    month = month_index + 1
    return moment.replace(year=year, month=month, day=min(day, monthrange(year, month)[1]))


@dataclass(frozen=True, slots=True)
class Proration:
    """A mid-period change: `credit` (<= 0) for the old plan's unused time, `debit` (>= 0) for the new."""

    credit: Money
    debit: Money
    remaining_seconds: int
    period_seconds: int

    @property
    def net(self) -> Money:
        """What the change costs now; negative when the customer is owed money."""
        return self.credit + self.debit

    @property
    def lines(self) -> tuple[QuoteLine, QuoteLine]:
        """The two separate lines shown to the customer and written to the invoice."""
        return (
            QuoteLine("Credit for unused time on the current plan", 1, self.credit),
            QuoteLine("Remaining time on the new plan", 1, self.debit),
        )


def prorate(
    old_amount: int,
    new_amount: int,
    currency: str,
    period_start: datetime,
    period_end: datetime,
    at: datetime,
) -> Proration:
    """Credit and debit for switching from `old_amount` to `new_amount` per period at `at`.

    Both are shares of the full-period amounts by the whole seconds left in the period:
    amount * remaining_seconds / period_seconds. Rounding: each line is rounded on its own to the
    minor unit, half up (the credit's magnitude is rounded, then negated), so a line never exceeds
    its full-period amount and the net is exactly credit + debit. At `period_start` the lines are
    the full amounts; at `period_end` both are zero.
    """
    _require_non_negative(old_amount, "old_amount")
    _require_non_negative(new_amount, "new_amount")
    start, end, moment = _utc(period_start, "period_start"), _utc(period_end, "period_end"), _utc(at, "at")
    if not start < end:
        raise ValueError("period_end must be after period_start")
    if not start <= moment <= end:
        raise PricingError("The change date must fall within the current billing period.")
    whole, remaining = (end - start) // _SECOND, (end - moment) // _SECOND
    credit, debit = prorated_lines(old_amount, new_amount, remaining, whole)
    return Proration(Money(credit, currency), Money(debit, currency), remaining, whole)


def prorated_lines(old_amount: Any, new_amount: Any, remaining_seconds: Any, period_seconds: Any) -> tuple[Any, Any]:
    """(credit, debit) of `prorate` from the whole seconds left and in the period: the rule's arithmetic alone.

    Written with operators only (`*`, `+`, `//`, unary `-`), so that the same lines compute it on ints here and,
    given SQL integer expressions, in the database for many rows at once (app/models/pricing_sql.py); a test
    proves both give the same amounts."""
    return -_share(old_amount, remaining_seconds, period_seconds), _share(new_amount, remaining_seconds,
                                                                         period_seconds)


def _share(amount: Any, part: Any, whole: Any) -> Any:
    # amount * part / whole rounded half up, in integers only (amount, part >= 0; whole > 0): floor division of
    # non-negative integers, which SQL's integer division (truncation) gives as well.
    return (2 * amount * part + whole) // (2 * whole)


def change_effective_at(
    old_amount: int, new_amount: int, *, downgrade_rule: ChangeRule, now: datetime, period_end: datetime
) -> datetime:
    """When a plan change takes effect: upgrades (not cheaper) now, downgrades as the plan's rule says."""
    if new_amount >= old_amount or downgrade_rule is ChangeRule.IMMEDIATE:
        return _utc(now, "now")
    return _utc(period_end, "period_end")


def _require_int(value: int, name: str) -> int:
    # bool is an int subclass, and True cents is always a bug.
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int (minor units), got {type(value).__name__}")
    return value


def _require_non_negative(value: int, name: str) -> int:
    if _require_int(value, name) < 0:
        raise ValueError(f"{name} must not be negative")
    return value


def _utc(moment: datetime, name: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime")
    return moment.astimezone(UTC)
