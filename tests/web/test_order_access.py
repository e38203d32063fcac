"""The order form's server name and SSH keys: suggested and preselected, kept on errors, refused clearly."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from app.clock import now
from app.domain.catalogue import Provider
from app.domain.ssh_keys import CONFIG_KEY
from app.extensions import db
from app.models import Subscription, SubscriptionItem
from app.sandbox.cloud import sandbox_for
from app.services import ssh_keys
from app.services.actors import Actor
from tests import factories
from tests.querycount import count_queries
from tests.services.test_server_names_and_keys import DO_SCHEMA
from tests.sshkeys import ed25519_key
from tests.web.test_orders import HX, hostname_value, order, selected

CHECKED = re.compile(r'<input type="checkbox" name="ssh_keys" value="(\d+)"( checked)?>')


@pytest.fixture
def shopper(client, customer, auth):  # type: ignore[no-untyped-def]
    from tests.helpers import complete_profile

    complete_profile(customer)
    auth.login(customer.email)
    return customer


@pytest.fixture
def plan(tenant):  # type: ignore[no-untyped-def]
    return factories.plan(tenant, name="Flex", allow_customer_location_selection=True, quantity_allowed=True,
                          max_quantity=10)


@pytest.fixture
def keys(tenant, shopper):  # type: ignore[no-untyped-def]
    """Two keys of the shopper: the laptop's preselected for orders, the old one not."""
    actor = Actor(shopper)
    laptop = ssh_keys.add_key(tenant=tenant, actor=actor, public_key=ed25519_key("laptop"))
    old = ssh_keys.add_key(tenant=tenant, actor=actor, public_key=ed25519_key("old"), default=False)
    return laptop, old


def ticked(page: str) -> dict[int, bool]:
    return {int(value): bool(checked) for value, checked in CHECKED.findall(page)}


def items() -> list[SubscriptionItem]:
    db.session.expire_all()
    return list(db.session.scalars(select(SubscriptionItem).order_by(SubscriptionItem.id)))


def test_the_form_suggests_a_name_and_ticks_the_preselected_keys(client, tenant, plan, keys):
    laptop, old = keys
    page = client.get(f"/order/{plan.id}").get_data(as_text=True)
    name = hostname_value(page)
    assert re.fullmatch(r"[a-z]+-[a-z]+-\d\d", name)
    assert "It is reached at &lt;name&gt;.default.cloud.example.test." in page
    assert ticked(page) == {laptop.id: True, old.id: False}
    assert laptop.fingerprint in page and "laptop" in page
    assert "Without a key, the server gets a root password that we show you once on its page." in page


def test_an_order_with_keys_names_the_server_and_keeps_the_keys(client, tenant, plan, keys):
    laptop, old = keys
    response = order(client, plan, hostname="web-01", ssh_keys=[laptop.id, old.id])
    assert response.status_code == 303
    [item] = items()
    assert (item.hostname, item.fqdn) == ("web-01", "web-01.default.cloud.example.test")
    assert {key["fingerprint"] for key in item.config[CONFIG_KEY]} == {laptop.fingerprint, old.fingerprint}


def test_an_order_with_keys_reads_them_once(app, client, tenant, plan, keys, cloud):
    laptop, _ = keys
    page = client.get(f"/order/{plan.id}").get_data(as_text=True)
    token = re.search(r'"X-CSRFToken": "([^"]+)"', page).group(1)
    key = re.search(r'name="idempotency_key" type="hidden" value="([^"]+)"', page).group(1)
    data = {"serverType": "cx22", "location": "nbg1", "quantity": 1, "idempotency_key": key, "hostname": "keyed",
            "ssh_keys": [laptop.id], "csrf_token": token}
    with count_queries(app) as log:
        assert client.post(f"/order/{plan.id}", data=data).status_code == 303
    reads = [s for s in log.statements[:9] if s.lstrip().upper().startswith("SELECT")]
    assert len(reads) == 8, reads  # one more than without keys: the chosen keys, in one statement
    assert len(log.reading("ssh_keys")) == 1


def test_a_taken_name_is_refused_beside_the_field_and_every_choice_is_kept(client, tenant, plan, keys, cloud):
    laptop, old = keys
    assert order(client, plan, hostname="web").status_code == 303
    response = order(client, plan, hostname="web", serverType="cx32", location="hel1", quantity=2,
                     ssh_keys=[old.id])
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "The name web is taken by another of your organisation&#39;s servers. Please choose another." in page
    assert hostname_value(page) == "web" and selected(page, "serverType") == "cx32"
    assert selected(page, "location") == "hel1" and ticked(page) == {laptop.id: False, old.id: True}
    assert len(items()) == 1


@pytest.mark.parametrize(("name", "message"), [("", "Give your server a name."),
                                               ("my server", "Use lowercase letters, digits and hyphens only")])
def test_a_bad_name_is_explained(client, tenant, plan, keys, name, message):
    response = order(client, plan, hostname=name)
    assert response.status_code == 400 and message in response.get_data(as_text=True)
    assert items() == []


def test_a_form_without_the_name_field_gets_a_made_up_name(client, tenant, shopper, plan, cloud):
    """A form loaded before servers were named still orders."""
    from tests.helpers import csrf_token

    page = client.get(f"/order/{plan.id}").get_data(as_text=True)
    key = re.search(r'name="idempotency_key" type="hidden" value="([^"]+)"', page).group(1)
    response = client.post(f"/order/{plan.id}", data={"serverType": "cx22", "location": "nbg1", "quantity": 1,
                                                       "idempotency_key": key, "csrf_token": csrf_token(client)})
    assert response.status_code == 303 and items()[0].hostname


def test_a_key_id_that_is_not_a_number_is_refused(client, tenant, plan, keys):
    response = order(client, plan, ssh_keys=["x"])
    assert response.status_code == 400 and items() == []


def test_digitalocean_says_a_key_is_needed_and_refuses_an_order_without(client, tenant, shopper, clock):
    droplets = factories.service_type(tenant, provider=Provider.DIGITALOCEAN, config_schema=DO_SCHEMA)
    plan = factories.plan(tenant, service_type_=droplets, config_defaults={"serverType": "s-1vcpu-1gb",
                                                                           "region": "fra1"})
    sandbox_for(tenant.id, "digitalocean", now)
    page = client.get(f"/order/{plan.id}").get_data(as_text=True)
    assert "DigitalOcean servers need at least one key" in page and "You have no SSH keys yet." in page
    response = order(client, plan, serverType="s-1vcpu-1gb", location=None, region="fra1")
    assert response.status_code == 400
    assert "DigitalOcean servers need at least one SSH key" in response.get_data(as_text=True)
    assert db.session.scalar(select(Subscription.id)) is None


def test_a_plan_without_servers_has_no_name_or_keys(app, client, tenant, shopper):
    saas = factories.service_type(tenant, provider=Provider.NONE, config_schema={"type": "object", "properties": {}})
    plan = factories.plan(tenant, service_type_=saas, config_defaults={})
    page = client.get(f"/order/{plan.id}").get_data(as_text=True)
    assert 'name="hostname"' not in page and "SSH keys" not in page
    with count_queries(app) as log:
        client.get(f"/order/{plan.id}")
    assert log.reading("ssh_keys") == []


def test_the_availability_fragment_ignores_name_and_keys(client, tenant, plan, keys, cloud):
    fragment = client.get(f"/order/{plan.id}/availability?serverType=cx22&location=nbg1&hostname=x&ssh_keys=1",
                          headers=HX).get_data(as_text=True)
    assert "Available now" in fragment
