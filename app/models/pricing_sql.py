"""The domain's proration rule computed by the database, for statements over many subscriptions at once.

`move_charge_sql` is `app.domain.plan_lifecycle.move_charge` (and through it `app.domain.pricing.prorate`) as SQL
expressions: the same conditions, and the same arithmetic, shared with the Python rule
(`pricing.prorated_lines`: to the whole second, each line rounded half up to the minor unit on its own). Only
reading a stored timestamp differs by dialect (`epoch_microseconds`): SQLite keeps it as UTC text
('YYYY-MM-DD HH:MM:SS.ffffff'), PostgreSQL as timestamptz. tests/services/test_pricing_sql.py proves the SQL
gives exactly what the Python rule gives, on both.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import ColumnElement

from app.domain.pricing import prorated_lines

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_SECOND_US = 1_000_000


class epoch_microseconds(sa.sql.functions.FunctionElement[int]):
    """Whole microseconds since 1970 of a stored UTC timestamp (a column; NULL stays NULL)."""

    type = sa.BigInteger()
    name = "epoch_microseconds"
    inherit_cache = True


@compiles(epoch_microseconds)
def _sqlite_epoch_microseconds(element: epoch_microseconds, compiler: Any, **kw: Any) -> str:
    # SQLite's date functions count milliseconds and round a fraction to them (":00.999999" would read as the next
    # second): the whole seconds are read without the fraction, the six digits after the dot from the text itself.
    value = compiler.process(element.clauses, **kw)
    return (f"(CAST(strftime('%s', substr({value}, 1, 19)) AS INTEGER) * 1000000"
            f" + CAST(substr({value}, 21, 6) AS INTEGER))")


@compiles(epoch_microseconds, "postgresql")
def _postgresql_epoch_microseconds(element: epoch_microseconds, compiler: Any, **kw: Any) -> str:
    return f"CAST(EXTRACT(EPOCH FROM {compiler.process(element.clauses, **kw)}) * 1000000 AS BIGINT)"


def microseconds(moment: datetime) -> ColumnElement[int]:
    """`epoch_microseconds` of a moment known here (a bound integer: nothing for the database to parse)."""
    return sa.literal((moment.astimezone(UTC) - EPOCH) // _MICROSECOND, sa.BigInteger)


def move_charge_sql(old_price: ColumnElement[int], new_price: ColumnElement[int], *, billed: ColumnElement[bool],
                    period_start_us: ColumnElement[int], period_end_us: ColumnElement[int],
                    at: datetime) -> tuple[ColumnElement[int], ColumnElement[int]]:
    """(credit, debit) of `move_charge` for each row: zero when not billed, when the prices are equal, or when
    `at` is outside the row's period (or it has none); otherwise `prorate`'s lines.

    The period's ends come as `epoch_microseconds` of the stored timestamps; reading those is the costly part on
    SQLite (text to parse), so a statement over many rows reads each once, in a materialized common table
    expression, and passes its columns here."""
    start, end, moment = period_start_us, period_end_us, microseconds(at)
    whole = (end - start) // _SECOND_US  # non-negative integers: SQL's integer division is the floor
    remaining = (end - moment) // _SECOND_US
    credit, debit = prorated_lines(sa.cast(old_price, sa.BigInteger), sa.cast(new_price, sa.BigInteger),
                                   remaining, whole)
    charged = sa.and_(billed, old_price != new_price, start.is_not(None), end.is_not(None), start <= moment,
                      moment <= end, start < end)
    return sa.case((charged, credit), else_=0), sa.case((charged, debit), else_=0)
