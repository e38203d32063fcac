"""A free plan's limit per customer holds when orders race (PostgreSQL: real concurrent transactions).

Built like tests/services/test_races.py, whose app, world and thread helpers it uses."""

from __future__ import annotations

from app.extensions import db
from app.models import Subscription, Tenant, User
from app.services import ordering
from app.services.actors import Actor
from app.services.errors import InvalidInput
from tests import factories
from tests.services.test_races import (  # noqa: F401  (fixtures)
    ORDERS_AT_ONCE,
    at_once,
    in_context,
    pytestmark,
    race_app,
    scalar_count,
    world,
)


def test_free_orders_at_once_hold_the_free_plan_once(race_app, world):  # noqa: F811
    def make_trial() -> int:
        tenant = db.session.get(Tenant, world.tenant_id)
        return factories.plan(tenant, price_minor=0, free_plan_limit=1).id

    trial_id = in_context(race_app, make_trial)

    def order(index: int) -> str:
        tenant = db.session.get(Tenant, world.tenant_id)
        customer = db.session.get(User, world.user_id)
        try:
            ordering.place_order(tenant=tenant, actor=Actor(customer), plan_id=trial_id, requested_config={},
                                 quantity=1, auto_backorder=False, idempotency_key=f"trial-{index}")
        except InvalidInput as error:
            return error.message
        return "ok"

    results = at_once(race_app, ORDERS_AT_ONCE, order)
    assert results.count("ok") == 1, results
    assert all("the most one customer may hold" in r for r in results if r != "ok")
    assert in_context(race_app, lambda: scalar_count(Subscription, Subscription.plan_id == trial_id)) == 1
