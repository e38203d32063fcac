"""Real races on PostgreSQL for usage: the same record sent at once is kept once, and billing runs that overlap
bill each period once (tests/services/test_races.py explains the set-up)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select

from app.clock import now
from app.domain.billing import UsageSource
from app.extensions import db
from app.models import Charge, Tenant, UsageRecord, User
from app.services import usage
from app.services.actors import Actor
from tests import factories
from tests.services.test_races import (  # noqa: F401  (fixtures)
    World,
    at_once,
    pytestmark,
    race_app,
    scalar_count,
    world,
)

AT_ONCE = 8
PRICES = [{"metric": "traffic_gb", "label": "Outgoing traffic", "unit": "GB", "unit_price_minor": 1}]


def metered(place: World) -> int:
    tenant = db.session.get(Tenant, place.tenant_id)
    customer = db.session.get(User, place.user_id)
    plan = factories.plan(tenant, usage_prices=PRICES)
    start = now() - timedelta(days=3)
    subscription = factories.subscription(tenant, customer, plan, activated_at=start, current_period_start=start,
                                          current_period_end=start + timedelta(days=30))
    return subscription.id


def send(place: World, subscription_id: int, at: datetime, quantity: int = 5) -> tuple[str, object]:
    tenant = db.session.get(Tenant, place.tenant_id)
    try:
        row = usage.record(tenant=tenant, actor=Actor.system("meter"), subscription_id=subscription_id,
                           metric="traffic_gb", quantity=quantity, recorded_at=at,
                           idempotency_key="hour-1", source=UsageSource.API)
    except Exception as error:  # reported by the caller, whatever it is
        return ("error", f"{type(error).__name__}: {error}"[:300])
    return ("ok", row.id)


def test_the_same_record_sent_at_once_is_kept_once(race_app, world):  # noqa: F811
    with race_app.app_context():
        subscription_id = metered(world)
    at = now() - timedelta(hours=1)
    results = at_once(race_app, AT_ONCE, lambda _: send(world, subscription_id, at))
    with race_app.app_context():
        ids = db.session.scalars(select(UsageRecord.id).where(UsageRecord.subscription_id == subscription_id)).all()
    assert len(ids) == 1
    assert set(results) == {("ok", ids[0])}, results


def test_overlapping_billing_runs_bill_a_period_once(race_app, world):  # noqa: F811
    with race_app.app_context():
        subscription_id = metered(world)
        assert send(world, subscription_id, now() - timedelta(hours=1), 500)[0] == "ok"
        period_end = db.session.scalar(select(UsageRecord.period_end).where(
            UsageRecord.subscription_id == subscription_id))
    as_of = period_end + timedelta(minutes=1)
    results = at_once(race_app, 4, lambda _: usage.bill_closed_periods(as_of))
    with race_app.app_context():
        assert scalar_count(Charge, Charge.subscription_id == subscription_id) == 1, results
        assert db.session.scalar(select(Charge.amount_minor).where(Charge.subscription_id == subscription_id)) == 500
    assert sorted(results)[-1].startswith("1 usage charges"), results
