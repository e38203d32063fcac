"""A real Huey consumer, in threads, on a SQLite queue: an order is provisioned with nobody calling the tasks."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator

import pytest
from huey.storage import SqliteStorage
from sqlalchemy import select

from app import create_app, tasks
from app.domain.subscriptions import ItemStatus, SubscriptionStatus
from app.extensions import db, dispose_engines
from app.models import Charge, CustomerProfile, Subscription
from app.services import ordering
from app.services.actors import Actor
from app.tasks import huey
from app.tasks.worker import start_beside_web_server
from tests import factories
from tests.conftest import config_for_tests


@pytest.fixture
def worker_app(tmp_path) -> Iterator[object]:
    """An app on its own SQLite file (the consumer's threads need real commits, not the test transaction)."""
    url = f"sqlite:///{tmp_path}/worker.sqlite3"
    app = create_app({**config_for_tests(url, str(tmp_path)), "SANDBOX_BOOT_SECONDS": 0.2})
    previous = tasks._app
    huey.immediate = False
    huey.storage = SqliteStorage("portal", filename=str(tmp_path / "queue.sqlite3"))
    with app.app_context():
        db.create_all()
    try:
        yield app
    finally:
        huey.immediate = True  # back to the in-memory queue of the rest of the suite
        tasks._app = previous
        with app.app_context():
            dispose_engines()


def wait_for(predicate, timeout: float = 20.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_a_real_consumer_provisions_an_order(worker_app):
    with worker_app.app_context():
        tenant = factories.tenant(slug="default", hosts=["localhost"])
        customer = factories.user(tenant)
        db.session.add(CustomerProfile(user_id=customer.id, full_name="W", billing_email="w@example.com",
                                       address="Road 1", city="Town", country="DE"))
        factories.payment_method(tenant, customer)
        plan = factories.plan(tenant)
        subscription = ordering.place_order(tenant=tenant, actor=Actor(customer), plan_id=plan.id,
                                            requested_config={}, quantity=1, auto_backorder=False,
                                            idempotency_key="worker-test")
        subscription_id = subscription.id
    assert len(huey) == 1  # queued, not run: nobody but the consumer runs it

    consumer = start_beside_web_server(workers=2)
    try:
        def delivered() -> bool:
            with worker_app.app_context():
                found = db.session.get(Subscription, subscription_id)
                return found is not None and found.status is SubscriptionStatus.ACTIVE

        assert wait_for(delivered), "the consumer did not provision the order"
    finally:
        consumer.stop(graceful=True)
        signal.signal(signal.SIGINT, signal.default_int_handler)

    with worker_app.app_context():
        found = db.session.get(Subscription, subscription_id)
        assert [item.status for item in found.items] == [ItemStatus.ACTIVE]
        assert found.items[0].server_id and found.items[0].ipv4
        charges = db.session.scalars(select(Charge).where(Charge.subscription_id == subscription_id)).all()
        assert [c.amount_minor for c in charges] == [found.price_minor]
