"""Metered usage: a plan's unit prices, the rules for one usage record, its billing period, the period's lines,
and the CSV upload's rows. Pure: no Flask, no database.

A plan's `usage_prices` is a list of metered prices, each
`{"metric": "traffic_gb", "label": "Outgoing traffic", "unit": "GB", "unit_price_minor": 1, "included": 0}`
("included", optional, is the units per period that cost nothing). Usage is billed in arrears: the records of
one billing period (the subscription's period that contains the record's time) are summed per metric when
that period has ended, and each metric becomes one line: (units - included) x unit price, integers only.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from app.domain.catalogue import Interval
from app.domain.pricing import current_period
from app.domain.subscriptions import SubscriptionStatus

# Usage is taken while the service runs or is paused; not before delivery, not after the end.
TAKES_USAGE: Final = (SubscriptionStatus.ACTIVE, SubscriptionStatus.PENDING_CANCEL, SubscriptionStatus.SUSPENDED)
MAX_QUANTITY: Final = 10**12  # units in one record; more is a unit mistake, not usage
MAX_UNIT_PRICE: Final = 10**9  # minor units per unit
FUTURE_SLACK: Final = timedelta(minutes=5)  # clocks drift: a record may be this far ahead of ours
MAX_ROWS: Final = 10_000  # rows in one CSV upload
MAX_KEY: Final = 100
CSV_HEADER: Final = ("subscription_id", "metric", "quantity", "timestamp", "idempotency_key")
_METRIC: Final = re.compile(r"[a-z][a-z0-9_]{0,62}")
_DIGITS: Final = re.compile(r"[0-9]{1,19}")
_KEY: Final = re.compile(r"[\x21-\x7e]{1,100}")  # printable ASCII, no spaces


class UsageError(ValueError):
    """Usage the rules refuse; the message is written for the person who sent it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class MeteredPrice:
    """The price of one unit of `metric`, after `included` free units per period."""

    metric: str
    label: str
    unit: str
    unit_price_minor: int
    included: int = 0


@dataclass(frozen=True, slots=True)
class UsageLine:
    """One metric's usage in one period and what it costs."""

    price: MeteredPrice
    quantity: int  # units used

    @property
    def billable(self) -> int:
        """Units beyond the included ones."""
        return max(self.quantity - self.price.included, 0)

    @property
    def amount_minor(self) -> int:
        return self.billable * self.price.unit_price_minor


def metered_prices(raw: Any) -> tuple[MeteredPrice, ...]:
    """The plan's metered prices from its `usage_prices` JSON; UsageError names what is wrong."""
    if raw is None or raw == []:
        return ()
    if not isinstance(raw, list):
        raise UsageError("Metered prices must be a list.")
    prices: list[MeteredPrice] = []
    for number, item in enumerate(raw, start=1):
        price = _metered_price(item, number)
        if any(other.metric == price.metric for other in prices):
            raise UsageError(f"Metered price {number}: the metric {price.metric!r} is listed twice.")
        prices.append(price)
    return tuple(prices)


def _metered_price(item: Any, number: int) -> MeteredPrice:
    where = f"Metered price {number}"
    if not isinstance(item, dict):
        raise UsageError(f"{where} must be an object.")
    unknown = set(item) - {"metric", "label", "unit", "unit_price_minor", "included"}
    if unknown:
        raise UsageError(f"{where} has unknown keys: {', '.join(sorted(map(str, unknown)))}.")
    metric, label, unit = item.get("metric"), item.get("label"), item.get("unit")
    if not isinstance(metric, str) or not _METRIC.fullmatch(metric):
        raise UsageError(f"{where}: the metric must be lower-case letters, digits and _ (e.g. traffic_gb).")
    if not isinstance(label, str) or not 0 < len(label.strip()) <= 100:
        raise UsageError(f"{where}: the label must be 1 to 100 characters.")
    if not isinstance(unit, str) or not 0 < len(unit.strip()) <= 20:
        raise UsageError(f"{where}: the unit must be 1 to 20 characters.")
    unit_price = _whole(item.get("unit_price_minor"), f"{where}: the unit price", MAX_UNIT_PRICE)
    included = _whole(item.get("included", 0), f"{where}: the included units", MAX_QUANTITY)
    return MeteredPrice(metric, label.strip(), unit.strip(), unit_price, included)


def _whole(value: Any, what: str, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
        raise UsageError(f"{what} must be a whole number from 0 to {maximum:,}.")
    return value


def price_for(prices: Sequence[MeteredPrice], metric: str) -> MeteredPrice:
    """The plan's price of `metric`, or UsageError listing the metrics the plan has."""
    for price in prices:
        if price.metric == metric:
            return price
    if not prices:
        raise UsageError("This subscription's plan has no metered prices, so it takes no usage.")
    known = ", ".join(price.metric for price in prices)
    raise UsageError(f"The plan has no metric {metric[:63]!r}; it meters {known}.")


def record_period(anchor: datetime, interval: Interval, recorded_at: datetime) -> tuple[datetime, datetime]:
    """The record's period: the subscription's billing period (anchored at its activation) containing it."""
    return current_period(anchor, interval, recorded_at)


def open_from(anchor: datetime, interval: Interval, current_period_start: datetime, now: datetime) -> datetime:
    """The earliest time usage may still be recorded for: the start of the period that has not ended yet.

    That is the subscription's current period start, or later when the period ended and the renewal has not
    moved it yet (a closed period is billed by the next billing run, so it takes nothing more).
    """
    return max(current_period_start, record_period(anchor, interval, now)[0])


def check_record(prices: Sequence[MeteredPrice], *, metric: str, quantity: Any, recorded_at: datetime,
                 now: datetime, open_since: datetime) -> MeteredPrice:
    """The metric's price when a record of `quantity` units at `recorded_at` may be kept; else UsageError."""
    price = price_for(prices, metric)
    if isinstance(quantity, bool) or not isinstance(quantity, int):
        raise UsageError("The quantity must be a whole number.")
    if not 0 <= quantity <= MAX_QUANTITY:
        raise UsageError(f"The quantity must be from 0 to {MAX_QUANTITY:,}.")
    if recorded_at.tzinfo is None:
        raise UsageError("The time must say its timezone (Z for UTC, or an offset such as +01:00).")
    if recorded_at > now + FUTURE_SLACK:
        raise UsageError(f"The time {_show(recorded_at)} is in the future.")
    if recorded_at < open_since:
        raise UsageError(f"The time {_show(recorded_at)} is in a closed billing period: usage is taken from "
                         f"{_show(open_since)} on.")
    return price


def lines(prices: Sequence[MeteredPrice], sums: Mapping[str, int]) -> tuple[UsageLine, ...]:
    """One line per metered price of the plan, in the plan's order (0 units where nothing was used)."""
    return tuple(UsageLine(price, sums.get(price.metric, 0)) for price in prices)


def _show(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


# --- the CSV upload ----------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class CsvRow:
    line: int  # in the file, the header being line 1
    subscription_id: int
    metric: str
    quantity: int
    recorded_at: datetime
    idempotency_key: str


def parse_csv(text: str) -> tuple[list[CsvRow], list[str]]:
    """The rows of an upload and the problems, each naming its line. Rows are only good if problems is empty."""
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if header is None:
            return [], ["The file is empty; its first line must be " + ",".join(CSV_HEADER) + "."]
        if tuple(cell.strip().lower() for cell in header) != CSV_HEADER:
            return [], ["Line 1: the header must be " + ",".join(CSV_HEADER) + "."]
        return _rows(reader)
    except csv.Error as error:
        return [], [f"Line {reader.line_num}: this is not valid CSV ({error})."]


def _rows(reader: Any) -> tuple[list[CsvRow], list[str]]:
    """The data rows of a csv.reader past its header (line numbers are the file's, quoted line breaks too)."""
    rows: list[CsvRow] = []
    problems: list[str] = []
    seen: dict[tuple[int, str], int] = {}
    for cells in reader:
        number = reader.line_num
        if not any(cell.strip() for cell in cells):
            continue
        if len(rows) + len(problems) >= MAX_ROWS:
            return [], [f"The file has more than {MAX_ROWS:,} rows; split it into smaller files."]
        try:
            row = parse_row(number, cells)
        except UsageError as error:
            problems.append(f"Line {number}: {error.message}")
            continue
        first = seen.setdefault((row.subscription_id, row.idempotency_key), number)
        if first != number:
            problems.append(f"Line {number}: the key {row.idempotency_key!r} is already used on line {first}.")
            continue
        rows.append(row)
    if not rows and not problems:
        problems.append("The file has a header but no rows.")
    return rows, problems


def parse_row(number: int, cells: Sequence[str]) -> CsvRow:
    """One row's cells, checked for shape (the subscription's rules are checked when it is recorded)."""
    if len(cells) != len(CSV_HEADER):
        raise UsageError(f"expected {len(CSV_HEADER)} fields ({', '.join(CSV_HEADER)}), found {len(cells)}.")
    subscription, metric, quantity, timestamp, key = (cell.strip() for cell in cells)
    if not _DIGITS.fullmatch(subscription) or int(subscription) == 0 or int(subscription) >= 2**31:
        raise UsageError(f"the subscription id {subscription[:20]!r} is not a subscription number.")
    if not _METRIC.fullmatch(metric):
        raise UsageError(f"the metric {metric[:70]!r} is not a metric name (lower-case letters, digits and _).")
    if not _DIGITS.fullmatch(quantity) or int(quantity) > MAX_QUANTITY:
        raise UsageError(f"the quantity {quantity[:20]!r} must be a whole number from 0 to {MAX_QUANTITY:,}.")
    if not _KEY.fullmatch(key):
        raise UsageError(f"the idempotency key must be 1 to {MAX_KEY} printable characters without spaces.")
    return CsvRow(number, int(subscription), metric, int(quantity), parse_time(timestamp), key)


def parse_time(text: str) -> datetime:
    """An ISO 8601 time with its offset (`2027-01-15T09:30:00Z`, `2027-01-15T09:30:00+01:00`), in UTC."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"the time {text[:40]!r} is not ISO 8601; write e.g. 2027-01-15T09:30:00Z.") from None
    if moment.tzinfo is None:
        raise UsageError(f"the time {text[:40]!r} has no timezone; add Z for UTC or an offset such as +01:00.")
    return moment.astimezone(UTC)


EXAMPLE_CSV: Final = (
    ",".join(CSV_HEADER) + "\n"
    "1042,traffic_gb,120,2027-01-15T00:00:00Z,traffic-1042-2027-01-15\n"
    "1042,snapshot_gb,40,2027-01-15T00:00:00+01:00,snapshots-1042-2027-01-15\n"
)
