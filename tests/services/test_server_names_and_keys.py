"""Ordering servers by name with the customer's SSH keys, and what provisioning does with both."""

from __future__ import annotations

import pytest
import yaml
from sqlalchemy import select

from app.clock import now
from app.domain.catalogue import Provider
from app.domain.notifications import EmailStatus
from app.domain.ssh_keys import CONFIG_KEY, parse_public_key
from app.extensions import db
from app.models import EmailMessage, Subscription, SubscriptionEvent, SubscriptionItem
from app.sandbox.cloud import sandbox_for
from app.services import backorders, ordering, ssh_keys
from app.services.actors import Actor
from app.services.errors import InvalidInput
from app.services.secrets import unseal
from tests import factories
from tests.services.conftest import boot, complete_profile, count, items_of, place, place_queued, step
from tests.sshkeys import added_key, ed25519_key

DO_SCHEMA = {"type": "object", "required": ["serverType", "region"],
             "properties": {"serverType": {"type": "string", "enum": ["s-1vcpu-1gb"]},
                            "region": {"type": "string", "enum": ["fra1", "ams3"]},
                            "image": {"type": "string", "enum": ["ubuntu-24-04-x64", "debian-12-x64"]}}}


@pytest.fixture
def multi_plan(tenant):
    return factories.plan(tenant, quantity_allowed=True, max_quantity=5)


@pytest.fixture
def do_plan(tenant):
    droplets = factories.service_type(tenant, provider=Provider.DIGITALOCEAN, config_schema=DO_SCHEMA)
    return factories.plan(tenant, service_type_=droplets, config_defaults={"serverType": "s-1vcpu-1gb",
                                                                           "region": "fra1"})


def neighbour(tenant):  # type: ignore[no-untyped-def]
    """Another customer of the tenant, ready to order."""
    user = factories.user(tenant)
    complete_profile(user)
    return user


def cloud_config(user_data: str) -> dict:
    assert user_data.startswith("#cloud-config\n")
    return yaml.safe_load(user_data)


def test_an_order_names_its_servers_and_keeps_the_chosen_keys(tenant, customer, profile, multi_plan, sandbox, clock):
    laptop, desktop = added_key(tenant, customer, "laptop"), added_key(tenant, customer, "desktop")
    subscription = place(tenant, customer, multi_plan, quantity=2, hostname=" Build ", ssh_key_ids=(laptop, desktop))
    boot(clock)
    first, second = items_of(subscription)
    assert (first.hostname, second.hostname) == ("build", "build-2")
    assert first.fqdn == "build.default.cloud.example.test" and second.fqdn == "build-2.default.cloud.example.test"
    kept = first.config[CONFIG_KEY]
    assert [key["name"] for key in kept] == ["desktop", "laptop"]
    assert all(set(key) == {"name", "fingerprint", "public_key"} for key in kept)
    servers = {server.name: server for server in sandbox.list_servers()}
    assert set(servers) == {first.fqdn, second.fqdn}
    for item in (first, second):
        document = cloud_config(sandbox.user_data(item.server_id))
        assert document["ssh_authorized_keys"] == [key["public_key"] for key in kept]
        assert item.root_password_sealed is None  # the cloud gave a password; with keys it is dropped


def test_a_removed_key_stays_with_the_server_it_was_ordered_for(tenant, customer, profile, plan, sandbox):
    key = added_key(tenant, customer)
    subscription = place_queued(tenant, customer, plan, ssh_key_ids=(key,))
    ssh_keys.remove_key(tenant=tenant, actor=Actor(customer), key_id=key)
    [item] = items_of(subscription)
    step(item.id)
    [server] = sandbox.list_servers()
    assert len(cloud_config(sandbox.user_data(server.server_id))["ssh_authorized_keys"]) == 1


def test_a_name_taken_in_the_tenant_is_refused_and_nothing_is_ordered(tenant, customer, profile, plan, sandbox):
    place(tenant, neighbour(tenant), plan, hostname="web")
    with pytest.raises(InvalidInput, match="The name web is taken") as refused:
        place(tenant, customer, plan, hostname="web")
    assert refused.value.field == "hostname"
    assert count(Subscription, Subscription.user_id == customer.id) == 0
    assert ("create_server", "web.default.cloud.example.test", "cx22", "nbg1") in sandbox.calls


def test_another_tenants_names_do_not_count(tenant, other_tenant, customer, profile, plan, sandbox):
    theirs = factories.subscription(other_tenant, factories.user(other_tenant), factories.plan(other_tenant))
    db.session.add(SubscriptionItem(tenant_id=other_tenant.id, subscription_id=theirs.id, provider=Provider.HETZNER,
                                    hostname="web", fqdn="web.other.cloud.example.test"))
    db.session.commit()
    [item] = items_of(place(tenant, customer, plan, hostname="web"))
    assert item.fqdn == "web.default.cloud.example.test"


def test_the_unique_index_decides_when_two_orders_take_a_name_at_once(tenant, customer, profile, plan, sandbox,
                                                                      monkeypatch):
    place(tenant, neighbour(tenant), plan, hostname="web")
    real = ordering._taken
    calls = []

    def missed_it(tenant_, names):  # the other order commits between this one's check and its insert
        calls.append(names)
        return None if len(calls) == 1 else real(tenant_, names)

    monkeypatch.setattr(ordering, "_taken", missed_it)
    with pytest.raises(InvalidInput, match="The name web is taken") as refused:
        place(tenant, customer, plan, hostname="web")
    assert refused.value.field == "hostname" and len(calls) == 2
    assert count(Subscription, Subscription.user_id == customer.id) == 0


@pytest.mark.parametrize(("name", "message"), [("", "Give your server a name."), ("web_1", "Use lowercase letters"),
                                               ("-web", "cannot start or end with a hyphen"),
                                               ("x" * 64, "Use at most 63 characters.")])
def test_a_bad_name_is_refused_before_the_cloud_is_asked(tenant, customer, profile, plan, sandbox, name, message):
    with pytest.raises(InvalidInput, match=message) as refused:
        place(tenant, customer, plan, hostname=name)
    assert refused.value.field == "hostname" and sandbox.calls == []


def test_several_servers_names_must_all_be_free(tenant, customer, profile, multi_plan, sandbox):
    place(tenant, customer, multi_plan, hostname="app-3")
    with pytest.raises(InvalidInput, match="The name app-3 is taken"):
        place(tenant, customer, multi_plan, hostname="app", quantity=3)


def test_a_made_up_name_when_none_is_given(tenant, customer, profile, plan, sandbox):
    [item] = items_of(place(tenant, customer, plan))
    adjective, noun, number = item.hostname.split("-")
    assert adjective and noun and number.isdigit()


def test_digitalocean_needs_a_key(tenant, customer, profile, do_plan, clock):
    droplets = sandbox_for(tenant.id, "digitalocean", now)
    with pytest.raises(InvalidInput, match="DigitalOcean servers need at least one SSH key") as refused:
        place(tenant, customer, do_plan)
    assert refused.value.field == "ssh_keys" and droplets.calls == []
    key = added_key(tenant, customer)
    subscription = place(tenant, customer, do_plan, hostname="droplet", ssh_key_ids=(key,))
    boot(clock)
    [item] = items_of(subscription)
    assert item.status == "active" and item.root_password_sealed is None
    assert "ssh_authorized_keys" in cloud_config(droplets.user_data(item.server_id))


def test_only_the_customers_own_keys_can_be_chosen(tenant, customer, profile, plan, sandbox):
    theirs = added_key(tenant, factories.user(tenant))
    with pytest.raises(InvalidInput, match="A chosen key is no longer on your account") as refused:
        place(tenant, customer, plan, ssh_key_ids=(theirs,))
    assert refused.value.field == "ssh_keys" and count(Subscription) == 0


def test_at_most_ten_keys_per_server(tenant, customer, profile, plan, sandbox):
    keys = tuple(added_key(tenant, customer, f"key-{n}") for n in range(11))
    with pytest.raises(InvalidInput, match="Choose at most 10 keys"):
        place(tenant, customer, plan, ssh_key_ids=keys)


def test_a_backorder_switched_to_an_alternative_keeps_its_keys(tenant, customer, profile, sandbox, clock):
    plan = factories.plan(tenant, allow_customer_location_selection=True)
    sandbox.set_capacity("cx22", "nbg1", 0)
    key = added_key(tenant, customer)
    waiting = place(tenant, customer, plan, auto_backorder=True, ssh_key_ids=(key,))
    backorders.switch_to_alternative(tenant=tenant, actor=Actor(customer), subscription_id=waiting.id,
                                     version=waiting.version, server_type="cx22", location="fsn1")
    boot(clock)
    [item] = items_of(waiting)
    assert item.config["location"] == "fsn1" and len(item.config[CONFIG_KEY]) == 1
    assert "ssh_authorized_keys" in cloud_config(sandbox.user_data(item.server_id))


# --- the root password of a server without a key --------------------------------------------------------------


def test_a_hetzner_server_without_a_key_keeps_its_root_password_sealed(tenant, customer, profile, plan, sandbox,
                                                                       clock, caplog):
    caplog.set_level("DEBUG")
    subscription = place(tenant, customer, plan, hostname="plain")
    boot(clock)
    [item] = items_of(subscription)
    assert item.status == "active" and item.root_password_sealed.startswith("gAAAA")  # a Fernet token
    password = unseal(item.root_password_sealed)
    assert len(password) >= 16
    assert password not in caplog.text
    for event in db.session.scalars(select(SubscriptionEvent)):
        assert password not in str(event.data) and password not in event.reason


# --- the "server ready" email ----------------------------------------------------------------------------------


@pytest.fixture
def links(monkeypatch):
    """Links render as plain paths here (the pages they point to are other parts' business)."""
    from app.services import notifications

    monkeypatch.setattr(notifications.Links, "__call__",
                        lambda self, endpoint, **values: f"https://portal.test/{endpoint}/{values}")


def ready_emails() -> list[EmailMessage]:
    return list(db.session.scalars(select(EmailMessage).where(EmailMessage.event == "server_ready")
                                   .order_by(EmailMessage.id)))


def test_the_server_ready_email_tells_how_to_log_in_with_the_keys(app, tenant, customer, profile, plan, sandbox,
                                                                   clock, links):
    key = added_key(tenant, customer, "casey@laptop")
    subscription = place(tenant, customer, plan, hostname="web", ssh_key_ids=(key,))
    boot(clock)
    boot(clock)  # polled again: still one email
    [item] = items_of(subscription)
    [email] = ready_emails()
    fingerprint = item.config[CONFIG_KEY][0]["fingerprint"]
    assert email.subject == "Your server web.default.cloud.example.test is ready"
    assert email.status == "sent" and email.to_address == customer.email
    for body in (email.text_body, email.html_body):
        assert "ssh root@web.default.cloud.example.test" in body and item.ipv4 in body
        assert "casey@laptop" in body and fingerprint in body
        assert "password" not in body.lower()
    assert "subscriptions.detail" in email.text_body
    [sent] = [message for message in app.extensions["mailman"].outbox if not message.subject.startswith(("Invoice ", "Receipt: "))]
    assert sent.subject == email.subject


def test_without_a_key_the_email_points_to_the_page_and_never_carries_the_password(tenant, customer, profile, plan,
                                                                                   sandbox, clock, links):
    subscription = place(tenant, customer, plan, hostname="plain")
    boot(clock)
    [item] = items_of(subscription)
    password = unseal(item.root_password_sealed)
    [email] = ready_emails()
    assert "shown to you once on the server's page" in email.text_body
    assert "shown to you <strong>once</strong>" in email.html_body
    assert password not in email.text_body and password not in email.html_body


def test_each_server_of_an_order_gets_its_email_once(tenant, customer, profile, multi_plan, sandbox, clock, links):
    place(tenant, customer, multi_plan, quantity=2, hostname="pair")
    boot(clock)
    assert [email.subject for email in ready_emails()] == [
        "Your server pair.default.cloud.example.test is ready", "Your server pair-2.default.cloud.example.test is ready"]


def test_an_email_that_cannot_be_made_never_holds_the_server_back(tenant, customer, profile, plan, sandbox, clock,
                                                                  monkeypatch, caplog):
    from app.services import notifications

    def broken(*args, **kwargs):
        raise RuntimeError("template exploded")

    monkeypatch.setattr(notifications, "render", broken)
    subscription = place(tenant, customer, plan)
    boot(clock)
    db.session.refresh(subscription)
    assert subscription.status == "active" and items_of(subscription)[0].status == "active"
    [ready] = ready_emails()  # logged as failed, for the tenant's admins to see; nothing sent
    assert ready.status is EmailStatus.FAILED and ready.last_error == "Not rendered: RuntimeError: template exploded"
    assert "email server_ready could not be rendered" in caplog.text


def test_the_ssh_key_fingerprint_in_the_email_is_the_one_on_the_account(tenant, customer, profile, plan, sandbox,
                                                                        clock, links):
    text = ed25519_key("casey@desk")
    row = ssh_keys.add_key(tenant=tenant, actor=Actor(customer), public_key=text)
    place(tenant, customer, plan, ssh_key_ids=(row.id,))
    boot(clock)
    assert parse_public_key(text).fingerprint in ready_emails()[0].text_body
