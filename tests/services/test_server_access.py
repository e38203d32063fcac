"""A server's root password shown once, reset (Hetzner) and rebuild: only by the customer as themselves, never
while another action runs or while the subscription is suspended or canceled, never logged or emailed."""

from __future__ import annotations

import pytest
import yaml
from sqlalchemy import select

from app.domain.ssh_keys import CONFIG_KEY
from app.domain.subscriptions import SubscriptionStatus
from app.extensions import db
from app.models import EmailMessage, SubscriptionEvent, SubscriptionItem
from app.services import server_access, ssh_keys
from app.services.actors import Actor
from app.services.errors import Conflict, Forbidden, InvalidInput, NotFound
from tests import factories
from tests.services.conftest import boot, items_of, place
from tests.sshkeys import added_key


@pytest.fixture
def plain(tenant, customer, profile, plan, sandbox, clock):
    """A running Hetzner server ordered without an SSH key: its root password waits, sealed."""
    subscription = place(tenant, customer, plan, hostname="plain")
    boot(clock)
    [item] = items_of(subscription)
    assert item.root_password_sealed is not None
    return item


@pytest.fixture
def keyed(tenant, customer, profile, plan, sandbox, clock):
    """A running Hetzner server ordered with one key."""
    subscription = place(tenant, customer, plan, hostname="keyed", ssh_key_ids=(added_key(tenant, customer),))
    boot(clock)
    [item] = items_of(subscription)
    return item


def reveal(tenant, actor, item):
    return server_access.reveal_root_password(tenant=tenant, actor=actor, subscription_id=item.subscription_id,
                                              item_id=item.id)


def reset(tenant, actor, item):
    return server_access.reset_root_password(tenant=tenant, actor=actor, subscription_id=item.subscription_id,
                                             item_id=item.id)


def rebuild(tenant, actor, item, image="debian-12", confirm=None):
    return server_access.rebuild(tenant=tenant, actor=actor, subscription_id=item.subscription_id, item_id=item.id,
                                 image=image, confirm=item.hostname if confirm is None else confirm)


def fresh(item: SubscriptionItem) -> SubscriptionItem:
    db.session.expire_all()
    return db.session.get(SubscriptionItem, item.id)


def kinds(item) -> list[str]:
    return list(db.session.scalars(select(SubscriptionEvent.kind).where(SubscriptionEvent.item_id == item.id)
                                   .order_by(SubscriptionEvent.id)))


# --- shown once ---------------------------------------------------------------------------------------------------


def test_the_root_password_is_shown_once_then_it_is_gone(tenant, customer, plain, caplog):
    caplog.set_level("DEBUG")
    password = reveal(tenant, Actor(customer), plain)
    assert password and len(password) >= 16
    assert fresh(plain).root_password_sealed is None
    assert reveal(tenant, Actor(customer), plain) is None  # the second look: nothing
    assert kinds(plain).count("root_password_shown") == 1
    assert password not in caplog.text
    for event in db.session.scalars(select(SubscriptionEvent)):
        assert password not in str(event.data) and password not in event.reason
    for email in db.session.scalars(select(EmailMessage)):
        assert password not in (email.text_body or "") and password not in (email.html_body or "")


def test_support_impersonating_the_customer_never_sees_it(tenant, customer, support, plain):
    with pytest.raises(Forbidden, match="Support staff cannot see a customer's root password"):
        reveal(tenant, Actor(customer, impersonator=support), plain)
    assert fresh(plain).root_password_sealed is not None  # still waiting for the customer


def test_someone_elses_server_does_not_exist(tenant, plain):
    with pytest.raises(NotFound):
        reveal(tenant, Actor(factories.user(tenant)), plain)
    assert fresh(plain).root_password_sealed is not None


def test_a_server_with_keys_has_no_password_waiting(tenant, customer, keyed):
    assert keyed.root_password_sealed is None and reveal(tenant, Actor(customer), keyed) is None


# --- reset (Hetzner) -------------------------------------------------------------------------------------------


def test_a_reset_gives_a_new_password_to_see_once(tenant, customer, plain, sandbox, clock):
    first = reveal(tenant, Actor(customer), plain)
    reset(tenant, Actor(customer), plain)
    assert ("reset_password", plain.server_id) in sandbox.calls
    second = reveal(tenant, Actor(customer), plain)
    assert second and second != first and reveal(tenant, Actor(customer), plain) is None
    assert kinds(plain)[-2:] == ["root_password_reset", "root_password_shown"]
    event = db.session.scalars(select(SubscriptionEvent).where(SubscriptionEvent.kind == "root_password_reset")).one()
    assert set(event.data) == {"action_id"}


def test_a_reset_is_refused_while_another_action_runs(tenant, customer, plain, sandbox):
    reveal(tenant, Actor(customer), plain)
    sandbox.power_off(plain.server_id)  # still stopping
    with pytest.raises(Conflict, match="Another action is still running"):
        reset(tenant, Actor(customer), plain)
    assert fresh(plain).root_password_sealed is None and "root_password_reset" not in kinds(plain)


def test_a_reset_is_refused_while_impersonating(tenant, customer, support, plain, sandbox):
    with pytest.raises(Forbidden, match="Support staff cannot reset a customer's root password"):
        reset(tenant, Actor(customer, impersonator=support), plain)
    assert not [call for call in sandbox.calls if call[0] == "reset_password"]


def test_there_is_no_reset_on_digitalocean(tenant, customer, profile, clock):
    from app.clock import now
    from app.sandbox.cloud import sandbox_for
    from tests.services.test_server_names_and_keys import DO_SCHEMA

    droplets = factories.service_type(tenant, provider="digitalocean", config_schema=DO_SCHEMA)
    plan = factories.plan(tenant, service_type_=droplets, config_defaults={"serverType": "s-1vcpu-1gb",
                                                                           "region": "fra1"})
    cloud = sandbox_for(tenant.id, "digitalocean", now)
    subscription = place(tenant, customer, plan, ssh_key_ids=(added_key(tenant, customer),))
    boot(clock)
    [item] = items_of(subscription)
    with pytest.raises(InvalidInput, match="DigitalOcean cannot show a new root password"):
        reset(tenant, Actor(customer), item)
    assert not [call for call in cloud.calls if call[0] == "reset_password"]


@pytest.mark.parametrize("status", [SubscriptionStatus.SUSPENDED, SubscriptionStatus.CANCELED])
def test_reset_and_rebuild_are_off_while_suspended_or_canceled(tenant, customer, plain, sandbox, status):
    plain.subscription.status = status
    db.session.commit()
    for action in (lambda: reset(tenant, Actor(customer), plain), lambda: rebuild(tenant, Actor(customer), plain)):
        with pytest.raises(InvalidInput, match="Not while the subscription is"):
            action()
    assert not [call for call in sandbox.calls if call[0] in ("reset_password", "rebuild")]


# --- rebuild ---------------------------------------------------------------------------------------------------


def test_a_rebuild_with_the_wrong_name_typed_changes_nothing(tenant, customer, keyed, sandbox):
    for typed in ("", "keyed-2", "plain", "keyed.other.cloud.example.test"):
        with pytest.raises(InvalidInput, match="Type the server's name, keyed, to confirm") as e:
            rebuild(tenant, Actor(customer), keyed, confirm=typed)
        assert e.value.field == "confirm"
    assert not [call for call in sandbox.calls if call[0] == "rebuild"]
    assert fresh(keyed).config.get("image") is None and "server_rebuilt" not in kinds(keyed)


@pytest.mark.parametrize("typed", ["keyed", "  KEYED ", "keyed.default.cloud.example.test."])
def test_a_rebuild_applies_the_keys_again(tenant, customer, keyed, sandbox, clock, typed):
    ssh_keys.remove_key(tenant=tenant, actor=Actor(customer), key_id=ssh_keys_of(customer)[0])  # gone from the account
    action = rebuild(tenant, Actor(customer), keyed, confirm=typed)
    assert action.command == "rebuild_server"
    assert ("rebuild", keyed.server_id, "debian-12") in sandbox.calls
    document = yaml.safe_load(sandbox.user_data(keyed.server_id))
    assert document["ssh_authorized_keys"] == [keyed.config[CONFIG_KEY][0]["public_key"]]
    item = fresh(keyed)
    assert item.config["image"] == "debian-12" and item.root_password_sealed is None  # keys: no password kept
    event = db.session.scalars(select(SubscriptionEvent).where(SubscriptionEvent.kind == "server_rebuilt")).one()
    assert event.data["image"] == "debian-12" and event.actor_id == customer.id
    assert sandbox.server_info(keyed.server_id).power == "provisioning"  # the page follows its progress
    clock.advance(seconds=10)
    assert sandbox.server_info(keyed.server_id).power == "running"


def ssh_keys_of(customer) -> list[int]:
    from app.models import SshKey

    return list(db.session.scalars(select(SshKey.id).where(SshKey.user_id == customer.id)))


def test_a_rebuild_without_keys_keeps_the_new_password_for_the_customer(tenant, customer, plain, sandbox):
    old = reveal(tenant, Actor(customer), plain)
    rebuild(tenant, Actor(customer), plain, image="ubuntu-24.04")
    new = reveal(tenant, Actor(customer), plain)
    assert new and new != old


def test_a_rebuild_is_refused_while_another_action_runs(tenant, customer, keyed, sandbox):
    sandbox.reboot(keyed.server_id)
    with pytest.raises(Conflict, match="Another action is still running"):
        rebuild(tenant, Actor(customer), keyed)
    assert "server_rebuilt" not in kinds(keyed) and fresh(keyed).config.get("image") is None


def test_a_rebuild_is_refused_while_impersonating(tenant, customer, support, keyed, sandbox):
    with pytest.raises(Forbidden, match="Support staff cannot rebuild a customer's server"):
        rebuild(tenant, Actor(customer, impersonator=support), keyed)
    assert not [call for call in sandbox.calls if call[0] == "rebuild"]


def test_only_the_plans_images_are_offered(tenant, customer, keyed, sandbox):
    assert server_access.images_for(keyed) == ("ubuntu-24.04", "debian-12")
    with pytest.raises(InvalidInput, match="Choose one of the images offered") as refused:
        rebuild(tenant, Actor(customer), keyed, image="windows-95")
    assert refused.value.field == "image"
    assert not [call for call in sandbox.calls if call[0] == "rebuild"]
