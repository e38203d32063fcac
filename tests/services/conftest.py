"""Fixtures for the service tests: a complete profile, an orderable plan, the acting customer, the sandbox."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from flask import current_app
from huey.storage import MemoryStorage
from sqlalchemy import func, select

from app.clock import now
from app.extensions import db
from app.models import CustomerProfile, Plan, Subscription, SubscriptionItem, Tenant, User
from app.sandbox.cloud import SandboxCloud, sandbox_for
from app.services import ordering, provisioning
from app.services.actors import Actor
from app.tasks import huey
from tests import factories
from tests.helpers import run_scheduled_tasks

BOOT_SECONDS = 8.0  # SandboxCloud's default boot time
_keys = itertools.count(1)


def complete_profile(user: User, *, card: bool = True) -> CustomerProfile:
    """A billing profile with every field ordering needs, and (unless `card=False`) a saved card for paid plans."""
    profile = CustomerProfile(user_id=user.id, full_name=user.name, billing_email=user.email,
                              address="Bahnhofstrasse 1", postal_code="8001", city="Zürich", country="CH")
    db.session.add(profile)
    db.session.commit()
    if card:
        factories.payment_method(user.tenant, user)
    return profile


def new_key() -> str:
    return f"order-{next(_keys)}"


def place(tenant: Tenant, user: User, plan: Plan, *, config: dict[str, Any] | None = None, quantity: int = 1,
          auto_backorder: bool = False, key: str | None = None, hostname: str | None = None,
          ssh_key_ids: tuple[int, ...] = ()) -> Subscription:
    """Order `plan` as `user` (the immediate-mode task then creates the servers); a name is made up unless
    `hostname` is given."""
    return ordering.place_order(tenant=tenant, actor=Actor(user), plan_id=plan.id,
                                requested_config=config or {}, quantity=quantity,
                                auto_backorder=auto_backorder, idempotency_key=key or new_key(),
                                hostname=hostname, ssh_key_ids=ssh_key_ids)


@contextmanager
def worker_down() -> Iterator[MemoryStorage]:
    """Huey not in immediate mode: tasks are queued (in a private in-memory queue) and nobody runs them.

    Afterwards Huey is back in immediate mode with the storage it had, so tasks put aside before are kept.
    """
    immediate_storage = huey.storage
    huey.immediate = False
    huey.storage = MemoryStorage(huey.name)  # never the shared SQLite queue other processes may read
    try:
        yield huey.storage
    finally:
        huey.immediate = True
        huey.storage = immediate_storage


def place_queued(tenant: Tenant, user: User, plan: Plan, **options: Any) -> Subscription:
    """Order while no worker runs: the subscription and its pending items exist, provisioning is only queued."""
    with worker_down() as queue:
        subscription = place(tenant, user, plan, **options)
        assert queue.queue_size() == len(subscription.items)
    return subscription


def step(item_id: int, attempt: int = 1) -> provisioning.Next | None:
    """One provisioning step, as the worker's task makes it."""
    result = provisioning.advance(item_id, attempt, dns_base_domain=current_app.config["DNS_BASE_DOMAIN"])
    db.session.expire_all()
    return result


def as_worker(job: Callable[..., Any], *args: Any) -> Any:
    """Run a task (or anything that opens its own app context and session) as a separate worker would.

    The test's own session is committed first. Tests share one connection, so a task's session nests its
    savepoints inside whatever savepoint the test's session has open; a later rollback of the test's
    session (services roll back when they refuse) would undo the task's work, which cannot happen with
    the separate connections of production.
    """
    db.session.commit()
    result = job(*args)
    db.session.expire_all()
    return result


def boot(clock) -> None:  # type: ignore[no-untyped-def]
    """Let the sandbox finish booting and run the provisioning polls a worker would run."""
    clock.advance(seconds=BOOT_SECONDS + 1)
    as_worker(run_scheduled_tasks)


def count(model: type, *where: Any) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*where)) or 0


def items_of(subscription: Subscription) -> list[SubscriptionItem]:
    return list(db.session.scalars(select(SubscriptionItem).where(
        SubscriptionItem.subscription_id == subscription.id).order_by(SubscriptionItem.id)))


@pytest.fixture
def profile(customer: User) -> CustomerProfile:
    return complete_profile(customer)


@pytest.fixture
def actor(customer: User) -> Actor:
    return Actor(customer)


@pytest.fixture
def plan(tenant: Tenant) -> Plan:
    """A published monthly Hetzner plan (cx22 in nbg1 by default), 9.90 EUR."""
    return factories.plan(tenant)


@pytest.fixture
def sandbox(tenant: Tenant, clock) -> SandboxCloud:  # type: ignore[no-untyped-def]
    return sandbox_for(tenant.id, "hetzner", now)


@pytest.fixture
def active_subscription(tenant: Tenant, customer: User, profile: CustomerProfile, plan: Plan, sandbox: SandboxCloud,
                        clock) -> Subscription:  # type: ignore[no-untyped-def]
    """An ordered, provisioned and billed subscription of `plan` with one running server."""
    subscription = place(tenant, customer, plan)
    boot(clock)
    db.session.refresh(subscription)
    assert subscription.status.value == "active"
    return subscription
