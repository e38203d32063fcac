"""Cloud tokens per tenant: set by its admins, encrypted at rest, never used for another tenant."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.domain.catalogue import Provider
from app.extensions import db
from app.models import CloudCredential
from app.sandbox import serve
from app.sandbox.digitalocean_api import DigitalOceanFake
from app.sandbox.hetzner_api import HetznerFake
from app.services import credentials
from app.services.actors import Actor
from app.services.errors import Forbidden
from tests.helpers import post_form

TOKEN = "hz-0123456789abcdefghijklmnopqrstuvwxyzABCD"


@pytest.fixture(scope="module")
def clouds():
    """Both clouds' APIs, played by the local fakes, accepting only TOKEN."""
    hetzner, digitalocean = HetznerFake(token=TOKEN), DigitalOceanFake(token=TOKEN)
    servers = serve(hetzner), serve(digitalocean)
    yield {Provider.HETZNER: (hetzner, servers[0].url + "/v1"),
           Provider.DIGITALOCEAN: (digitalocean, servers[1].url + "/v2/")}
    for server in servers:
        server.shutdown()


@pytest.fixture(autouse=True)
def real_api_is_a_fake(app, clouds, monkeypatch):
    """Where the portal would call the real APIs to check a token, the fakes answer."""
    monkeypatch.setitem(app.config, "HETZNER_API_URL", clouds[Provider.HETZNER][1])
    monkeypatch.setitem(app.config, "DIGITALOCEAN_API_URL", clouds[Provider.DIGITALOCEAN][1])


def test_the_admin_sets_a_token_that_is_stored_encrypted(client, tenant, admin, auth):
    auth.login(admin.email)
    assert "Sandbox" in client.get("/admin/clouds").get_data(as_text=True)
    response = post_form(client, "/admin/clouds/hetzner", {"hetzner-token": f"  {TOKEN} "})
    assert response.status_code == 303
    page = client.get("/admin/clouds").get_data(as_text=True)
    assert "Connected" in page and "ABCD" in page and TOKEN not in page
    row = db.session.scalar(select(CloudCredential))
    assert TOKEN not in row.token_ciphertext and row.token_hint == "ABCD" and row.updated_by_id == admin.id
    assert credentials.token_for(tenant, Provider.HETZNER) == TOKEN
    assert credentials.token_for(tenant, Provider.DIGITALOCEAN) is None


def test_a_tenants_token_is_never_used_for_another(client, tenant, other_tenant, admin):
    credentials.set_token(tenant=tenant, actor=Actor(admin), provider=Provider.HETZNER, token=TOKEN)
    assert credentials.token_for(other_tenant, Provider.HETZNER) is None


def test_the_environment_token_serves_only_the_default_tenant(app, tenant, other_tenant, monkeypatch):
    monkeypatch.setitem(app.config, "HETZNER_TOKEN", TOKEN)
    assert credentials.token_for(tenant, Provider.HETZNER) == TOKEN
    assert credentials.token_for(other_tenant, Provider.HETZNER) is None


def test_a_token_that_cannot_be_decrypted_is_treated_as_missing(app, tenant, admin, monkeypatch):
    credentials.set_token(tenant=tenant, actor=Actor(admin), provider=Provider.HETZNER, token=TOKEN)
    monkeypatch.setitem(app.config, "SECRET_KEY", "another secret key entirely")
    assert credentials.token_for(tenant, Provider.HETZNER) is None


@pytest.mark.parametrize("token", ["short", "has spaces in the middle of it", "x" * 201])
def test_bad_tokens_are_refused_with_a_message(client, admin, auth, token):
    auth.login(admin.email)
    response = post_form(client, "/admin/clouds/digitalocean", {"digitalocean-token": token})
    assert response.status_code == 400
    assert "API token" in response.get_data(as_text=True)
    assert db.session.scalar(select(CloudCredential)) is None


def test_a_token_the_cloud_refuses_is_not_stored(client, admin, auth):
    auth.login(admin.email)
    response = post_form(client, "/admin/clouds/hetzner", {"hetzner-token": "hz-revoked-0123456789abcdef"})
    assert response.status_code == 400
    assert "Hetzner Cloud refused this token" in response.get_data(as_text=True)
    assert db.session.scalar(select(CloudCredential)) is None


def test_a_cloud_that_does_not_answer_stores_nothing(client, admin, auth, clouds):
    clouds[Provider.DIGITALOCEAN][0].fail_next("sizes", 503, times=1)
    auth.login(admin.email)
    response = post_form(client, "/admin/clouds/digitalocean", {"digitalocean-token": TOKEN})
    assert response.status_code == 400
    assert "could not be reached" in response.get_data(as_text=True)
    assert db.session.scalar(select(CloudCredential)) is None


def test_removing_a_token_goes_back_to_the_sandbox(client, tenant, admin, auth):
    credentials.set_token(tenant=tenant, actor=Actor(admin), provider=Provider.HETZNER, token=TOKEN)
    auth.login(admin.email)
    assert post_form(client, "/admin/clouds/hetzner/clear").status_code == 303
    assert credentials.token_for(tenant, Provider.HETZNER) is None


@pytest.mark.parametrize("who", ["customer", "support"])
def test_only_tenant_admins_reach_cloud_settings(request, client, auth, who):
    auth.login(request.getfixturevalue(who).email)
    assert client.get("/admin/clouds").status_code == 403
    assert post_form(client, "/admin/clouds/hetzner", {"hetzner-token": TOKEN}).status_code == 403


def test_unknown_providers_are_404(client, admin, auth):
    auth.login(admin.email)
    assert post_form(client, "/admin/clouds/aws", {"aws-token": TOKEN}).status_code == 404
    assert post_form(client, "/admin/clouds/none", {"none-token": TOKEN}).status_code == 404


def test_staff_of_another_tenant_or_impersonators_cannot_set_tokens(tenant, other_tenant, admin, support, customer):
    from tests import factories

    foreign_admin = factories.user(other_tenant, role=admin.role)
    with pytest.raises(Forbidden):
        credentials.set_token(tenant=tenant, actor=Actor(foreign_admin), provider=Provider.HETZNER, token=TOKEN)
    with pytest.raises(Forbidden):
        credentials.set_token(tenant=tenant, actor=Actor(admin, impersonator=support), provider=Provider.HETZNER,
                              token=TOKEN)
