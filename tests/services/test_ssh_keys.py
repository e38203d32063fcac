"""The SSH key service: added validated, duplicates refused, only by the account owner."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.domain.ssh_keys import MAX_KEYS_PER_ACCOUNT, parse_public_key
from app.extensions import db
from app.models import SshKey
from app.selectors.ssh_keys import chosen_keys, customer_keys
from app.services import ssh_keys
from app.services.actors import Actor
from app.services.errors import Forbidden, InvalidInput, NotFound
from tests import factories
from tests.sshkeys import ecdsa_key, ed25519_key, private_key, rsa_key


def add(tenant, actor, key=None, **options):
    return ssh_keys.add_key(tenant=tenant, actor=actor, public_key=key or ed25519_key(), **options)


def test_a_key_is_added_with_its_fingerprint_and_named_after_its_comment(tenant, customer, actor):
    text = ed25519_key("casey@laptop")
    row = add(tenant, actor, text)
    assert (row.name, row.key_type, row.bits, row.is_default) == ("casey@laptop", "ssh-ed25519", 256, True)
    assert row.fingerprint == parse_public_key(text).fingerprint and row.public_key == text
    assert (row.tenant_id, row.user_id) == (tenant.id, customer.id)


@pytest.mark.parametrize("make", [ecdsa_key, lambda: rsa_key(2048)])
def test_ecdsa_and_rsa_keys_are_added(tenant, actor, make):
    assert add(tenant, actor, make(), name="  work   laptop ").name == "work laptop"


@pytest.mark.parametrize(("text", "message"), [(rsa_key(1024), "at least 2048"), ("garbage", "not an SSH public key"),
                                                (private_key(), "This is a private key")])
def test_bad_keys_are_refused_and_nothing_is_stored(tenant, actor, text, message):
    with pytest.raises(InvalidInput, match=message) as refused:
        add(tenant, actor, text)
    assert refused.value.field == "public_key"
    assert db.session.scalar(select(SshKey.id)) is None


def test_the_same_key_twice_is_refused_even_with_another_comment(tenant, actor):
    text = ed25519_key("first")
    add(tenant, actor, text, name="Laptop")
    with pytest.raises(InvalidInput, match="You have added this key already, as “Laptop”"):
        add(tenant, actor, text.rsplit(" ", 1)[0] + " second")


def test_another_customer_may_add_the_same_key(tenant, actor):
    text = ed25519_key()
    add(tenant, actor, text)
    add(tenant, Actor(factories.user(tenant)), text)
    assert len(db.session.scalars(select(SshKey)).all()) == 2


def test_an_account_holds_a_bounded_number_of_keys(tenant, customer, actor, monkeypatch):
    monkeypatch.setattr(ssh_keys, "MAX_KEYS_PER_ACCOUNT", 2)
    add(tenant, actor)
    add(tenant, actor)
    with pytest.raises(InvalidInput, match="at most 2 keys"):
        add(tenant, actor)
    assert MAX_KEYS_PER_ACCOUNT == 50


def test_rename_preselect_and_remove(tenant, customer, actor):
    row = add(tenant, actor, name="Old")
    ssh_keys.rename_key(tenant=tenant, actor=actor, key_id=row.id, name="New name")
    ssh_keys.set_default(tenant=tenant, actor=actor, key_id=row.id, default=False)
    [shown] = customer_keys(tenant, customer)
    assert (shown.name, shown.is_default, shown.label) == ("New name", False, "ED25519")
    with pytest.raises(InvalidInput, match="Give the key a name"):
        ssh_keys.rename_key(tenant=tenant, actor=actor, key_id=row.id, name="   ")
    assert ssh_keys.remove_key(tenant=tenant, actor=actor, key_id=row.id) == "New name"
    assert customer_keys(tenant, customer) == []


def test_someone_elses_key_is_not_found(tenant, customer, actor):
    theirs = add(tenant, Actor(factories.user(tenant)))
    for change in (lambda: ssh_keys.remove_key(tenant=tenant, actor=actor, key_id=theirs.id),
                   lambda: ssh_keys.rename_key(tenant=tenant, actor=actor, key_id=theirs.id, name="Mine"),
                   lambda: ssh_keys.set_default(tenant=tenant, actor=actor, key_id=theirs.id, default=False)):
        with pytest.raises(NotFound):
            change()
    assert chosen_keys(tenant, customer, [theirs.id]) == []
    db.session.refresh(theirs)
    assert theirs.is_default


def test_keys_are_refused_while_support_impersonates_the_customer(tenant, customer, support, actor):
    mine = add(tenant, actor)
    as_support = Actor(customer, impersonator=support)
    with pytest.raises(Forbidden, match="Support staff cannot change a customer's SSH keys while impersonating"):
        add(tenant, as_support)
    for change in (lambda: ssh_keys.remove_key(tenant=tenant, actor=as_support, key_id=mine.id),
                   lambda: ssh_keys.rename_key(tenant=tenant, actor=as_support, key_id=mine.id, name="x"),
                   lambda: ssh_keys.set_default(tenant=tenant, actor=as_support, key_id=mine.id, default=False)):
        with pytest.raises(Forbidden):
            change()
    assert [key.id for key in customer_keys(tenant, customer)] == [mine.id]
