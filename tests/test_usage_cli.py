"""`flask usage record` and `flask usage import`: usage from the command line, with clear refusals."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import UsageRecord
from tests import factories

START = datetime(2026, 3, 1, 12, tzinfo=UTC)
PRICES = [{"metric": "traffic_gb", "label": "Outgoing traffic", "unit": "GB", "unit_price_minor": 2}]


@pytest.fixture
def metered(tenant, customer, clock):  # type: ignore[no-untyped-def]
    plan = factories.plan(tenant, usage_prices=PRICES)
    return factories.subscription(tenant, customer, plan, activated_at=START, current_period_start=START,
                                  current_period_end=datetime(2026, 4, 1, 12, tzinfo=UTC))


def usage(runner, *args: str):  # type: ignore[no-untyped-def]
    db.session.commit()
    return runner.invoke(args=["usage", *args])


def records() -> int:
    return db.session.scalar(select(func.count()).select_from(UsageRecord)) or 0


def test_record_twice_records_once(runner, metered):  # type: ignore[no-untyped-def]
    args = [str(metered.id), "traffic_gb", "12", "--at", "2026-03-10T08:00:00+01:00", "--tenant", "default"]
    first = usage(runner, "record", *args)
    assert first.exit_code == 0, first.output
    assert "12 traffic_gb of subscription" in first.output and "2026-03-10 07:00:00 UTC" in first.output
    assert usage(runner, "record", *args).exit_code == 0
    assert records() == 1


@pytest.mark.parametrize(("args", "message"), [
    (["1", "traffic_gb", "1", "--tenant", "nope"], "There is no tenant 'nope'."),
    (["99999", "traffic_gb", "1", "--tenant", "default"], "There is no such subscription."),
    (["{id}", "cpu", "1", "--tenant", "default"], "The plan has no metric 'cpu'"),
    (["{id}", "traffic_gb", "1", "--at", "2026-02-01T00:00:00Z", "--tenant", "default"], "closed billing period"),
    (["{id}", "traffic_gb", "1", "--at", "2026-03-10T00:00:00", "--tenant", "default"], "does not say which timezone"),
    (["{id}", "traffic_gb", "1.5", "--tenant", "default"], "is not a valid integer"),
])
def test_refusals_are_clear(runner, metered, args, message):  # type: ignore[no-untyped-def]
    result = usage(runner, "record", *[arg.format(id=metered.id) for arg in args])
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output


def test_import_a_file(runner, metered, tmp_path):  # type: ignore[no-untyped-def]
    good = tmp_path / "usage.csv"
    good.write_text("subscription_id,metric,quantity,timestamp,idempotency_key\n"
                    f"{metered.id},traffic_gb,5,2026-03-10T00:00:00Z,a\n")
    result = usage(runner, "import", str(good), "--tenant", "default")
    assert (result.exit_code, result.output) == (0, "1 records recorded, 0 already recorded.\n")
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"\xff\xfe\x00binary")
    result = usage(runner, "import", str(bad), "--tenant", "default")
    assert result.exit_code == 1 and "not UTF-8" in result.output
    bad.write_text("subscription_id,metric,quantity,timestamp,idempotency_key\n"
                   f"{metered.id},traffic_gb,5,2026-03-10T00:00:00Z,b\n{metered.id},cpu,5,2026-03-10T00:00:00Z,c\n")
    result = usage(runner, "import", str(bad), "--tenant", "default")
    assert result.exit_code == 1 and "Nothing was recorded" in result.output and "Line 3: The plan has no metric" \
        in result.output
    assert records() == 1
