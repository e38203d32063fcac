"""Provisioning: app.services.provisioning.advance, billing at delivery, provider faults, backorders, stuck items."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from flask import current_app
from sqlalchemy import select

from app.clock import now
from app.domain.billing import ChargeKind
from app.domain.catalogue import Interval
from app.domain.pricing import period_end
from app.domain.retry import MAX_ATTEMPTS
from app.domain.subscriptions import BackorderStatus, ItemStatus, SubscriptionStatus
from app.extensions import db
from app.models import Backorder, Charge, Subscription, SubscriptionEvent, SubscriptionItem
from app.providers.base import ErrorKind
from app.sandbox.cloud import sandbox_for
from app.services import backorders, provisioning, subscriptions
from app.services.actors import Actor
from app.tasks import huey
from app.tasks.jobs import provision_item, requeue_stuck_items, serve_backorders
from tests import factories
from tests.helpers import run_scheduled_tasks
from tests.services.conftest import (
    BOOT_SECONDS,
    as_worker,
    boot,
    complete_profile,
    count,
    items_of,
    place,
    place_queued,
    step,
    worker_down,
)


def events(kind: str, subscription: Subscription | None = None) -> list[SubscriptionEvent]:
    query = select(SubscriptionEvent).where(SubscriptionEvent.kind == kind)
    if subscription is not None:
        query = query.where(SubscriptionEvent.subscription_id == subscription.id)
    return list(db.session.scalars(query.order_by(SubscriptionEvent.id)))


def charges(subscription: Subscription) -> list[Charge]:
    return list(db.session.scalars(select(Charge).where(Charge.subscription_id == subscription.id)))


def creates(sandbox) -> list[tuple[str, ...]]:  # type: ignore[no-untyped-def]
    return [call for call in sandbox.calls if call[0] == "create_server"]


def run_until_settled(item_id: int, attempt: int = 1) -> list[provisioning.Next]:
    """Call advance as the worker would, each time after the delay it asked for, until it answers None."""
    steps = []
    while (next_step := step(item_id, attempt)) is not None:
        steps.append(next_step)
        attempt = next_step.attempt
        current_app.extensions["clock"].advance(seconds=next_step.delay)
        assert len(steps) <= MAX_ATTEMPTS + 5, "advance never settles"
    return steps


def customer_with_profile(tenant):  # type: ignore[no-untyped-def]
    user = factories.user(tenant)
    complete_profile(user)
    return user


# --- One step at a time --------------------------------------------------------------------------


def test_advance_creates_one_server_with_a_deterministic_name_and_labels(tenant, customer, profile, plan, sandbox):
    subscription = place_queued(tenant, customer, plan, hostname="web")
    [item] = items_of(subscription)
    assert item.status is ItemStatus.PENDING and sandbox.server_count() == 0

    next_step = step(item.id)

    assert next_step == provisioning.Next(provisioning.POLL_SECONDS, 1)  # booting: poll again, not an error
    [server] = sandbox.list_servers()
    # Named at the cloud by its FQDN: the name the customer chose under the tenant's domain.
    fqdn = f"web.default.{current_app.config['DNS_BASE_DOMAIN']}"
    assert server.name == fqdn
    assert server.labels == {"portal-tenant": "default", "portal-item": str(item.id),
                             "portal-subscription": str(subscription.id)}
    assert (server.server_type, server.location) == ("cx22", "nbg1")
    item = db.session.get(SubscriptionItem, item.id)
    assert item.status is ItemStatus.PROVISIONING
    assert item.server_id == server.server_id
    assert (item.hostname, item.fqdn) == ("web", fqdn)
    assert (item.ipv4, item.ipv6) == (server.ipv4, server.ipv6)
    assert item.ipv4 and item.ipv6
    assert [e.kind for e in events("server_created")] == ["server_created"]
    assert count(Charge) == 0


def test_the_fqdn_follows_the_configured_domain(app, tenant, customer, profile, plan, sandbox, monkeypatch):
    monkeypatch.setitem(app.config, "DNS_BASE_DOMAIN", "servers.example.net")
    subscription = place_queued(tenant, customer, plan, hostname="db")
    [item] = items_of(subscription)
    assert item.fqdn == "db.default.servers.example.net"  # known from the order on
    step(item.id)
    assert sandbox.list_servers()[0].name == "db.default.servers.example.net"


def test_an_item_ordered_before_servers_were_named_gets_a_made_up_name(tenant, customer, profile, plan, sandbox):
    subscription = place_queued(tenant, customer, plan)
    [item] = items_of(subscription)
    item.hostname = item.fqdn = None
    db.session.commit()
    provisioning.advance(item.id, dns_base_domain="servers.example.net")
    db.session.expire_all()
    item = db.session.get(SubscriptionItem, item.id)
    name = f"default-s{subscription.id}-i{item.id}"
    assert (item.hostname, item.fqdn) == (name, f"{name}.servers.example.net")
    assert sandbox.list_servers()[0].name == name


def test_polling_before_the_server_booted_changes_nothing(tenant, customer, profile, plan, sandbox, clock):
    subscription = place_queued(tenant, customer, plan)
    [item] = items_of(subscription)
    step(item.id)
    clock.advance(seconds=BOOT_SECONDS - 1)
    assert step(item.id) == provisioning.Next(provisioning.POLL_SECONDS, 1)
    assert db.session.get(SubscriptionItem, item.id).status is ItemStatus.PROVISIONING
    assert len(creates(sandbox)) == 1
    assert count(Charge) == 0


def test_after_boot_the_item_and_subscription_are_active_and_charged_once(tenant, customer, profile, plan, sandbox,
                                                                          clock):
    subscription = place_queued(tenant, customer, plan)
    [item] = items_of(subscription)
    step(item.id)
    delivered = clock.advance(seconds=BOOT_SECONDS + 1)

    assert step(item.id) is None

    subscription = db.session.get(Subscription, subscription.id)
    assert items_of(subscription)[0].status is ItemStatus.ACTIVE
    assert subscription.status is SubscriptionStatus.ACTIVE
    assert subscription.activated_at == delivered
    assert subscription.current_period_start == delivered
    assert subscription.current_period_end == period_end(delivered, Interval.MONTH) == delivered.replace(month=4)
    [charge] = charges(subscription)
    assert charge.kind is ChargeKind.FIRST_PERIOD
    assert (charge.amount_minor, charge.currency) == (subscription.price_minor, "EUR") == (990, "EUR")
    assert (charge.period_start, charge.period_end) == (delivered, subscription.current_period_end)
    assert charge.created_at == delivered
    [activated] = events("activated")
    assert (activated.from_status, activated.to_status) == ("pending_fulfillment", "active")


def test_a_yearly_plan_gets_a_yearly_first_period(tenant, customer, profile, sandbox, clock):
    plan = factories.plan(tenant, interval=Interval.YEAR, price_minor=9900)
    subscription = place(tenant, customer, plan)
    boot(clock)
    subscription = db.session.get(Subscription, subscription.id)
    assert subscription.current_period_end == subscription.activated_at.replace(year=2027)
    [charge] = charges(subscription)
    assert charge.amount_minor == 9900 and charge.period_end == subscription.current_period_end


def test_advance_on_a_settled_item_does_nothing(tenant, customer, profile, plan, sandbox, clock):
    subscription = place(tenant, customer, plan)
    boot(clock)
    [item] = items_of(subscription)
    calls_before = list(sandbox.calls)
    events_before = count(SubscriptionEvent)

    clock.advance(hours=1)
    assert step(item.id) is None
    assert step(item.id, attempt=3) is None

    assert sandbox.calls == calls_before  # not even a provider call
    assert sandbox.server_count() == 1
    assert len(charges(subscription)) == 1
    assert count(SubscriptionEvent) == events_before


def test_an_unknown_item_is_settled(app, tenant, sandbox):
    assert step(123456) is None
    assert sandbox.calls == []


def test_billing_starts_only_when_every_item_is_delivered(tenant, customer, profile, sandbox, clock):
    plan = factories.plan(tenant, quantity_allowed=True, price_minor=500)
    subscription = place_queued(tenant, customer, plan, quantity=2)
    first, second = items_of(subscription)
    step(first.id)
    clock.advance(seconds=BOOT_SECONDS + 1)
    assert step(first.id) is None

    assert db.session.get(Subscription, subscription.id).status is SubscriptionStatus.PENDING_FULFILLMENT
    assert count(Charge) == 0

    step(second.id)
    clock.advance(seconds=BOOT_SECONDS + 1)
    assert step(second.id) is None

    subscription = db.session.get(Subscription, subscription.id)
    assert subscription.status is SubscriptionStatus.ACTIVE
    [charge] = charges(subscription)
    assert charge.amount_minor == subscription.price_minor == 1000
    assert sandbox.server_count() == 2


def test_a_free_plan_is_activated_without_a_charge(tenant, customer, profile, sandbox, clock):
    """BILLING.md: free plans create no charges (the lifecycle applies the rule when it activates)."""
    plan = factories.plan(tenant, price_minor=0)
    subscription = place(tenant, customer, plan)
    boot(clock)
    subscription = db.session.get(Subscription, subscription.id)
    assert subscription.status is SubscriptionStatus.ACTIVE
    assert subscription.current_period_end == period_end(subscription.activated_at, Interval.MONTH)
    assert charges(subscription) == []
    assert count(Charge) == 0


def test_the_worker_task_chain_delivers_the_order(tenant, customer, profile, plan, sandbox, clock):
    subscription = place(tenant, customer, plan)  # the immediate-mode task created the server
    [scheduled] = huey.scheduled()
    assert scheduled.args[0] == items_of(subscription)[0].id  # the next poll is put aside
    boot(clock)
    assert db.session.get(Subscription, subscription.id).status is SubscriptionStatus.ACTIVE
    assert huey.scheduled() == []


# --- Provider faults -----------------------------------------------------------------------------


def test_a_create_that_timed_out_after_succeeding_is_adopted_on_retry(tenant, customer, profile, plan, sandbox,
                                                                      clock):
    """RELIABILITY row 26."""
    sandbox.fail_after_create()
    subscription = place_queued(tenant, customer, plan)
    [item] = items_of(subscription)

    retry = step(item.id)

    assert retry is not None and retry.attempt == 2
    assert sandbox.server_count() == 1  # made, although the answer was lost
    item = db.session.get(SubscriptionItem, item.id)
    assert item.server_id is None and item.status is ItemStatus.PROVISIONING
    assert len(events("provisioning_retry")) == 1

    clock.advance(seconds=retry.delay)
    run_until_settled(item.id, retry.attempt)

    [server] = sandbox.list_servers()
    item = db.session.get(SubscriptionItem, item.id)
    assert item.server_id == server.server_id
    assert item.status is ItemStatus.ACTIVE
    assert [call[1] for call in creates(sandbox)] == [item.fqdn, item.fqdn]
    assert len(charges(db.session.get(Subscription, subscription.id))) == 1


def test_a_lost_create_answer_through_the_task_chain_leaves_one_server(tenant, customer, profile, plan, sandbox,
                                                                       clock):
    sandbox.fail_after_create()
    subscription = place(tenant, customer, plan)
    boot(clock)
    assert db.session.get(Subscription, subscription.id).status is SubscriptionStatus.ACTIVE
    assert sandbox.server_count() == 1
    assert len(creates(sandbox)) == 2
    assert count(Charge) == 1


@pytest.mark.parametrize(("kind", "retry_after"), [(ErrorKind.TRANSIENT, None), (ErrorKind.RATE_LIMITED, 30.0),
                                                   (ErrorKind.RATE_LIMITED, None)])
def test_retryable_errors_are_retried_later_with_a_higher_attempt(tenant, customer, profile, plan, sandbox, kind,
                                                                 retry_after):
    """RELIABILITY row 27: 429 with Retry-After and 5xx are retried with backoff."""
    sandbox.fail_next("create", kind, retry_after=retry_after)
    subscription = place_queued(tenant, customer, plan)
    [item] = items_of(subscription)

    retry = step(item.id, attempt=1)

    assert retry is not None
    assert retry.attempt == 2
    assert retry.delay >= (retry_after or 1.0)  # backoff for attempt 1 is 1-2 s, Retry-After wins when longer
    if retry_after is None:
        assert retry.delay <= 2.0
    [event] = events("provisioning_retry")
    assert event.item_id == item.id and event.data["attempt"] == 1
    assert event.data["error"]
    item = db.session.get(SubscriptionItem, item.id)
    assert item.status is ItemStatus.PROVISIONING and item.server_id is None
    assert sandbox.server_count() == 0

    assert step(item.id, retry.attempt) == provisioning.Next(provisioning.POLL_SECONDS, 2)
    assert sandbox.server_count() == 1


def test_the_task_reschedules_itself_with_the_retry_delay(tenant, customer, profile, plan, sandbox):
    sandbox.fail_next("create", ErrorKind.RATE_LIMITED, retry_after=120)
    subscription = place(tenant, customer, plan)  # the immediate task hits the 429
    [item] = items_of(subscription)
    [scheduled] = huey.scheduled()
    assert tuple(scheduled.args) == (item.id, 2)
    assert scheduled.eta - datetime.now(UTC).replace(tzinfo=None) > timedelta(seconds=110)
    as_worker(run_scheduled_tasks, 1)
    assert sandbox.server_count() == 1


def test_after_max_attempts_the_item_fails_and_nothing_is_charged(tenant, customer, profile, plan, sandbox, clock):
    """RELIABILITY row 27: the bound is reached: failed, the customer is told, nothing is charged."""
    sandbox.fail_next("create", ErrorKind.TRANSIENT, times=MAX_ATTEMPTS)
    subscription = place_queued(tenant, customer, plan)
    [item] = items_of(subscription)

    steps = run_until_settled(item.id)

    assert [s.attempt for s in steps] == list(range(2, MAX_ATTEMPTS + 1))
    item = db.session.get(SubscriptionItem, item.id)
    assert item.status is ItemStatus.FAILED
    assert item.error_message == "The cloud kept failing; we stopped trying. Our staff have been told."
    subscription = db.session.get(Subscription, subscription.id)
    assert subscription.status is SubscriptionStatus.PENDING_FULFILLMENT
    assert subscription.activated_at is None
    assert count(Charge) == 0
    assert len(events("provisioning_retry")) == MAX_ATTEMPTS - 1
    [failed] = events("provisioning_failed")
    assert failed.to_status == "failed" and failed.reason == item.error_message
    assert len(creates(sandbox)) == MAX_ATTEMPTS
    assert sandbox.server_count() == 0
    # Settled: a later call does not try again.
    assert step(item.id) is None
    assert len(creates(sandbox)) == MAX_ATTEMPTS


def test_the_task_chain_gives_up_after_max_attempts(tenant, customer, profile, plan, sandbox, clock):
    sandbox.fail_next("create", ErrorKind.TRANSIENT, times=MAX_ATTEMPTS + 3)
    subscription = place(tenant, customer, plan)
    as_worker(run_scheduled_tasks, MAX_ATTEMPTS + 3)
    assert items_of(subscription)[0].status is ItemStatus.FAILED
    assert len(creates(sandbox)) == MAX_ATTEMPTS
    assert huey.scheduled() == []
    assert count(Charge) == 0


@pytest.mark.parametrize("kind", [ErrorKind.INVALID, ErrorKind.AUTH])
def test_invalid_and_auth_errors_fail_at_once(tenant, customer, profile, plan, sandbox, kind):
    """RELIABILITY rows 27 and 31: 4xx, a revoked token or a quota error fail fast with a clear message."""
    sandbox.fail_next("create", kind, message="Quota exceeded for this project.")
    subscription = place_queued(tenant, customer, plan)
    [item] = items_of(subscription)

    assert step(item.id) is None

    item = db.session.get(SubscriptionItem, item.id)
    assert item.status is ItemStatus.FAILED
    assert item.error_message == "The cloud refused to create the server: Quota exceeded for this project."
    assert events("provisioning_retry") == []
    assert len(creates(sandbox)) == 1
    assert db.session.get(Subscription, subscription.id).status is SubscriptionStatus.PENDING_FULFILLMENT
    assert count(Charge) == 0


def test_sold_out_during_provisioning_with_auto_backorder_goes_to_the_backorder_queue(tenant, customer, profile,
                                                                                      plan, sandbox, clock):
    subscription = place_queued(tenant, customer, plan, auto_backorder=True)
    [item] = items_of(subscription)
    sandbox.set_capacity("cx22", "nbg1", 0)  # the last one went between the order and the worker

    assert step(item.id) is None

    subscription = db.session.get(Subscription, subscription.id)
    assert subscription.status is SubscriptionStatus.PENDING_BACKORDER
    [backorder] = db.session.scalars(select(Backorder)).all()
    assert backorder.subscription_id == subscription.id and backorder.status is BackorderStatus.WAITING
    assert (backorder.server_type, backorder.location) == ("cx22", "nbg1")
    item = db.session.get(SubscriptionItem, item.id)
    assert item.status is ItemStatus.PENDING and item.server_id is None
    [backordered] = events("backordered")
    assert (backordered.from_status, backordered.to_status) == ("pending_fulfillment", "pending_backorder")
    assert sandbox.server_count() == 0
    assert count(Charge) == 0
    # Waiting in the queue: advancing it does not hit the cloud again.
    calls = list(sandbox.calls)
    assert step(item.id) is None
    assert sandbox.calls == calls


def test_sold_out_during_provisioning_without_auto_backorder_fails_the_item(tenant, customer, profile, plan,
                                                                            sandbox):
    subscription = place_queued(tenant, customer, plan, auto_backorder=False)
    [item] = items_of(subscription)
    sandbox.set_capacity("cx22", "nbg1", 0)

    assert step(item.id) is None

    item = db.session.get(SubscriptionItem, item.id)
    assert item.status is ItemStatus.FAILED
    assert "sold out" in item.error_message
    assert db.session.get(Subscription, subscription.id).status is SubscriptionStatus.PENDING_FULFILLMENT
    assert count(Backorder) == 0
    assert count(Charge) == 0


# --- Backorders ----------------------------------------------------------------------------------


def test_a_backorder_is_served_when_capacity_appears_and_billing_starts_then(tenant, customer, profile, plan,
                                                                             sandbox, clock):
    sandbox.set_capacity("cx22", "nbg1", 0)
    ordered_at = clock.now()
    subscription = place(tenant, customer, plan, auto_backorder=True)
    assert backorders.serve_backorders() == []  # still sold out
    clock.advance(hours=5)
    assert count(Charge) == 0

    sandbox.set_capacity("cx22", "nbg1", 1)
    released = backorders.serve_backorders()

    [item] = items_of(subscription)
    assert released == [item.id]
    db.session.expire_all()
    backorder = db.session.scalar(select(Backorder))
    assert backorder.status is BackorderStatus.FULFILLED and backorder.closed_at == clock.now()
    assert len(events("backorder_released")) == 1

    for item_id in released:
        as_worker(provision_item, item_id)
    delivered = clock.advance(seconds=BOOT_SECONDS + 1)
    as_worker(run_scheduled_tasks)

    subscription = db.session.get(Subscription, subscription.id)
    assert subscription.status is SubscriptionStatus.ACTIVE
    assert subscription.activated_at == delivered > ordered_at
    [activated] = events("activated")
    assert (activated.from_status, activated.to_status) == ("pending_backorder", "active")
    [charge] = charges(subscription)
    assert charge.created_at == charge.period_start == delivered
    assert charge.amount_minor == 990
    assert sandbox.server_count() == 1


def test_the_oldest_backorder_gets_the_capacity_first(tenant, customer, profile, plan, sandbox, clock):
    sandbox.set_capacity("cx22", "nbg1", 0)
    customers = [customer, customer_with_profile(tenant), customer_with_profile(tenant)]
    orders = []
    for who in customers:
        orders.append(place(tenant, who, plan, auto_backorder=True))
        clock.advance(minutes=1)
    first_item, second_item, third_item = (items_of(s)[0] for s in orders)

    sandbox.set_capacity("cx22", "nbg1", 1)
    as_worker(serve_backorders.call_local)  # the periodic job: serve the queues, then provision what was released
    db.session.expire_all()

    assert [s.name for s in sandbox.list_servers()] == [first_item.fqdn]
    statuses = [db.session.get(Subscription, s.id).status for s in orders]
    assert statuses == [SubscriptionStatus.PENDING_BACKORDER] * 3  # the first one is booting
    waiting = db.session.scalars(select(Backorder.subscription_id).where(
        Backorder.status == BackorderStatus.WAITING).order_by(Backorder.created_at)).all()
    assert waiting == [orders[1].id, orders[2].id]  # the later ones wait again, keeping their places

    clock.advance(minutes=1)
    sandbox.set_capacity("cx22", "nbg1", 1)
    as_worker(serve_backorders.call_local)
    db.session.expire_all()
    names = [s.name for s in sandbox.list_servers()]
    assert names == [first_item.fqdn, second_item.fqdn]
    waiting = db.session.scalars(select(Backorder.subscription_id).where(
        Backorder.status == BackorderStatus.WAITING)).all()
    assert waiting == [orders[2].id]
    assert db.session.get(SubscriptionItem, third_item.id).server_id is None


def test_backorders_placed_in_the_same_instant_are_served_in_order_of_arrival(tenant, customer, profile, plan,
                                                                              sandbox, clock):
    sandbox.set_capacity("cx22", "nbg1", 0)
    first = place(tenant, customer, plan, auto_backorder=True)
    second = place(tenant, customer_with_profile(tenant), plan, auto_backorder=True)
    sandbox.set_capacity("cx22", "nbg1", 1)

    released = backorders.serve_backorders()

    assert released[0] == items_of(first)[0].id
    assert released.index(items_of(first)[0].id) < released.index(items_of(second)[0].id)


def test_queues_are_per_tenant_server_type_and_location(tenant, other_tenant, customer, profile, sandbox, clock):
    cx22 = factories.plan(tenant)
    cx32 = factories.plan(tenant, config_defaults={"serverType": "cx32", "location": "nbg1"})
    sandbox.set_capacity("cx22", "nbg1", 0)
    sandbox.set_capacity("cx32", "nbg1", 0)
    older_cx22 = place(tenant, customer, cx22, auto_backorder=True)
    clock.advance(minutes=1)
    newer_cx32 = place(tenant, customer, cx32, auto_backorder=True)
    foreigner = customer_with_profile(other_tenant)
    theirs_sandbox = sandbox_for(other_tenant.id, "hetzner", now)
    theirs_sandbox.set_capacity("cx22", "nbg1", 0)
    theirs = place(other_tenant, foreigner, factories.plan(other_tenant), auto_backorder=True)

    sandbox.set_capacity("cx32", "nbg1", 1)
    theirs_sandbox.set_capacity("cx22", "nbg1", 1)
    released = backorders.serve_backorders()

    # The newer cx32 order is not held up by the older, still sold-out cx22 queue; the other tenant's
    # cx22 queue has capacity in its own cloud account.
    assert sorted(released) == sorted([items_of(newer_cx32)[0].id, items_of(theirs)[0].id])
    db.session.expire_all()
    status = {b.subscription_id: b.status for b in db.session.scalars(select(Backorder))}
    assert status == {older_cx22.id: BackorderStatus.WAITING, newer_cx32.id: BackorderStatus.FULFILLED,
                      theirs.id: BackorderStatus.FULFILLED}


def test_a_new_order_does_not_overtake_waiting_backorders(tenant, customer, profile, plan, sandbox, clock):
    sandbox.set_capacity("cx22", "nbg1", 0)
    waiting = place(tenant, customer, plan, auto_backorder=True)
    clock.advance(minutes=10)
    sandbox.set_capacity("cx22", "nbg1", 1)  # one server's worth of capacity is back, the job has not run yet

    latecomer = customer_with_profile(tenant)
    late = place(tenant, latecomer, plan, auto_backorder=True)
    as_worker(serve_backorders.call_local)
    boot(clock)

    assert db.session.get(Subscription, waiting.id).status is SubscriptionStatus.ACTIVE
    assert db.session.get(Subscription, late.id).status is SubscriptionStatus.PENDING_BACKORDER


def test_a_canceled_backorder_is_not_served(tenant, customer, profile, plan, sandbox, clock):
    sandbox.set_capacity("cx22", "nbg1", 0)
    subscription = place(tenant, customer, plan, auto_backorder=True)
    subscriptions.cancel(tenant=tenant, actor=Actor(customer), subscription_id=subscription.id,
                         version=subscription.version)
    sandbox.set_capacity("cx22", "nbg1", None)
    assert backorders.serve_backorders() == []
    assert sandbox.server_count() == 0


# --- Stuck items ---------------------------------------------------------------------------------


def test_items_whose_worker_died_are_found_after_two_minutes_and_then_delivered(tenant, customer, profile, plan,
                                                                                sandbox, clock):
    subscription = place_queued(tenant, customer, plan)  # queued, but the worker died before running it
    [item] = items_of(subscription)
    assert provisioning.unsettled_items() == []

    clock.advance(seconds=provisioning.STUCK_AFTER.total_seconds())
    assert provisioning.unsettled_items() == []  # exactly two minutes is not "more than"
    clock.advance(seconds=1)
    assert provisioning.unsettled_items() == [item.id]

    as_worker(requeue_stuck_items.call_local)  # the periodic job queues it again
    boot(clock)
    assert db.session.get(Subscription, subscription.id).status is SubscriptionStatus.ACTIVE
    assert sandbox.server_count() == 1
    assert provisioning.unsettled_items() == []
    assert count(Charge) == 1


def test_a_server_made_before_the_worker_died_is_adopted_not_doubled(tenant, customer, profile, plan, sandbox, clock):
    """RELIABILITY row 28: the cloud answered, the worker died before the commit."""
    subscription = place_queued(tenant, customer, plan)
    [item] = items_of(subscription)
    item.status = ItemStatus.PROVISIONING  # what advance committed before calling the cloud
    db.session.commit()
    made = sandbox.create_server(provisioning.server_spec(item, tenant, current_app.config["DNS_BASE_DOMAIN"]))  # the answer the worker never stored

    clock.advance(minutes=3)
    assert provisioning.unsettled_items() == [item.id]
    run_until_settled(item.id)

    item = db.session.get(SubscriptionItem, item.id)
    assert item.server_id == made.server_id
    assert item.status is ItemStatus.ACTIVE
    assert sandbox.server_count() == 1
    assert count(Charge) == 1


def test_items_making_progress_or_waiting_for_capacity_are_not_stuck(tenant, customer, profile, plan, sandbox, clock):
    delivered = place(tenant, customer, plan)
    boot(clock)
    sandbox.set_capacity("cx22", "nbg1", 0)
    backordered = place(tenant, customer, plan, auto_backorder=True)
    clock.advance(minutes=30)

    assert provisioning.unsettled_items() == []
    assert db.session.get(Subscription, delivered.id).status is SubscriptionStatus.ACTIVE
    assert db.session.get(Subscription, backordered.id).status is SubscriptionStatus.PENDING_BACKORDER


def test_worker_down_queues_provisioning_without_running_it(tenant, customer, profile, plan, sandbox):
    with worker_down() as queue:
        subscription = place(tenant, customer, plan)
        assert queue.queue_size() == 1
    assert huey.immediate is True
    assert items_of(subscription)[0].status is ItemStatus.PENDING
    assert sandbox.calls == [("check_availability", "cx22", "nbg1")]


# --- Timelines as a worker runs them -------------------------------------------------------------

# PROVISION_TIMEOUT counts from the server's creation, not from the order: an item created long after its order
# (a backorder served later, a reconciled stuck item) must not be failed at its first poll while it boots.


def test_a_backorder_served_after_a_long_wait_is_delivered(tenant, customer, profile, plan, sandbox, clock):
    sandbox.set_capacity("cx22", "nbg1", 0)
    subscription = place(tenant, customer, plan, auto_backorder=True)
    clock.advance(hours=1)
    sandbox.set_capacity("cx22", "nbg1", None)
    [item_id] = backorders.serve_backorders()

    run_until_settled(item_id)  # create, then a poll every 2 s while the server boots for 8 s

    assert db.session.get(SubscriptionItem, item_id).status is ItemStatus.ACTIVE
    assert db.session.get(Subscription, subscription.id).status is SubscriptionStatus.ACTIVE


def test_an_item_reconciled_long_after_its_worker_died_is_delivered(tenant, customer, profile, plan, sandbox,
                                                                    clock):
    subscription = place_queued(tenant, customer, plan)
    clock.advance(minutes=25)
    [item_id] = provisioning.unsettled_items()

    run_until_settled(item_id)

    assert db.session.get(SubscriptionItem, item_id).status is ItemStatus.ACTIVE
    assert db.session.get(Subscription, subscription.id).status is SubscriptionStatus.ACTIVE


def test_a_fresh_order_is_delivered_on_the_workers_timeline(tenant, customer, profile, plan, sandbox, clock):
    subscription = place_queued(tenant, customer, plan)
    [item] = items_of(subscription)
    steps = run_until_settled(item.id)
    assert [s.delay for s in steps] == [provisioning.POLL_SECONDS] * 4  # 8 s boot, polled every 2 s
    assert db.session.get(Subscription, subscription.id).status is SubscriptionStatus.ACTIVE


def test_a_released_backorder_whose_worker_died_is_found_as_stuck(tenant, customer, profile, plan, sandbox, clock):
    sandbox.set_capacity("cx22", "nbg1", 0)
    subscription = place(tenant, customer, plan, auto_backorder=True)
    sandbox.set_capacity("cx22", "nbg1", None)
    released = backorders.serve_backorders()  # committed; the worker dies before provision_item runs
    assert released == [items_of(subscription)[0].id]

    clock.advance(minutes=3)

    assert provisioning.unsettled_items() == released
