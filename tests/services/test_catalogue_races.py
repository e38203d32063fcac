"""Catalogue operations under real concurrency on PostgreSQL: workers racing on one operation touch each
subscription once, and two admins confirming the same replace start one operation.

Like tests/services/test_races.py, this module builds its own app on the test database (threads need their own
connections and see only what the others committed), commits a tenant of its own and deletes it at the end."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from flask import Flask
from sqlalchemy import delete, func, select

from app.domain.accounts import Role
from app.extensions import db
from app.models import CatalogueOperation, OperationStatus, Subscription, SubscriptionEvent, Tenant, User
from app.services import catalogue_lifecycle as service
from app.services.actors import Actor
from app.services.errors import InvalidInput
from app.tasks import huey
from tests import factories
from tests.services.test_races import (  # noqa: F401  (the module's app fixture)
    at_once,
    in_context,
    pytestmark,
    race_app,
)

SUBSCRIPTIONS = 60
WORKERS = 4


@pytest.fixture
def catalogue(race_app: Flask, monkeypatch) -> Iterator[dict[str, int]]:  # noqa: F811
    monkeypatch.setattr(service.work, "later", lambda *args: None)  # the threads below are the workers
    with race_app.app_context():
        tenant = factories.tenant(slug=f"race-{uuid.uuid4().hex[:12]}", name="Race Hosting")
        admins = [factories.user(tenant, role=Role.TENANT_ADMIN) for _ in range(2)]
        source, target = factories.plan(tenant), factories.plan(tenant, price_minor=1490)
        customers = [factories.user(tenant) for _ in range(6)]
        for n in range(SUBSCRIPTIONS):
            factories.subscription(tenant, customers[n % 6], source)
        ids = {"tenant": tenant.id, "source": source.id, "target": target.id, "admin": admins[0].id,
               "other_admin": admins[1].id}
    try:
        yield ids
    finally:
        with race_app.app_context():
            db.session.execute(delete(Tenant).where(Tenant.id == ids["tenant"]))
            db.session.commit()
            huey.storage.flush_schedule()


def start(ids: dict[str, int], admin: str) -> int:
    tenant = db.session.get(Tenant, ids["tenant"])
    actor = Actor(db.session.get(User, ids[admin]))
    return service.start_replace(tenant=tenant, actor=actor, mapping={ids["source"]: ids["target"]}).id


def test_two_admins_confirming_the_same_replace_start_one_operation(race_app, catalogue):  # noqa: F811
    def confirm(index: int) -> int | str:
        try:
            return start(catalogue, "admin" if index == 0 else "other_admin")
        except InvalidInput as refused:
            return refused.message

    results = at_once(race_app, 2, confirm)
    assert sum(isinstance(result, int) for result in results) == 1, results
    assert any("retired plan is final" in str(result) for result in results)


def test_workers_racing_on_one_operation_move_each_subscription_once(race_app, catalogue):  # noqa: F811
    operation_id = in_context(race_app, lambda: start(catalogue, "admin"))

    def work(_: int) -> int:
        steps = 0
        while service.advance(operation_id, chunk=7):
            steps += 1
        return steps

    at_once(race_app, WORKERS, work)

    def outcome() -> tuple[object, ...]:
        operation = db.session.get(CatalogueOperation, operation_id)
        rows = db.session.scalar(select(func.count()).select_from(SubscriptionEvent)  # the moves' records
                                 .where(SubscriptionEvent.operation_id == operation_id))
        moved = db.session.scalar(select(func.count()).select_from(Subscription).where(
            Subscription.plan_id == catalogue["target"], Subscription.version == 2))
        return operation.status, operation.moved, rows, moved

    assert in_context(race_app, outcome) == (OperationStatus.FINISHED, SUBSCRIPTIONS, SUBSCRIPTIONS, SUBSCRIPTIONS)
