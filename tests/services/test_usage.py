"""Recording usage (one record, a CSV upload) and billing closed periods (app.services.usage)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from app.domain.billing import ChargeKind, UsageSource
from app.extensions import db
from app.models import Charge, UsageRecord
from app.services import billing_run, usage
from app.services.actors import Actor
from app.services.errors import Conflict, Forbidden, InvalidInput, NotFound
from tests import factories

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
PRICES = [{"metric": "traffic_gb", "label": "Outgoing traffic", "unit": "GB", "unit_price_minor": 2,
           "included": 100},
          {"metric": "snapshot_gb", "label": "Snapshots", "unit": "GB-month", "unit_price_minor": 1}]


@pytest.fixture
def metered(tenant, customer, clock):  # type: ignore[no-untyped-def]
    plan = factories.plan(tenant, price_minor=300, usage_prices=PRICES)
    return factories.subscription(tenant, customer, plan, price_minor=300, activated_at=START,
                                  current_period_start=START, current_period_end=datetime(2026, 4, 1, 12, tzinfo=UTC))


def put(tenant, admin, subscription, quantity=10, *, at=None, key="k1", metric="traffic_gb"):  # type: ignore[no-untyped-def]
    return usage.record(tenant=tenant, actor=Actor(admin), subscription_id=subscription.id, metric=metric,
                        quantity=quantity, recorded_at=at or datetime(2026, 3, 10, tzinfo=UTC),
                        idempotency_key=key, source=UsageSource.API)


def count(model) -> int:  # type: ignore[no-untyped-def]
    return db.session.scalar(select(func.count()).select_from(model)) or 0


def test_a_record_is_kept_with_its_period(tenant, admin, metered):  # type: ignore[no-untyped-def]
    row = put(tenant, admin, metered, 42)
    assert (row.quantity, row.metric, row.created_by_id) == (42, "traffic_gb", admin.id)
    assert (row.period_start, row.period_end) == (START, datetime(2026, 4, 1, 12, tzinfo=UTC))
    assert row.billed_at is None


def test_the_same_key_and_values_return_the_first_record(tenant, admin, metered):  # type: ignore[no-untyped-def]
    first = put(tenant, admin, metered, 42)
    assert put(tenant, admin, metered, 42).id == first.id
    assert count(UsageRecord) == 1


def test_the_same_key_with_other_values_is_refused(tenant, admin, metered):  # type: ignore[no-untyped-def]
    put(tenant, admin, metered, 42)
    with pytest.raises(Conflict, match="already used"):
        put(tenant, admin, metered, 43)


def test_usage_of_a_closed_period_is_refused(tenant, admin, metered):  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidInput, match="closed billing period"):
        put(tenant, admin, metered, at=START - timedelta(seconds=1))


def test_usage_in_the_future_and_unknown_metrics_are_refused(tenant, admin, metered, clock):  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidInput, match="future"):
        put(tenant, admin, metered, at=clock.now() + timedelta(minutes=6))
    with pytest.raises(InvalidInput, match="no metric 'cpu'"):
        put(tenant, admin, metered, metric="cpu")
    assert count(UsageRecord) == 0


def test_another_tenants_subscription_is_not_found(other_tenant, tenant, admin, metered):  # type: ignore[no-untyped-def]
    with pytest.raises(NotFound):
        put(other_tenant, admin, metered)


def test_a_customer_and_support_may_not_record_usage(tenant, customer, support, metered):  # type: ignore[no-untyped-def]
    for person in (customer, support):
        with pytest.raises(Forbidden):
            put(tenant, person, metered)
    with pytest.raises(Forbidden):
        usage.import_csv(tenant=tenant, actor=Actor(customer), text="")


def csv_of(*rows: str) -> str:
    return "subscription_id,metric,quantity,timestamp,idempotency_key\n" + "\n".join(rows) + "\n"


def test_an_upload_with_one_bad_row_records_nothing(tenant, admin, metered):  # type: ignore[no-untyped-def]
    text = csv_of(f"{metered.id},traffic_gb,5,2026-03-10T00:00:00Z,a",
                  f"{metered.id},cpu,5,2026-03-10T00:00:00Z,b",
                  f"{metered.id},traffic_gb,5,2026-02-10T00:00:00Z,c",
                  "999999,traffic_gb,5,2026-03-10T00:00:00Z,d")
    outcome = usage.import_csv(tenant=tenant, actor=Actor(admin), text=text)
    assert not outcome.ok
    assert [problem.split(":")[0] for problem in outcome.problems] == ["Line 3", "Line 4", "Line 5"]
    assert count(UsageRecord) == 0


def test_an_upload_records_every_row_and_reports_repeats(tenant, admin, metered):  # type: ignore[no-untyped-def]
    put(tenant, admin, metered, 5, key="a")
    text = csv_of(f"{metered.id},traffic_gb,5,2026-03-10T00:00:00Z,a",
                  f"{metered.id},snapshot_gb,7,2026-03-10T01:00:00+01:00,b")
    outcome = usage.import_csv(tenant=tenant, actor=Actor(admin), text=text)
    assert (outcome.ok, outcome.recorded, outcome.already) == (True, 1, 1)
    assert count(UsageRecord) == 2


def test_closed_periods_become_one_charge_per_metric_once(tenant, admin, metered, clock):  # type: ignore[no-untyped-def]
    put(tenant, admin, metered, 150, key="t1")
    put(tenant, admin, metered, 50, key="t2", at=datetime(2026, 3, 12, tzinfo=UTC))
    put(tenant, admin, metered, 30, key="s1", metric="snapshot_gb")
    assert usage.bill_closed_periods(clock.now()) == "no usage due"
    clock.set(datetime(2026, 4, 1, 12, tzinfo=UTC))
    assert usage.bill_closed_periods(clock.now()) == "2 usage charges from 1 subscriptions"
    charges = {c.usage_metric: c for c in db.session.scalars(select(Charge).where(Charge.kind == ChargeKind.USAGE))}
    traffic = charges["traffic_gb"]
    assert (traffic.quantity, traffic.unit_amount_minor, traffic.amount_minor) == (100, 2, 200)  # 200 - 100 included
    assert (traffic.period_start, traffic.user_id, traffic.invoice_id) == (START, metered.user_id, None)
    assert charges["snapshot_gb"].amount_minor == 30
    assert usage.bill_closed_periods(clock.now()) == "no usage due"
    assert count(Charge) == 2


def test_a_rerun_after_a_crash_creates_nothing_twice(tenant, admin, metered, clock):  # type: ignore[no-untyped-def]
    put(tenant, admin, metered, 300, key="t1")
    clock.set(datetime(2026, 4, 2, tzinfo=UTC))
    usage.bill_closed_periods(clock.now())
    db.session.execute(UsageRecord.__table__.update().values(billed_at=None))  # as if the marking was lost
    assert usage.bill_closed_periods(clock.now()) == "0 usage charges from 1 subscriptions"
    assert count(Charge) == 1


def test_a_billed_period_takes_no_more_usage(tenant, admin, metered, clock):  # type: ignore[no-untyped-def]
    put(tenant, admin, metered, 300, key="t1")
    usage.bill_closed_periods(datetime(2026, 4, 1, 12, tzinfo=UTC))  # a run ahead of time, as a demo does
    with pytest.raises(InvalidInput, match="billed already"):
        put(tenant, admin, metered, 1, key="late")
    assert put(tenant, admin, metered, 300, key="t1").quantity == 300  # a replay still answers


def test_after_the_period_ends_usage_goes_to_the_next_one(tenant, admin, metered, clock):  # type: ignore[no-untyped-def]
    clock.set(datetime(2026, 4, 3, tzinfo=UTC))  # not renewed yet
    with pytest.raises(InvalidInput, match="closed"):
        put(tenant, admin, metered, at=datetime(2026, 3, 30, tzinfo=UTC))
    row = put(tenant, admin, metered, at=datetime(2026, 4, 2, tzinfo=UTC))
    assert row.period_start == datetime(2026, 4, 1, 12, tzinfo=UTC)


def test_the_billing_run_bills_usage_first(tenant, admin, metered, clock):  # type: ignore[no-untyped-def]
    assert billing_run.steps()[0] is usage.bill_closed_periods
    put(tenant, admin, metered, 300, key="t1")
    clock.set(datetime(2026, 4, 2, tzinfo=UTC))
    assert usage.bill_closed_periods(clock.now(), user_id=admin.id) == "no usage due"
    assert usage.bill_closed_periods(clock.now(), user_id=metered.user_id).startswith("1 usage charges")
