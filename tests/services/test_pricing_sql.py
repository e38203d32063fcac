"""The proration the database computes for a bulk replace (app/models/pricing_sql.py) is exactly the domain's
Python rule (`plan_lifecycle.move_charge`, `pricing.prorate`): same seconds, same rounding, same conditions.

Each example stores the period on a subscription and reads it back through SQL, so the timestamps are parsed as
the database keeps them (text on SQLite, timestamptz on PostgreSQL: run with TEST_DATABASE_URL for the latter)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, update

from app.domain.plan_lifecycle import move_charge
from app.domain.subscriptions import SubscriptionStatus
from app.extensions import db
from app.models import Subscription
from app.models.pricing_sql import epoch_microseconds, move_charge_sql
from app.selectors.catalogue_operations import BILLED
from tests import factories

SAMPLE = settings(max_examples=150, deadline=None, database=None, derandomize=True,
                  phases=[Phase.explicit, Phase.generate],
                  suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
US = timedelta(microseconds=1)
starts = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2090, 1, 1), timezones=st.just(UTC))
lengths = st.one_of(st.integers(1_000_000, 3_000_000),  # a second or two, with a fraction
                    st.integers(1_000_000, 400 * 86_400 * 1_000_000))  # up to a yearly period and more
prices = st.one_of(st.integers(0, 100_000), st.integers(0, 2_000_000_000))
statuses = st.sampled_from(list(SubscriptionStatus))


def in_sql(subscription_id: int, old: int, new: int, start: datetime, end: datetime, at: datetime,
           status: SubscriptionStatus) -> tuple[int, int]:
    db.session.execute(update(Subscription).where(Subscription.id == subscription_id).values(
        price_minor=old, current_period_start=start, current_period_end=end, status=status))
    s = Subscription
    credit, debit = move_charge_sql(s.price_minor, s.quantity * new, billed=s.status.in_(BILLED),
                                    period_start_us=epoch_microseconds(s.current_period_start),
                                    period_end_us=epoch_microseconds(s.current_period_end), at=at)
    row = db.session.execute(select(credit, debit).where(s.id == subscription_id)).one()
    return int(row[0]), int(row[1])


@given(start=starts, length=lengths, where=st.one_of(st.floats(-0.2, 1.2), st.sampled_from([0.0, 1.0])),
       old=prices, new=prices, status=statuses)
@example(start=datetime(2030, 1, 1, tzinfo=UTC), length=30 * 86_400_000_000, where=0.5, old=990, new=1490,
         status=SubscriptionStatus.ACTIVE)  # the benchmark's subscriptions: -495 and 745
@example(start=datetime(2030, 1, 1, 0, 0, 0, 999_999, tzinfo=UTC), length=1_000_001, where=1.0, old=1, new=3,
         status=SubscriptionStatus.PENDING_CANCEL)
@SAMPLE
def test_the_database_prorates_as_the_python_rule(tenant, customer, start, length, where, old, new, status):
    subscription = factories.subscription(tenant, customer, factories.plan(tenant))
    end = start + length * US
    at = start + round(length * where) * US
    expected = move_charge(old, new, "EUR", billed=status in BILLED, period_start=start, period_end=end, at=at)
    assert in_sql(subscription.id, old, new, start, end, at, status) == (expected.credit, expected.debit)


def test_no_period_no_charge(tenant, customer):
    subscription = factories.subscription(tenant, customer, factories.plan(tenant), current_period_start=None)
    s = Subscription
    credit, debit = move_charge_sql(s.price_minor, s.price_minor * 2, billed=s.status.in_(BILLED),
                                    period_start_us=epoch_microseconds(s.current_period_start),
                                    period_end_us=epoch_microseconds(s.current_period_end),
                                    at=datetime.now(UTC))
    assert tuple(db.session.execute(select(credit, debit).where(s.id == subscription.id)).one()) == (0, 0)
