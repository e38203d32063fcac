"""Real races on PostgreSQL (RELIABILITY rows 21 and 22): concurrent transactions, one winner, nothing twice.

These cannot run inside the per-test rolled-back transaction of tests/conftest.py: every thread needs its own
connection and sees only what the others committed. So this module builds its own app on the same database
(it never requests the `app` fixture), commits its rows in a tenant of its own and deletes that tenant at the
end (the foreign keys cascade from the tenant).
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import delete, func, select

from app import create_app, tasks
from app.clock import now
from app.config import normalize_database_url
from app.domain.catalogue import Interval
from app.domain.subscriptions import ItemStatus, SubscriptionStatus
from app.extensions import db, dispose_engines
from app.models import (
    CatalogueChange,
    Plan,
    PlanPriceChange,
    Subscription,
    SubscriptionEvent,
    SubscriptionItem,
    Tenant,
    User,
)
from app.sandbox.cloud import reset_sandboxes, sandbox_for
from app.services import cloud_prices, ordering, subscriptions
from app.services.actors import Actor
from app.services.errors import Conflict, InvalidInput
from app.services.subscriptions import RELOAD
from app.tasks import huey
from tests import factories
from tests.conftest import config_for_tests
from tests.services.conftest import complete_profile

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "")

pytestmark = [
    pytest.mark.postgres_only,
    pytest.mark.skipif(not TEST_DATABASE_URL.startswith(("postgres://", "postgresql")),
                       reason="needs PostgreSQL (TEST_DATABASE_URL): row locks and real concurrency"),
]

ORDERS_AT_ONCE = 8
CHANGES_AT_ONCE = 20
JOIN_SECONDS = 20
ATTEMPTS = 3


@pytest.fixture(scope="module")
def race_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    url = normalize_database_url(TEST_DATABASE_URL)
    config = {**config_for_tests(url, str(tmp_path_factory.mktemp("races"))),
              "SQLALCHEMY_ENGINE_OPTIONS": {"pool_size": CHANGES_AT_ONCE + 5, "max_overflow": 5, "pool_timeout": 10}}
    bound_before = tasks._app
    app = create_app(config)  # also binds the app that task bodies run in: this one, while the module runs
    with app.app_context():
        db.create_all()  # a no-op when the session's `app` fixture made the tables already
    try:
        yield app
    finally:
        tasks._app = bound_before
        with app.app_context():
            dispose_engines()


@dataclass(frozen=True)
class World:
    tenant_id: int
    user_id: int
    plan_id: int


@pytest.fixture
def world(race_app: Flask) -> Iterator[World]:
    """A tenant with one customer (complete profile) and one published plan, committed for real."""
    reset_sandboxes()
    with race_app.app_context():
        tenant = factories.tenant(slug=f"race-{uuid.uuid4().hex[:12]}", name="Race Hosting")
        customer = factories.user(tenant, email="racer@example.com", name="Rae Racer")
        complete_profile(customer)
        plan = factories.plan(tenant, interval=Interval.MONTH)
        created = World(tenant.id, customer.id, plan.id)
    try:
        yield created
    finally:
        with race_app.app_context():
            db.session.execute(delete(Tenant).where(Tenant.id == created.tenant_id))
            db.session.commit()
            huey.storage.flush_schedule()
        reset_sandboxes()


def at_once(app: Flask, count: int, work: Callable[[int], Any]) -> list[Any]:
    """Run work(0..count-1) in `count` threads, each in its own app context and session, released together."""
    barrier = threading.Barrier(count, timeout=JOIN_SECONDS)

    def run(index: int) -> Any:
        with app.app_context():
            barrier.wait()
            try:
                return work(index)
            finally:
                db.session.rollback()

    with ThreadPoolExecutor(max_workers=count) as pool:
        futures = [pool.submit(run, index) for index in range(count)]
        return [future.result(timeout=JOIN_SECONDS) for future in futures]


def in_context(app: Flask, work: Callable[[], Any]) -> Any:
    with app.app_context():
        try:
            return work()
        finally:
            db.session.rollback()


def scalar_count(model: type, *where: Any) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*where)) or 0


# --- Row 21: the same order, submitted eight times at once -----------------------------------------


def submit_order(world: World, key: str) -> tuple[str, Any]:
    tenant = db.session.get(Tenant, world.tenant_id)
    customer = db.session.get(User, world.user_id)
    try:
        subscription = ordering.place_order(
            tenant=tenant, actor=Actor(customer), plan_id=world.plan_id, requested_config={}, quantity=1,
            auto_backorder=False, idempotency_key=key)
    except Exception as error:  # reported by the caller, whatever it is
        return ("error", f"{type(error).__name__}: {error}"[:300])
    return ("ok", subscription.id)


def test_the_same_order_submitted_at_once_creates_one_subscription_and_one_server(race_app, world):
    results = at_once(race_app, ORDERS_AT_ONCE, lambda _: submit_order(world, "double-click"))

    with race_app.app_context():
        ids = db.session.scalars(select(Subscription.id).where(Subscription.tenant_id == world.tenant_id)).all()
        assert len(ids) == 1, results
        [subscription_id] = ids
        assert scalar_count(SubscriptionItem, SubscriptionItem.subscription_id == subscription_id) == 1
        assert scalar_count(SubscriptionEvent, SubscriptionEvent.subscription_id == subscription_id,
                            SubscriptionEvent.kind == "ordered") == 1
        sandbox = sandbox_for(world.tenant_id, "hetzner", now)
        assert sandbox.server_count() == 1
        assert [call[0] for call in sandbox.calls].count("create_server") == 1
    # Nobody was given another subscription. (That the losers may get an error instead of this one is the
    # bug shown deterministically by the next test.)
    assert {result for result in results if result[0] == "ok"} == {("ok", subscription_id)}, results


def insert_in_flight_order(connection: Any, world: World, key: str) -> None:
    """The first submission's INSERT, not committed yet (its request is still running)."""
    connection.execute(Subscription.__table__.insert().values(
        tenant_id=world.tenant_id, user_id=world.user_id, plan_id=world.plan_id, status="pending_fulfillment",
        quantity=1, price_minor=990, currency="EUR", interval="month", requested_config={}, auto_renew=True,
        auto_backorder=False, idempotency_key=key, version=1, created_at=now(), updated_at=now()))


def wait_for_blocked_inserts(connection: Any, expected: int) -> None:
    for _ in range(200):
        blocked = connection.exec_driver_sql(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND query LIKE 'INSERT INTO subscriptions%%'").scalar()
        connection.rollback()  # pg_stat_activity is a snapshot per transaction
        if blocked >= expected:
            return
        time.sleep(0.025)
    raise AssertionError(f"expected {expected} INSERTs waiting on the first submission's row lock")


def test_a_submission_racing_an_in_flight_one_gets_the_same_subscription(race_app, world):
    key = "second-tab"
    blocked = 2
    with race_app.app_context():
        first = db.engine.connect()
        monitor = db.engine.connect()
        try:
            transaction = first.begin()
            insert_in_flight_order(first, world, key)
            with ThreadPoolExecutor(max_workers=blocked) as pool:
                futures = [pool.submit(in_context, race_app, lambda: submit_order(world, key))
                           for _ in range(blocked)]
                try:
                    wait_for_blocked_inserts(monitor, blocked)
                finally:
                    transaction.commit()  # the first submission finishes (and never leaves the threads hanging)
                results = [future.result(timeout=JOIN_SECONDS) for future in futures]
            first_id = db.session.scalar(select(Subscription.id).where(Subscription.tenant_id == world.tenant_id,
                                                                       Subscription.idempotency_key == key))
        finally:
            first.close()
            monitor.close()
        assert scalar_count(Subscription, Subscription.tenant_id == world.tenant_id) == 1
    assert results == [("ok", first_id)] * blocked


# --- Row 22: twenty cancel / resume requests at once -----------------------------------------------


def active_subscription(world: World) -> int:
    start = now()
    subscription = Subscription(
        tenant_id=world.tenant_id, user_id=world.user_id, plan_id=world.plan_id,
        status=SubscriptionStatus.ACTIVE, quantity=1, price_minor=990, currency="EUR", interval=Interval.MONTH,
        requested_config={"serverType": "cx22", "location": "nbg1"}, idempotency_key="race-22",
        activated_at=start, current_period_start=start, current_period_end=start + timedelta(days=30),
    )
    db.session.add(subscription)
    db.session.commit()
    return subscription.id


def test_parallel_cancel_and_resume_end_in_a_state_some_serial_order_gives(race_app, world):
    with race_app.app_context():
        subscription_id = active_subscription(world)
        start_version = db.session.get(Subscription, subscription_id).version

    def change(index: int) -> list[tuple[str, str]]:
        """Alternately cancel or resume with the version last read; told to reload, reload and try again."""
        tenant = db.session.get(Tenant, world.tenant_id)
        actor = Actor(db.session.get(User, world.user_id))
        action = "cancel" if index % 2 == 0 else "resume"
        service = subscriptions.cancel if action == "cancel" else subscriptions.resume
        outcomes: list[tuple[str, str]] = []
        for _ in range(ATTEMPTS):
            version = db.session.scalar(select(Subscription.version).where(Subscription.id == subscription_id))
            db.session.commit()  # what the page showed; the request comes later, in a transaction of its own
            try:
                service(tenant=tenant, actor=actor, subscription_id=subscription_id, version=version)
            except Conflict as error:
                outcomes.append(("conflict", error.message))
                continue
            except InvalidInput as error:
                outcomes.append(("invalid", error.message))
            except Exception as error:  # reported below, whatever it is
                outcomes.append(("error", f"{type(error).__name__}: {error}"[:300]))
            else:
                outcomes.append(("ok", action))
            break
        return outcomes

    results = [outcome for outcomes in at_once(race_app, CHANGES_AT_ONCE, change) for outcome in outcomes]

    assert not [r for r in results if r[0] == "error"], results
    applied = [action for outcome, action in results if outcome == "ok"]
    assert applied, results  # someone always wins
    conflicts = [message for outcome, message in results if outcome == "conflict"]
    refusals = [message for outcome, message in results if outcome == "invalid"]
    assert set(conflicts) <= {RELOAD}
    assert set(refusals) <= {"This subscription is not set to cancel, so there is nothing to resume.",
                             "This subscription is already set to cancel at the period's end."}, refusals

    with race_app.app_context():
        subscription = db.session.get(Subscription, subscription_id)
        events = db.session.scalars(select(SubscriptionEvent).where(
            SubscriptionEvent.subscription_id == subscription_id,
            SubscriptionEvent.kind.in_(("cancel", "resume"))).order_by(SubscriptionEvent.id)).all()
        # Each applied change is recorded once and bumped the version once.
        assert len(events) == len(applied)
        assert sorted(e.kind for e in events) == sorted(applied)
        assert subscription.version == start_version + len(applied)
        # Replaying the recorded events in order is a valid serial history ending in the stored state.
        state = "active"
        for event in events:
            assert event.from_status == state
            assert (event.kind, event.to_status) == (("cancel", "pending_cancel") if state == "active"
                                                     else ("resume", "active"))
            state = event.to_status
        assert subscription.status.value == state
        if subscription.status is SubscriptionStatus.PENDING_CANCEL:
            assert subscription.effective_at == subscription.current_period_end
        else:
            assert subscription.effective_at is None


# --- A tenant admin's suspension racing the customer's immediate cancel ---------------------------------------


def test_suspend_racing_a_customers_cancel_ends_in_a_state_some_serial_order_gives(race_app, world):
    from app.domain.accounts import Role
    from app.domain.catalogue import ChangeRule
    from app.models import Plan

    with race_app.app_context():
        subscription_id = active_subscription(world)
        db.session.get(Plan, world.plan_id).cancellation_rule = ChangeRule.IMMEDIATE
        admin = factories.user(db.session.get(Tenant, world.tenant_id), email="boss@example.com",
                               role=Role.TENANT_ADMIN)
        admin_id = admin.id
        db.session.commit()

    def act(index: int) -> tuple[str, str]:
        tenant = db.session.get(Tenant, world.tenant_id)
        try:
            if index % 2 == 0:
                subscriptions.suspend(tenant=tenant, actor=Actor(db.session.get(User, admin_id)),
                                      subscription_id=subscription_id, reason="Abuse report")
                return ("ok", "suspend")
            subscriptions.cancel(tenant=tenant, actor=Actor(db.session.get(User, world.user_id)),
                                 subscription_id=subscription_id)
            return ("ok", "cancel")
        except (Conflict, InvalidInput) as error:
            return ("refused", error.message)
        except Exception as error:  # reported below, whatever it is
            return ("error", f"{type(error).__name__}: {error}"[:300])

    results = at_once(race_app, 8, act)

    assert not [r for r in results if r[0] == "error"], results
    with race_app.app_context():
        subscription = db.session.get(Subscription, subscription_id)
        events = db.session.scalars(select(SubscriptionEvent).where(
            SubscriptionEvent.subscription_id == subscription_id,
            SubscriptionEvent.kind.in_(("suspend", "cancel"))).order_by(SubscriptionEvent.id)).all()
        applied = [kind for outcome, kind in results if outcome == "ok"]
        assert sorted(e.kind for e in events) == sorted(applied)
        # Serial orders: suspend then cancel (suspended -> canceled), or cancel first (then suspend is refused).
        assert [(e.kind, e.from_status, e.to_status) for e in events] in (
            [("suspend", "active", "suspended"), ("cancel", "suspended", "canceled")],
            [("cancel", "active", "canceled")],
        )
        assert subscription.status is SubscriptionStatus.CANCELED
        assert subscription.servers_delete_at is not None


# --- A customer's cancel racing the provisioning that delivers the server -----------------------------------


def pending_order(world: World, key: str) -> tuple[int, int]:
    """An order whose server nobody has started to create yet: (subscription id, item id)."""
    subscription = Subscription(
        tenant_id=world.tenant_id, user_id=world.user_id, plan_id=world.plan_id,
        status=SubscriptionStatus.PENDING_FULFILLMENT, quantity=1, price_minor=990, currency="EUR",
        interval=Interval.MONTH, requested_config={"serverType": "cx22", "location": "nbg1"}, idempotency_key=key)
    db.session.add(subscription)
    db.session.flush()
    item = SubscriptionItem(tenant_id=world.tenant_id, subscription_id=subscription.id, provider="hetzner",
                            config=subscription.requested_config)
    db.session.add(item)
    db.session.commit()
    return subscription.id, item.id


@pytest.mark.parametrize("head_start", [0.0, 0.01, 0.05])
def test_cancel_racing_provisioning_leaves_no_running_server_and_no_charge_for_nothing(race_app, world,
                                                                                     monkeypatch, head_start):
    from app.models import Charge
    from app.services import decommissioning, provisioning

    monkeypatch.setitem(race_app.config, "SANDBOX_BOOT_SECONDS", 0.0)
    monkeypatch.setitem(race_app.config, "SANDBOX_ACTION_SECONDS", 0.0)
    with race_app.app_context():
        from app.domain.catalogue import ChangeRule
        from app.models import Plan

        db.session.get(Plan, world.plan_id).cancellation_rule = ChangeRule.IMMEDIATE  # ends at once, either way
        subscription_id, item_id = pending_order(world, f"race-provision-{head_start}")

    def act(index: int) -> tuple[str, str]:
        try:
            if index == 0:
                for _ in range(10):  # the worker, step after step until the item is settled
                    if provisioning.advance(item_id, dns_base_domain="cloud.example.test") is None:
                        break
                return ("ok", "provisioned")
            time.sleep(head_start)
            subscriptions.cancel(tenant=db.session.get(Tenant, world.tenant_id),
                                 actor=Actor(db.session.get(User, world.user_id)), subscription_id=subscription_id)
            return ("ok", "canceled")
        except (Conflict, InvalidInput) as error:
            return ("refused", error.message)
        except Exception as error:  # reported below, whatever it is
            return ("error", f"{type(error).__name__}: {error}"[:300])

    results = at_once(race_app, 2, act)
    assert not [r for r in results if r[0] == "error"], results

    with race_app.app_context():
        for _ in range(10):  # whatever end of life the loser left queued, as the worker runs it
            if decommissioning.advance(item_id) is None:
                break
        db.session.expire_all()
        subscription = db.session.get(Subscription, subscription_id)
        item = db.session.get(SubscriptionItem, item_id)
        sandbox = sandbox_for(world.tenant_id, "hetzner", now)
        assert subscription.status is SubscriptionStatus.CANCELED, results
        charges = scalar_count(Charge, Charge.subscription_id == subscription_id)
        if subscription.activated_at is None:  # the cancel came first: nothing was delivered, nothing is left
            assert item.status is ItemStatus.DECOMMISSIONED and sandbox.server_count() == 0, results
            assert charges == 0
        else:  # the server was delivered first: it is billed once, switched off and kept for the retention
            assert item.status is ItemStatus.DECOMMISSIONING and item.ready_at is not None, results
            assert sandbox.server_count() == 1 and charges == 1
            assert sandbox.server_info(item.server_id).power.value == "off"


# --- The deletion-ahead email, asked for by several workers at once ---------------------------------------------


def test_workers_warning_of_a_deletion_at_once_send_one_email(race_app, world):
    from app.models import EmailMessage
    from app.services import decommissioning

    with race_app.app_context():
        start = now() - timedelta(days=5)
        subscription = Subscription(
            tenant_id=world.tenant_id, user_id=world.user_id, plan_id=world.plan_id,
            status=SubscriptionStatus.CANCELED, quantity=1, price_minor=990, currency="EUR",
            interval=Interval.MONTH, requested_config={}, activated_at=start, canceled_at=start,
            effective_at=start, servers_delete_at=now() + timedelta(days=2))
        db.session.add(subscription)
        db.session.flush()
        db.session.add(SubscriptionItem(tenant_id=world.tenant_id, subscription_id=subscription.id,
                                        status=ItemStatus.DECOMMISSIONING, provider="hetzner", config={},
                                        hostname="kept-1", server_id="42", ready_at=start))
        db.session.commit()
        subscription_id = subscription.id

    told = at_once(race_app, 8, lambda _: decommissioning.warn_of_deletions())

    assert sum(told) == 1, told
    with race_app.app_context():
        assert scalar_count(EmailMessage, EmailMessage.subscription_id == subscription_id,
                            EmailMessage.event == "deletion_ahead") == 1


# --- Two tabs ask for a server's root password at once: one sees it ----------------------------------------


def test_two_tabs_revealing_the_root_password_at_once_show_it_once(race_app, world):
    from app.services import server_access
    from app.services.secrets import seal

    with race_app.app_context():
        customer = db.session.get(User, world.user_id)
        subscription = factories.subscription(db.session.get(Tenant, world.tenant_id), customer,
                                              db.session.get(Plan, world.plan_id))
        item = SubscriptionItem(tenant_id=world.tenant_id, subscription_id=subscription.id, provider="hetzner",
                                status=ItemStatus.ACTIVE, server_id="1", hostname="tabs",
                                root_password_sealed=seal("correct-horse-battery"))
        db.session.add(item)
        db.session.commit()
        ids = (subscription.id, item.id)

    def reveal(_: int) -> str | None:
        return server_access.reveal_root_password(
            tenant=db.session.get(Tenant, world.tenant_id), actor=Actor(db.session.get(User, world.user_id)),
            subscription_id=ids[0], item_id=ids[1])

    results = at_once(race_app, 6, reveal)

    assert [r for r in results if r is not None] == ["correct-horse-battery"] and results.count(None) == 5, results
    with race_app.app_context():
        assert db.session.get(SubscriptionItem, ids[1]).root_password_sealed is None
        assert scalar_count(SubscriptionEvent, SubscriptionEvent.kind == "root_password_shown",
                            SubscriptionEvent.subscription_id == ids[0]) == 1


# --- Cloud prices: two admins apply the same preview at once ---------------------------------------


def test_two_admins_applying_one_price_import_at_once_apply_it_once(race_app, world):
    def setup() -> tuple[int, str]:
        tenant = db.session.get(Tenant, world.tenant_id)
        boss = factories.user(tenant, role=factories.Role.TENANT_ADMIN)
        preview = cloud_prices.preview_import(tenant=tenant, actor=Actor(boss), plan_id=world.plan_id,
                                              markup_bp=2000, server_types=["cx22"])
        return boss.id, preview.fingerprint

    boss_id, fingerprint = in_context(race_app, setup)

    def apply(_: int) -> str:
        tenant = db.session.get(Tenant, world.tenant_id)
        try:
            cloud_prices.apply_import(tenant=tenant, actor=Actor(db.session.get(User, boss_id)),
                                      plan_id=world.plan_id, markup_bp=2000, server_types=["cx22"],
                                      fingerprint=fingerprint, confirmed=True)
        except Conflict:
            return "conflict"
        return "applied"

    assert sorted(at_once(race_app, 2, apply)) == ["applied", "conflict"]

    def check() -> None:
        assert scalar_count(PlanPriceChange, PlanPriceChange.plan_id == world.plan_id) == 1
        assert scalar_count(CatalogueChange, CatalogueChange.entity_id == world.plan_id,
                            CatalogueChange.action == "prices_imported") == 1
        plan = db.session.get(Plan, world.plan_id)
        assert [(p.server_type, p.price_minor, p.cost_minor) for p in plan.prices] == [("cx22", 551, 459)]

    in_context(race_app, check)
