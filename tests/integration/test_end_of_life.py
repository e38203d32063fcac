"""The end of life on the real adapters and SDKs, against the local fake Hetzner and DigitalOcean APIs over HTTP.

A canceled subscription's server is shut down gracefully (as the clouds do it: ACPI, then off), kept off for the
retention period and then deleted, with nothing left at the cloud, whatever step a worker died at. The fakes
follow the test's frozen clock, so booting, shutting down and retention pass by moving it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from app.clock import FrozenClock
from app.domain.catalogue import ChangeRule, Provider
from app.domain.subscriptions import Action, ItemStatus, SubscriptionStatus
from app.extensions import db
from app.models import CustomerProfile, Subscription, SubscriptionEvent, SubscriptionItem
from app.sandbox import serve
from app.sandbox.digitalocean_api import DigitalOceanFake
from app.sandbox.hetzner_api import HetznerFake
from app.services import decommissioning, lifecycle, ordering, provisioning, reconcile
from app.services.actors import Actor
from app.services.clouds import provider_for
from app.tasks.end_of_life import decommission_item
from tests import factories
from tests.helpers import run_scheduled_tasks
from tests.integration.test_real_adapters import DO_SCHEMA
from tests.sshkeys import added_key

BOOT, ACTION = 8.0, 3.0
PROVIDERS = [Provider.HETZNER, Provider.DIGITALOCEAN]


class AppTime:
    """The fakes' clock: the running test's frozen clock (the wall clock between tests)."""

    def __init__(self) -> None:
        self.clock: FrozenClock | None = None

    def __call__(self) -> datetime:
        return self.clock.now() if self.clock is not None else datetime.now(UTC)


class WorkerDied(Exception):
    """The worker process ended here: whatever it had not committed is lost."""


@pytest.fixture(scope="module")
def app_time() -> AppTime:
    return AppTime()


@pytest.fixture(scope="module")
def fakes(app_time: AppTime):
    fake = {Provider.HETZNER: HetznerFake(clock=app_time, boot_seconds=BOOT, action_seconds=ACTION),
            Provider.DIGITALOCEAN: DigitalOceanFake(clock=app_time, boot_seconds=BOOT, action_seconds=ACTION)}
    served = {provider: serve(api) for provider, api in fake.items()}
    yield fake, served
    for server in served.values():
        server.shutdown()


@pytest.fixture(autouse=True)
def on_the_fakes(app, fakes, app_time, clock, monkeypatch):
    fake, served = fakes
    for api in fake.values():
        api.reset()
    app_time.clock = clock
    monkeypatch.setitem(app.config, "SANDBOX_IN_PROCESS", False)
    monkeypatch.setitem(app.config, "SANDBOX_HETZNER_URL", served[Provider.HETZNER].url + "/v1")
    monkeypatch.setitem(app.config, "SANDBOX_DIGITALOCEAN_URL", served[Provider.DIGITALOCEAN].url + "/v2/")
    monkeypatch.setitem(app.config, "CLOUD_TIMEOUT", 2.0)
    yield
    app_time.clock = None


@pytest.fixture
def buyer(tenant, customer) -> Actor:  # type: ignore[no-untyped-def]
    db.session.add(CustomerProfile(user_id=customer.id, full_name="Casey", billing_email="c@example.com",
                                   address="Road 1", city="Berlin", country="DE"))
    db.session.commit()
    factories.payment_method(tenant, customer)
    return Actor(customer)


def immediate_plan(tenant, provider: Provider):  # type: ignore[no-untyped-def]
    if provider is Provider.HETZNER:
        return factories.plan(tenant, cancellation_rule=ChangeRule.IMMEDIATE)
    droplets = factories.service_type(tenant, provider=Provider.DIGITALOCEAN, config_schema=DO_SCHEMA)
    return factories.plan(tenant, service_type_=droplets, cancellation_rule=ChangeRule.IMMEDIATE,
                          config_defaults={"serverType": "s-1vcpu-1gb", "region": "fra1", "image": "ubuntu-24-04-x64"})


def order(tenant, buyer, provider: Provider, key: str = "k1") -> Subscription:  # type: ignore[no-untyped-def]
    plan = immediate_plan(tenant, provider)
    ssh_key = added_key(tenant, buyer.user, comment=key)  # DigitalOcean servers need one
    return ordering.place_order(tenant=tenant, actor=buyer, plan_id=plan.id, requested_config={}, quantity=1,
                                auto_backorder=False, idempotency_key=key,
                                ssh_key_ids=[ssh_key])  # the create runs now, inline


def item_of(subscription: Subscription) -> SubscriptionItem:
    db.session.expire_all()
    return db.session.scalars(select(SubscriptionItem).where(SubscriptionItem.subscription_id == subscription.id)
                              ).one()


def reloaded(subscription: Subscription) -> Subscription:
    db.session.expire_all()
    return db.session.get(Subscription, subscription.id)  # type: ignore[return-value]


def run_worker(clock: FrozenClock, seconds: float) -> None:
    """Let `seconds` pass and run what the worker put aside meanwhile (provisioning polls, shutdown polls)."""
    clock.advance(seconds=seconds)
    db.session.commit()
    run_scheduled_tasks(rounds=20)
    db.session.expire_all()


def deliver(subscription: Subscription, clock: FrozenClock) -> SubscriptionItem:
    run_worker(clock, BOOT + 1)
    assert reloaded(subscription).status is SubscriptionStatus.ACTIVE
    return item_of(subscription)


def cancel(tenant, customer, subscription: Subscription) -> None:  # type: ignore[no-untyped-def]
    lifecycle.change(tenant=tenant, actor=Actor(customer), subscription_id=subscription.id, action=Action.CANCEL)
    db.session.expire_all()


def servers_at(fake: Any, tenant) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    """The tenant's servers at the fake cloud, with the status the cloud shows ("running"/"active", "off")."""
    if isinstance(fake, HetznerFake):
        return [s for s in fake.state()["servers"] if s["labels"].get("portal-tenant") == tenant.slug]
    return [d for d in fake.state()["droplets"] if f"portal-tenant:{tenant.slug}" in d["tags"]]


def shutdown_requests(fake: Any, server_id: str) -> int:
    if isinstance(fake, HetznerFake):
        return sum(1 for c in fake.calls if (c.method, c.path) == ("POST", f"/v1/servers/{server_id}/actions/shutdown"))
    return sum(1 for r in fake.received if (r.method, r.path, r.body) == (
        "POST", f"/v2/droplets/{server_id}/actions", {"type": "shutdown"}))


def dies_after(monkeypatch: pytest.MonkeyPatch, tenant, provider: Provider, operation: str) -> None:  # type: ignore[no-untyped-def]
    """The adapter's next `operation` reaches the fake cloud; then the worker dies before recording the answer."""
    adapter = provider_for(tenant, provider)  # the kept adapter the services use
    original = getattr(adapter, operation)

    def then_die(*args: Any) -> Any:
        setattr(adapter, operation, original)  # once
        original(*args)
        raise WorkerDied(operation)

    monkeypatch.setattr(adapter, operation, then_die)


def events_of(subscription: Subscription, kind: str) -> int:
    return len(db.session.scalars(select(SubscriptionEvent).where(SubscriptionEvent.subscription_id == subscription.id,
                                                                  SubscriptionEvent.kind == kind)).all())


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_canceled_server_is_shut_down_kept_off_and_deleted_after_retention(tenant, customer, buyer, fakes, clock,
                                                                            provider):
    fake = fakes[0][provider]
    subscription = order(tenant, buyer, provider)
    item = deliver(subscription, clock)
    assert [s["status"] for s in servers_at(fake, tenant)] in (["running"], ["active"])

    cancel(tenant, customer, subscription)

    assert shutdown_requests(fake, item.server_id) == 1  # a graceful shutdown, through the SDK
    run_worker(clock, ACTION + 1)
    [server] = servers_at(fake, tenant)
    assert server["status"] == "off"  # the fake reports it off once the shutdown completed
    item = item_of(subscription)
    assert item.status is ItemStatus.DECOMMISSIONING and item.powered_off_at is not None

    delete_at = reloaded(subscription).servers_delete_at
    clock.set(delete_at - timedelta(minutes=1))
    assert decommissioning.delete_due() == 0 and reconcile.reconcile(tenant.id, provider).deleted == []
    assert len(servers_at(fake, tenant)) == 1

    clock.set(delete_at)
    assert decommissioning.delete_due() == 1
    assert servers_at(fake, tenant) == []
    assert reloaded(subscription).purged_at == delete_at
    requests = len(fake.calls if isinstance(fake, HetznerFake) else fake.received)

    clock.advance(days=1)
    assert decommissioning.delete_due() == 0  # RELIABILITY row 33: once
    assert len(fake.calls if isinstance(fake, HetznerFake) else fake.received) == requests
    assert events_of(subscription, "purged") == 1


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_guest_ignoring_the_shutdown_is_powered_off_after_the_timeout(tenant, customer, buyer, fakes, clock,
                                                                        provider):
    fake = fakes[0][provider]
    subscription = order(tenant, buyer, provider)
    deliver(subscription, clock)
    fake.ignore_shutdown()

    cancel(tenant, customer, subscription)
    run_worker(clock, 60)
    assert [s["status"] for s in servers_at(fake, tenant)] in (["running"], ["active"])  # the guest did nothing

    clock.advance(seconds=decommissioning.SHUTDOWN_TIMEOUT.total_seconds())
    assert decommissioning.stalled() == []  # the chain is alive
    run_worker(clock, 1)  # the power is cut
    run_worker(clock, ACTION + 1)

    assert [s["status"] for s in servers_at(fake, tenant)] == ["off"]
    assert item_of(subscription).powered_off_at is not None
    assert events_of(subscription, "server_forced_off") == 1


@pytest.mark.parametrize("provider", PROVIDERS)
def test_cancel_while_the_server_is_made_but_not_ready_leaves_none(tenant, customer, buyer, fakes, clock, provider):
    fake = fakes[0][provider]
    subscription = order(tenant, buyer, provider)  # created, booting
    assert len(servers_at(fake, tenant)) == 1

    cancel(tenant, customer, subscription)

    assert servers_at(fake, tenant) == []
    run_worker(clock, BOOT + 1)  # the provisioning poll finds the order canceled
    assert servers_at(fake, tenant) == []
    assert item_of(subscription).status is ItemStatus.DECOMMISSIONED


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("cancel_when", ["before the cloud made it", "after the cloud made it"])
def test_cancel_while_the_create_is_in_flight_leaves_none(tenant, customer, buyer, fakes, clock, monkeypatch,
                                                          provider, cancel_when):
    fake = fakes[0][provider]
    from app.tasks import huey

    huey.immediate = False  # the order is taken; its worker starts later
    try:
        subscription = order(tenant, buyer, provider)
    finally:
        huey.immediate = True
    adapter = provider_for(tenant, provider)
    create = adapter.create_server

    def create_while_the_customer_cancels(spec):  # type: ignore[no-untyped-def]
        adapter.create_server = create  # once
        if cancel_when == "before the cloud made it":  # its decommissioning finds nothing to delete yet
            cancel(tenant, customer, subscription)
        made = create(spec)
        if cancel_when == "after the cloud made it":
            cancel(tenant, customer, subscription)
        return made

    monkeypatch.setattr(adapter, "create_server", create_while_the_customer_cancels)
    db.session.commit()
    assert provisioning.advance(item_of(subscription).id, dns_base_domain="cloud.example.test") is None

    assert servers_at(fake, tenant) == []
    item = item_of(subscription)
    assert item.status is ItemStatus.DECOMMISSIONED and item.server_id is not None and item.ready_at is None


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_lost_answer_to_the_shutdown_is_retried_without_harm(tenant, customer, buyer, fakes, clock, provider):
    fake = fakes[0][provider]
    subscription = order(tenant, buyer, provider)
    deliver(subscription, clock)
    fake.lose_next_answer("action", delay=None)  # the shutdown is done, the connection dropped

    cancel(tenant, customer, subscription)
    for _ in range(3):
        run_worker(clock, 30)

    assert [s["status"] for s in servers_at(fake, tenant)] == ["off"]
    assert item_of(subscription).powered_off_at is not None


@pytest.mark.parametrize(("provider", "operation"), [(p, op) for p in PROVIDERS
                                                     for op in ("shutdown", "server_info", "delete_server")])
def test_a_worker_dying_at_any_step_leaves_no_server_after_the_sweeper_reconciler_and_retention(
        tenant, customer, buyer, fakes, clock, monkeypatch, provider, operation):
    fake = fakes[0][provider]
    subscription = order(tenant, buyer, provider)
    deliver(subscription, clock)
    db.session.commit()
    from app.tasks import huey

    huey.immediate = False  # the cancellation's job is queued, then lost with its worker
    try:
        cancel(tenant, customer, subscription)
    finally:
        huey.immediate = True
    item = item_of(subscription)
    if operation == "delete_server":  # dies in the retention job, after the cloud deleted
        run_worker(clock, decommissioning.STALLED_AFTER.total_seconds() + 1)
        for item_id in decommissioning.stalled():
            decommission_item(item_id)
        run_worker(clock, ACTION + 1)
        clock.set(reloaded(subscription).servers_delete_at)
        dies_after(monkeypatch, tenant, provider, operation)
        with pytest.raises(WorkerDied):
            decommissioning.delete_due()
    else:
        dies_after(monkeypatch, tenant, provider, operation)
        with pytest.raises(WorkerDied):
            decommissioning.advance(item.id)
    db.session.rollback()

    # The periodic jobs: the sweeper queues the item again, the reconciler and the retention job run.
    clock.advance(seconds=decommissioning.STALLED_AFTER.total_seconds() + 1)
    for item_id in decommissioning.stalled():
        decommission_item(item_id)
    run_worker(clock, ACTION + 1)
    if operation != "delete_server":
        assert [s["status"] for s in servers_at(fake, tenant)] == ["off"]  # off, kept within retention
        assert reconcile.reconcile(tenant.id, provider).deleted == []
        clock.set(reloaded(subscription).servers_delete_at + timedelta(minutes=1))
    reconcile.reconcile(tenant.id, provider)
    decommissioning.delete_due()

    assert servers_at(fake, tenant) == []
    assert reloaded(subscription).purged_at is not None
    assert item_of(subscription).status is ItemStatus.DECOMMISSIONED
    assert events_of(subscription, "purged") == 1


@pytest.mark.parametrize("provider", PROVIDERS)
def test_flask_jobs_run_retention_as_of_the_deletion_date_leaves_no_server(tenant, customer, buyer, fakes, clock,
                                                                           runner, provider):
    fake = fakes[0][provider]
    subscription = order(tenant, buyer, provider)
    deliver(subscription, clock)
    cancel(tenant, customer, subscription)
    run_worker(clock, ACTION + 1)
    assert [s["status"] for s in servers_at(fake, tenant)] == ["off"]  # off at once, kept for the retention
    delete_at = reloaded(subscription).servers_delete_at
    db.session.commit()

    early = runner.invoke(args=["jobs", "run", "retention", "--as-of", (delete_at - timedelta(hours=1)).isoformat()])
    assert early.exit_code == 0, early.output
    assert len(servers_at(fake, tenant)) == 1

    result = runner.invoke(args=["jobs", "run", "retention", "--as-of", delete_at.isoformat()])
    assert result.exit_code == 0, result.output
    assert "1 subscription purged" in result.output
    assert servers_at(fake, tenant) == []
    again = runner.invoke(args=["jobs", "run", "retention", "--as-of", (delete_at + timedelta(days=1)).isoformat()])
    assert again.exit_code == 0 and "0 subscriptions purged" in again.output
    assert events_of(subscription, "purged") == 1
