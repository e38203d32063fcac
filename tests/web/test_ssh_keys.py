"""The SSH keys page: add, rename, preselect, remove; clear refusals; nothing changes while impersonated."""

from __future__ import annotations

from sqlalchemy import select

from app.domain.ssh_keys import parse_public_key
from app.extensions import db
from app.models import SshKey
from tests.helpers import csrf_token, post_form
from tests.sshkeys import ed25519_key, private_key, rsa_key


def keys() -> list[SshKey]:
    db.session.expire_all()
    return list(db.session.scalars(select(SshKey).order_by(SshKey.id)))


def add(client, text, **data):
    return post_form(client, "/account/keys", {"public_key": text, "default": "y", **data})


def test_the_account_tabs_lead_to_the_keys_page(client, logged_in):
    page = client.get("/account/keys").get_data(as_text=True)
    assert '<a href="/account/keys" aria-current="page">SSH keys</a>' in page
    assert "No keys yet." in page and "ssh-keygen -t ed25519" in page
    assert 'href="/account/keys"' in client.get("/account/profile").get_data(as_text=True)


def test_a_key_is_added_and_shown_by_its_fingerprint(client, logged_in):
    text = ed25519_key("casey@laptop")
    response = add(client, text)
    assert response.status_code == 303 and response.headers["Location"] == "/account/keys"
    page = client.get("/account/keys").get_data(as_text=True)
    fingerprint = parse_public_key(text).fingerprint
    assert f"Key “casey@laptop” added ({fingerprint})." in page
    assert f'<code class="fingerprint">{fingerprint}</code>' in page and "ED25519 · 256 bits" in page
    assert text.split()[1] not in page  # the key itself is not needed on the page
    [row] = keys()
    assert row.user_id == logged_in.id and row.is_default


def test_bad_and_duplicate_keys_are_refused_beside_the_field(client, logged_in):
    for text, message in ((rsa_key(1024), "This RSA key has 1024 bits; at least 2048 are needed."),
                          (private_key(), "This is a private key: keep it secret"),
                          ("", "Paste your public key.")):
        response = add(client, text)
        assert response.status_code == 400, text
        assert message in response.get_data(as_text=True)
    text = ed25519_key()
    add(client, text, name="Laptop")
    response = add(client, text, name="Again")
    assert response.status_code == 400
    assert "You have added this key already, as “Laptop”." in response.get_data(as_text=True)
    assert [row.name for row in keys()] == ["Laptop"]


def test_rename_preselect_and_remove(client, logged_in):
    add(client, ed25519_key(), name="Old")
    [row] = keys()
    assert post_form(client, f"/account/keys/{row.id}/rename", {"name": "Desktop"}).status_code == 303
    assert post_form(client, f"/account/keys/{row.id}/default", {}).status_code == 303  # unticked: not preselected
    [row] = keys()
    assert (row.name, row.is_default) == ("Desktop", False)
    post_form(client, f"/account/keys/{row.id}/default", {"default": "y"})
    assert keys()[0].is_default
    response = post_form(client, f"/account/keys/{row.id}/rename", {"name": ""})
    assert response.status_code == 303 and keys()[0].name == "Desktop"
    assert "Give the key a name." in client.get("/account/keys").get_data(as_text=True)
    assert post_form(client, f"/account/keys/{row.id}/remove").status_code == 303
    assert keys() == []
    assert "Key “Desktop” removed." in client.get("/account/keys").get_data(as_text=True)


def test_an_htmx_removal_navigates_back_to_the_page(client, logged_in):
    add(client, ed25519_key())
    [row] = keys()
    response = client.post(f"/account/keys/{row.id}/remove", headers={"HX-Request": "true",
                                                                      "X-CSRFToken": csrf_token(client)})
    assert response.status_code == 204 and response.headers["HX-Redirect"] == "/account/keys"


def test_another_customers_key_is_not_found(client, logged_in, tenant):
    from app.services import ssh_keys
    from app.services.actors import Actor
    from tests import factories

    theirs = ssh_keys.add_key(tenant=tenant, actor=Actor(factories.user(tenant)), public_key=ed25519_key())
    for action in ("remove", "rename", "default"):
        assert post_form(client, f"/account/keys/{theirs.id}/{action}", {"name": "x"}).status_code == 404
    assert len(keys()) == 1


def test_the_page_needs_a_login(client, tenant):
    assert client.get("/account/keys").status_code == 302


def test_support_impersonating_sees_the_keys_but_changes_nothing(client, auth, customer, support, clock):
    from app.services import ssh_keys
    from app.services.actors import Actor
    from tests.web.test_impersonation import impersonate

    text = ed25519_key("casey@laptop")
    row = ssh_keys.add_key(tenant=customer.tenant, actor=Actor(customer), public_key=text)
    auth.login(support.email)
    assert impersonate(client, customer).status_code == 303
    page = client.get("/account/keys").get_data(as_text=True)
    assert "Support staff cannot change a customer's SSH keys while impersonating them." in page
    assert row.fingerprint in page
    response = add(client, ed25519_key())
    assert response.status_code == 403
    assert "Support staff cannot change a customer&#39;s SSH keys" in response.get_data(as_text=True)
    post_form(client, f"/account/keys/{row.id}/remove")
    post_form(client, f"/account/keys/{row.id}/rename", {"name": "hacked"})
    assert [(k.id, k.name) for k in keys()] == [(row.id, "casey@laptop")]
