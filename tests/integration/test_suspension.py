"""Suspend and reinstate on the real adapters against the fake clouds (RELIABILITY row 32).

A suspended subscription's servers are powered off at the cloud, kept with their data, and powered on again
when it is reinstated within the grace period; nothing is deleted and nothing is made twice.
"""

from __future__ import annotations

import time
from datetime import timedelta

from app.domain.catalogue import Provider
from app.domain.subscriptions import ItemStatus, SubscriptionStatus
from app.extensions import db
from app.models import Subscription
from app.services import subscriptions
from app.services.actors import Actor
from tests import factories
from tests.helpers import run_scheduled_tasks
from tests.integration.test_real_adapters import (  # noqa: F401  (fixtures)
    DO_SCHEMA,
    buyer,
    fakes,
    order,
    sandbox_is_the_fakes,
    settle,
)


def server_status(fake, server_name: str, wanted: str, seconds: float = 5.0) -> str:
    """The fake's status of the server, waiting (the fake's actions take real time) for `wanted`."""
    deadline = time.monotonic() + seconds
    while True:
        [server] = [s for s in fake.state()["servers"] if s["name"] == server_name]
        status = server["status"]
        if status == wanted or time.monotonic() > deadline:
            return status
        run_scheduled_tasks()  # a power action answered "busy" is retried by the queue
        time.sleep(0.1)


def test_suspend_then_reinstate_on_day_29_on_hetzner(tenant, admin, buyer, fakes, clock):  # noqa: F811
    plan = factories.plan(tenant)
    subscription = order(tenant, buyer, plan, key="suspend-hetzner")
    item = settle(subscription.id)
    assert item.status is ItemStatus.ACTIVE
    [before] = fakes["hetzner"].state()["servers"]

    subscriptions.suspend(tenant=tenant, actor=Actor(admin), subscription_id=subscription.id, reason="Unpaid")
    assert server_status(fakes["hetzner"], item.fqdn, "off") == "off"

    clock.advance(days=29)
    subscriptions.reinstate(tenant=tenant, actor=Actor(admin), subscription_id=subscription.id,
                            reason="Paid on day 29")
    assert server_status(fakes["hetzner"], item.fqdn, "running") == "running"

    [after] = fakes["hetzner"].state()["servers"]
    assert after["id"] == before["id"] and after["public_net"] == before["public_net"]
    assert after["labels"] == before["labels"]
    db.session.expire_all()
    fresh = db.session.get(Subscription, subscription.id)
    assert fresh.status is SubscriptionStatus.ACTIVE
    assert [(i.server_id, i.status) for i in fresh.items] == [(item.server_id, ItemStatus.ACTIVE)]


def test_suspend_then_reinstate_on_digitalocean(tenant, admin, buyer, fakes, clock):  # noqa: F811
    droplets = factories.service_type(tenant, provider=Provider.DIGITALOCEAN, config_schema=DO_SCHEMA)
    plan = factories.plan(tenant, service_type_=droplets,
                          config_defaults={"serverType": "s-1vcpu-1gb", "region": "fra1", "image": "ubuntu-24-04-x64"})
    subscription = order(tenant, buyer, plan, key="suspend-do")
    item = settle(subscription.id)
    fake = fakes["digitalocean"]

    subscriptions.suspend(tenant=tenant, actor=Actor.system("billing"), subscription_id=subscription.id,
                          reason="Payment failed", grace_ends_at=clock.now() + timedelta(days=30))
    [droplet] = fake.state()["droplets"]
    deadline = time.monotonic() + 5
    while droplet["status"] != "off" and time.monotonic() < deadline:
        run_scheduled_tasks()
        time.sleep(0.1)
        [droplet] = fake.state()["droplets"]
    assert droplet["status"] == "off"

    clock.advance(days=29)
    subscriptions.reinstate(tenant=tenant, actor=Actor.system("billing"), subscription_id=subscription.id,
                            reason="Paid")
    deadline = time.monotonic() + 5
    while droplet["status"] != "active" and time.monotonic() < deadline:
        run_scheduled_tasks()
        time.sleep(0.1)
        [droplet] = fake.state()["droplets"]
    assert droplet["status"] == "active" and str(droplet["id"]) == item.server_id
