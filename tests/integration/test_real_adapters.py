"""The portal end to end on the real adapters and SDKs, against the local fake APIs over HTTP.

Faults from RELIABILITY rows 26-31 are injected at the fake cloud; what the customer and the staff see,
what was charged and what servers exist afterwards are checked.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from app.clock import now
from app.domain.catalogue import Provider
from app.domain.retry import MAX_ATTEMPTS
from app.domain.subscriptions import ItemStatus, SubscriptionStatus
from app.extensions import db
from app.models import Charge, CustomerProfile, Subscription, SubscriptionItem
from app.providers.base import ServerSpec
from app.sandbox import serve
from app.sandbox.digitalocean_api import DigitalOceanFake
from app.sandbox.hetzner_api import HetznerFake
from app.services import credentials, ordering, provisioning, reconcile, servers
from app.services.actors import Actor
from app.services.clouds import provider_for
from app.services.errors import Conflict, ServiceError
from app.services.servers import PowerCommand
from tests import factories
from tests.helpers import post_form
from tests.sshkeys import added_key

DO_SCHEMA = {
    "type": "object",
    "required": ["serverType", "region", "image"],
    "properties": {
        "serverType": {"type": "string", "enum": ["s-1vcpu-1gb", "s-2vcpu-4gb"]},
        "region": {"type": "string", "enum": ["fra1", "ams3", "sgp1"]},
        "image": {"type": "string", "enum": ["ubuntu-24-04-x64"]},
    },
}
TENANT_TOKEN = "tenant-own-token-0123456789abcdef"


@pytest.fixture(scope="module")
def fakes():
    hetzner, digitalocean = HetznerFake(boot_seconds=0.0, action_seconds=0.5), DigitalOceanFake(boot_seconds=0.0,
                                                                                                action_seconds=0.5)
    real_hetzner = HetznerFake(boot_seconds=0.0, token=TENANT_TOKEN)  # plays the real API for tenants' own tokens
    served = [serve(hetzner), serve(digitalocean), serve(real_hetzner)]
    yield {"hetzner": hetzner, "digitalocean": digitalocean, "real_hetzner": real_hetzner, "served": served}
    for server in served:
        server.shutdown()


@pytest.fixture(autouse=True)
def sandbox_is_the_fakes(app, fakes, monkeypatch):
    for fake in ("hetzner", "digitalocean", "real_hetzner"):
        fakes[fake].reset()
    urls = [server.url for server in fakes["served"]]
    monkeypatch.setitem(app.config, "SANDBOX_IN_PROCESS", False)
    monkeypatch.setitem(app.config, "SANDBOX_HETZNER_URL", urls[0] + "/v1")
    monkeypatch.setitem(app.config, "SANDBOX_DIGITALOCEAN_URL", urls[1] + "/v2/")
    monkeypatch.setitem(app.config, "HETZNER_API_URL", urls[2] + "/v1")
    monkeypatch.setitem(app.config, "CLOUD_TIMEOUT", 2.0)


@pytest.fixture
def buyer(tenant, customer):
    db.session.add(CustomerProfile(user_id=customer.id, full_name="Casey", billing_email="c@example.com",
                                   address="Road 1", city="Berlin", country="DE"))
    db.session.commit()
    factories.payment_method(tenant, customer)
    return Actor(customer)


def order(tenant, actor, plan, key="k1", ssh_key_ids=None, **config):
    """Order as `actor`; on DigitalOcean, which needs a key, with a new key of theirs unless keys are given."""
    if ssh_key_ids is None:
        digitalocean = plan.service_type.provider is Provider.DIGITALOCEAN
        ssh_key_ids = [added_key(tenant, actor.user, comment=key)] if digitalocean else []
    return ordering.place_order(tenant=tenant, actor=actor, plan_id=plan.id, requested_config=config, quantity=1,
                                auto_backorder=False, idempotency_key=key, ssh_key_ids=ssh_key_ids)


def advance(item_id, attempt=1):
    db.session.expire_all()
    return provisioning.advance(item_id, attempt, dns_base_domain="cloud.example.test")


def item_of(subscription_id) -> SubscriptionItem:
    db.session.expire_all()
    return db.session.scalar(select(SubscriptionItem).where(SubscriptionItem.subscription_id == subscription_id))


def charges(subscription_id) -> int:
    return db.session.scalar(select(func.count()).select_from(Charge).where(Charge.subscription_id == subscription_id))


def settle(subscription_id):
    item = item_of(subscription_id)
    for _ in range(5):
        if advance(item.id) is None:
            break
    return item_of(subscription_id)


def test_an_order_on_hetzner_is_provisioned_through_hcloud(tenant, buyer, fakes):
    plan = factories.plan(tenant, allow_customer_location_selection=True)
    subscription = order(tenant, buyer, plan, location="hel1")
    item = settle(subscription.id)
    assert item.status is ItemStatus.ACTIVE and item.fqdn == f"{item.hostname}.{tenant.slug}.cloud.example.test"
    [server] = fakes["hetzner"].state()["servers"]
    assert server["name"] == item.fqdn and server["location"]["name"] == "hel1"
    assert server["labels"]["portal-item"] == str(item.id) and server["labels"]["portal-tenant"] == tenant.slug
    assert item.ipv4 == server["public_net"]["ipv4"]["ip"]
    assert db.session.get(Subscription, subscription.id).status is SubscriptionStatus.ACTIVE
    assert charges(subscription.id) == 1


def test_an_order_on_digitalocean_is_provisioned_through_python_digitalocean(tenant, buyer, fakes):
    droplets = factories.service_type(tenant, provider=Provider.DIGITALOCEAN, config_schema=DO_SCHEMA)
    plan = factories.plan(tenant, service_type_=droplets, allow_customer_location_selection=True,
                          config_defaults={"serverType": "s-1vcpu-1gb", "region": "fra1", "image": "ubuntu-24-04-x64"})
    subscription = order(tenant, buyer, plan, region="ams3")
    item = settle(subscription.id)
    assert item.status is ItemStatus.ACTIVE and item.ipv4
    [droplet] = fakes["digitalocean"].state()["droplets"]
    assert droplet["region"]["slug"] == "ams3" and f"portal-item:{item.id}" in droplet["tags"]


def test_a_sold_out_location_offers_alternatives_from_the_live_offers(tenant, buyer, fakes):
    plan = factories.plan(tenant, allow_customer_location_selection=True)
    fakes["hetzner"].set_capacity("cx22", "hel1", 0)
    with pytest.raises(ordering.Unavailable) as refused:
        order(tenant, buyer, plan, location="hel1")
    choices = {(alt.server_type, alt.location) for alt in refused.value.availability.alternatives}
    assert ("cx22", "fsn1") in choices and ("cx32", "hel1") in choices
    assert fakes["hetzner"].state()["servers"] == []


def test_row26_a_create_whose_answer_was_lost_is_adopted_not_repeated(tenant, buyer, fakes):
    plan = factories.plan(tenant)
    fakes["hetzner"].lose_next_answer("create", delay=None)  # made, then the connection dropped
    subscription = order(tenant, buyer, plan)  # the first attempt runs now and loses the answer
    item = settle(subscription.id)
    assert item.status is ItemStatus.ACTIVE
    assert len(fakes["hetzner"].state()["servers"]) == 1


def test_row27_a_rate_limit_is_retried_no_sooner_than_retry_after(tenant, buyer, fakes):
    from app.tasks import huey

    plan = factories.plan(tenant)
    fakes["hetzner"].fail_next("create", 429, retry_after=30, times=3)  # more than hcloud's own (bounded) retries
    subscription = order(tenant, buyer, plan, key="rate")  # the first attempt meets the 429
    [retry] = huey.scheduled()
    assert (retry.eta - now().replace(tzinfo=None)).total_seconds() >= 29
    assert item_of(subscription.id).status is ItemStatus.PROVISIONING
    assert settle(subscription.id).status is ItemStatus.ACTIVE  # the retry, once due, succeeds


def test_row27_5xx_retries_are_bounded_then_the_item_fails_uncharged(tenant, buyer, fakes):
    plan = factories.plan(tenant)
    fakes["hetzner"].fail_next("create", 503, times=50)
    subscription = order(tenant, buyer, plan, key="down")
    item = item_of(subscription.id)
    attempt, delays = 2, []
    while (step := advance(item.id, attempt)) is not None:
        delays.append(step.delay)
        attempt = step.attempt
    item = item_of(subscription.id)
    assert attempt == MAX_ATTEMPTS and item.status is ItemStatus.FAILED
    assert "kept failing" in item.error_message
    assert charges(subscription.id) == 0 and fakes["hetzner"].state()["servers"] == []


def test_row27_a_4xx_is_not_retried(tenant, buyer, fakes):
    plan = factories.plan(tenant)
    fakes["hetzner"].fail_next("create", 422, "invalid_input", "image not found", times=1)
    subscription = order(tenant, buyer, plan, key="bad")
    item = item_of(subscription.id)
    assert item.status is ItemStatus.FAILED and "refused" in item.error_message
    assert charges(subscription.id) == 0


def test_row28_a_server_made_before_the_worker_died_is_adopted_and_orphans_are_deleted(tenant, buyer, fakes, clock):
    from app.tasks import huey

    clock.set(datetime.now(UTC))
    plan = factories.plan(tenant)
    huey.immediate = False  # the order is taken, but no worker runs
    try:
        subscription = order(tenant, buyer, plan, key="died")
    finally:
        huey.immediate = True
    item = item_of(subscription.id)
    spec = provisioning.server_spec(item, tenant, "cloud.example.test")
    cloud = provider_for(tenant, Provider.HETZNER)
    cloud.create_server(spec)  # the cloud answered; the worker died before the commit
    orphan = ServerSpec(name="default-s999-i999", server_type="cx22", location="nbg1", image="ubuntu-24.04",
                        labels={"portal-tenant": tenant.slug, "portal-item": "999999"})
    cloud.create_server(orphan)  # an order rolled back after its server was made
    clock.advance(minutes=11)  # both servers are old enough that no create can still be committing
    report = reconcile.reconcile(tenant.id, Provider.HETZNER)
    assert len(report.adopted) == 1 and len(report.deleted) == 1
    names = [server["name"] for server in fakes["hetzner"].state()["servers"]]
    assert names == [spec.name]
    assert item_of(subscription.id).server_id == report.adopted[0]


def test_row29_a_server_deleted_in_the_console_is_marked_for_staff(tenant, buyer, fakes, client, admin, auth):
    plan = factories.plan(tenant)
    subscription = order(tenant, buyer, plan, key="gone")
    item = settle(subscription.id)
    fakes["hetzner"].delete_out_of_band(item.server_id)
    report = reconcile.reconcile(tenant.id, Provider.HETZNER)
    assert report.missing == [item.id]
    item = item_of(subscription.id)
    assert item.status is ItemStatus.FAILED and "deleted outside the portal" in item.error_message
    assert reconcile.reconcile(tenant.id, Provider.HETZNER).missing == []  # once
    auth.login(admin.email)
    page = client.get("/admin/servers").get_data(as_text=True)
    assert item.hostname in page and "deleted outside the portal" in page


def test_row30_a_power_action_while_another_runs_is_answered_busy(tenant, buyer, fakes):
    plan = factories.plan(tenant)
    subscription = order(tenant, buyer, plan, key="busy")
    item = settle(subscription.id)
    kwargs = {"tenant": tenant, "actor": buyer, "subscription_id": subscription.id, "item_id": item.id}
    before = len(fakes["hetzner"].state()["actions"])
    servers.power(command=PowerCommand.STOP, **kwargs)
    with pytest.raises(Conflict, match="Another action"):
        servers.power(command=PowerCommand.RESTART, **kwargs)
    assert len(fakes["hetzner"].state()["actions"]) == before + 1  # the refused restart started nothing


def test_row31_a_revoked_token_refuses_new_orders_clearly(tenant, buyer, fakes, admin):
    credentials.set_token(tenant=tenant, actor=Actor(admin), provider=Provider.HETZNER, token=TENANT_TOKEN)
    fakes["real_hetzner"].set_token("rotated-elsewhere-0123456789")
    with pytest.raises(ServiceError, match="cloud account needs attention"):
        order(tenant, buyer, factories.plan(tenant), key="revoked")
    assert db.session.scalar(select(func.count()).select_from(Subscription)) == 0


def test_row31_a_token_revoked_during_provisioning_fails_at_once(tenant, buyer, fakes, admin):
    from app.tasks import huey

    credentials.set_token(tenant=tenant, actor=Actor(admin), provider=Provider.HETZNER, token=TENANT_TOKEN)
    huey.immediate = False
    try:
        subscription = order(tenant, buyer, factories.plan(tenant), key="revoked-later")
    finally:
        huey.immediate = True
    fakes["real_hetzner"].set_token("rotated-elsewhere-0123456789")
    item = item_of(subscription.id)
    assert advance(item.id) is None  # no retry
    item = item_of(subscription.id)
    assert item.status is ItemStatus.FAILED and "token" in item.error_message
    assert charges(subscription.id) == 0


def test_row31_each_tenant_uses_only_its_own_account(tenant, other_tenant, buyer, fakes, admin):
    credentials.set_token(tenant=tenant, actor=Actor(admin), provider=Provider.HETZNER, token=TENANT_TOKEN)
    plan = factories.plan(tenant)
    settle(order(tenant, buyer, plan, key="own").id)
    stranger = factories.user(other_tenant)
    db.session.add(CustomerProfile(user_id=stranger.id, full_name="S", billing_email="s@example.com",
                                   address="Way 2", city="Oslo", country="NO"))
    db.session.commit()
    factories.payment_method(other_tenant, stranger)
    foreign = order(other_tenant, Actor(stranger), factories.plan(other_tenant), key="theirs")
    settle(foreign.id)
    own = [s["labels"]["portal-tenant"] for s in fakes["real_hetzner"].state()["servers"]]
    sandbox = [s["labels"]["portal-tenant"] for s in fakes["hetzner"].state()["servers"]]
    assert own == [tenant.slug] and sandbox == [other_tenant.slug]


def test_the_order_form_checks_availability_live(client, tenant, buyer, customer, auth, fakes):
    plan = factories.plan(tenant, allow_customer_location_selection=True)
    fakes["hetzner"].set_capacity("cx32", "fsn1", 0)
    auth.login(customer.email)
    ok = client.get(f"/order/{plan.id}/availability?serverType=cx22&location=fsn1").get_data(as_text=True)
    sold = client.get(f"/order/{plan.id}/availability?serverType=cx32&location=fsn1").get_data(as_text=True)
    assert "Available now" in ok and "sold out" in sold and "cx32 in" in sold
    response = post_form(client, f"/order/{plan.id}", {"serverType": "cx32", "location": "fsn1", "quantity": 1,
                                                         "idempotency_key": "form"})
    assert response.status_code == 409 and "sold out" in response.get_data(as_text=True)


# --- Resizing through the SDKs ---------------------------------------------------------------------


def resize_through(item_id, wanted):
    from app.services import resizing

    item = item_of_id(item_id)
    item.config = {**item.config, "server_type": wanted}
    db.session.commit()
    for _ in range(40):
        db.session.expire_all()
        if resizing.advance(item_id) is None:
            return item_of_id(item_id)
        time.sleep(0.2)  # the fakes' actions take half a second of real time
    raise AssertionError("the resize did not settle")


def item_of_id(item_id) -> SubscriptionItem:
    db.session.expire_all()
    return db.session.get(SubscriptionItem, item_id)


def test_a_hetzner_server_changes_type_through_hcloud_and_runs_again(tenant, buyer, fakes):
    plan = factories.plan(tenant)
    item = settle(order(tenant, buyer, plan).id)
    assert item.server_type_actual == "cx22"

    item = resize_through(item.id, "cx32")

    assert (item.server_type_actual, item.resize_step, item.resize_error) == ("cx32", None, None)
    [server] = fakes["hetzner"].state()["servers"]
    assert (server["server_type"]["name"], server["status"], server["primary_disk_size"]) == ("cx32", "running", 80)
    assert fakes["hetzner"].received(server["id"])["type_changes"] == [{"server_type": "cx32", "upgrade_disk": True}]


def test_a_hetzner_refusal_to_shrink_the_disk_is_shown_and_the_server_runs_again(tenant, buyer, fakes):
    item = settle(order(tenant, buyer, factories.plan(tenant)).id)
    item = resize_through(item.id, "cx32")

    item = resize_through(item.id, "cx22")

    assert item.resize_step == "failed" and "disk" in item.resize_error
    time.sleep(0.6)
    [server] = fakes["hetzner"].state()["servers"]
    assert (server["server_type"]["name"], server["status"]) == ("cx32", "running")


def test_a_droplet_is_resized_through_python_digitalocean(tenant, buyer, fakes):
    droplets = factories.service_type(tenant, provider=Provider.DIGITALOCEAN, config_schema=DO_SCHEMA)
    plan = factories.plan(tenant, service_type_=droplets,
                          config_defaults={"serverType": "s-1vcpu-1gb", "region": "fra1", "image": "ubuntu-24-04-x64"})
    item = settle(order(tenant, buyer, plan).id)

    item = resize_through(item.id, "s-2vcpu-4gb")

    assert (item.server_type_actual, item.resize_step) == ("s-2vcpu-4gb", None)
    [droplet] = fakes["digitalocean"].state()["droplets"]
    assert (droplet["size_slug"], droplet["status"], droplet["disk"]) == ("s-2vcpu-4gb", "active", 80)
