"""Invoice numbers under real concurrency on PostgreSQL: finalizations at once take gapless, unique numbers."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from app.clock import now
from app.domain.billing import ChargeKind, InvoiceStatus
from app.extensions import db
from app.models import Charge, Invoice, Tenant
from app.services import invoicing
from tests import factories
from tests.services import test_races as races
from tests.services.test_races import World, at_once

pytestmark = races.pytestmark
race_app, world = races.race_app, races.world  # the fixtures: an app of its own, a committed tenant

AT_ONCE = 8


def drafts_for_eight_customers(world: World) -> list[int]:
    tenant = db.session.get(Tenant, world.tenant_id)
    plan = factories.plan(tenant)
    for n in range(AT_ONCE):
        person = factories.user(tenant, email=f"payer{n}@example.com")
        subscription = factories.subscription(tenant, person, plan)
        db.session.add(Charge(tenant_id=tenant.id, subscription_id=subscription.id, user_id=person.id,
                              kind=ChargeKind.RENEWAL, description="Plan, month", amount_minor=990, currency="EUR",
                              period_start=now() - timedelta(hours=1), period_end=now() + timedelta(days=30),
                              created_at=now()))
    db.session.commit()
    invoicing.gather(now())
    return list(db.session.scalars(select(Invoice.id).where(Invoice.tenant_id == tenant.id)))


def numbers_of(world: World) -> list[str]:
    return sorted(db.session.scalars(select(Invoice.number).where(Invoice.tenant_id == world.tenant_id,
                                                                  Invoice.status == InvoiceStatus.OPEN)))


def expected() -> list[str]:
    return [f"INV-{now().year}-{n:06d}" for n in range(1, AT_ONCE + 1)]


def test_eight_finalizations_at_once_take_gapless_unique_numbers(race_app, world):
    with race_app.app_context():
        drafts = drafts_for_eight_customers(world)
    assert len(drafts) == AT_ONCE

    results = at_once(race_app, AT_ONCE, lambda index: invoicing.finalize(drafts[index]) is not None)

    assert results == [True] * AT_ONCE
    with race_app.app_context():
        assert numbers_of(world) == expected()


def test_eight_billing_runs_at_once_finalize_each_invoice_once(race_app, world):
    with race_app.app_context():
        drafts_for_eight_customers(world)

    results = at_once(race_app, AT_ONCE, lambda _: invoicing.finalize_drafts())

    assert sum(finalized for finalized, _ in results) == AT_ONCE, results
    assert sum(failed for _, failed in results) == 0, results
    with race_app.app_context():
        assert numbers_of(world) == expected()
