"""The tenant admin's marketplace settings: Microsoft's Entra app and STACKIT's project and key, sealed, checked,
audited, never shown back; the URLs to register; the sandbox without settings."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import pytest
from sqlalchemy import select

from app.clock import now
from app.domain.marketplaces import Marketplace
from app.extensions import db
from app.models import MarketplaceConnection
from app.services import marketplace_connections as service
from app.services.actors import Actor
from app.services.errors import Forbidden, InvalidInput
from app.services.secrets import unseal
from tests.helpers import post_form
from tests.marketplace.admin_helpers import CLIENT_ID, ENTRA_TENANT, PROJECT_ID, STACKIT_KEY

PAGE = "/admin/marketplaces"


def microsoft(**values: object) -> dict[str, object]:
    return {"microsoft-entra_tenant_id": ENTRA_TENANT, "microsoft-client_id": CLIENT_ID,
            "microsoft-client_secret": "Qx8Q~secret.value-1234567890abcdef", "microsoft-secret_expires_on": "2026-12-31",
            "microsoft-offer_ids": "portal-saas, portal-saas-eu", **values}


def stored(marketplace: Marketplace) -> MarketplaceConnection | None:
    db.session.expire_all()
    return db.session.scalar(select(MarketplaceConnection).where(MarketplaceConnection.marketplace == marketplace))


@pytest.fixture
def as_admin(client, auth, admin, clock):  # type: ignore[no-untyped-def]
    auth.login(admin.email)
    return admin


def test_without_settings_the_page_says_sandbox_and_shows_the_urls_to_register(client, tenant, as_admin):
    page = client.get(PAGE).get_data(as_text=True)
    assert page.count("Sandbox") == 2 and "sandbox marketplace" in page
    assert "https://localhost/marketplace/microsoft/landing" in page
    assert "https://localhost/webhooks/microsoft/default" in page
    assert "https://localhost/marketplace/stackit/signup" in page


def test_the_microsoft_settings_are_saved_sealed_and_never_shown_back(client, tenant, as_admin, caplog):
    with caplog.at_level(logging.INFO, logger="app.services.marketplace_connections"):
        assert post_form(client, f"{PAGE}/microsoft", microsoft()).status_code == 303
    row = stored(Marketplace.MICROSOFT)
    assert row.settings["entra_tenant_id"] == ENTRA_TENANT and row.settings["client_id"] == CLIENT_ID
    assert row.settings["offer_ids"] == ["portal-saas", "portal-saas-eu"]
    assert row.secret_ciphertext != "Qx8Q~secret.value-1234567890abcdef"
    assert unseal(row.secret_ciphertext) == "Qx8Q~secret.value-1234567890abcdef"
    assert row.secret_expires_at.date().isoformat() == "2026-12-31"
    assert row.settings["updated_by"] == "Alex Admin"
    assert any("client_secret" in r.getMessage() and "entra_tenant_id" in r.getMessage() for r in caplog.records)
    page = client.get(PAGE).get_data(as_text=True)
    assert "Connected" in page and "set, ends on <strong>2026-12-31</strong>" in page
    assert "Qx8Q~secret" not in page and "by Alex Admin" in page


def test_a_blank_secret_keeps_the_stored_one_and_the_date_can_be_corrected_alone(client, tenant, as_admin):
    post_form(client, f"{PAGE}/microsoft", microsoft())
    sealed = stored(Marketplace.MICROSOFT).secret_ciphertext
    assert post_form(client, f"{PAGE}/microsoft", microsoft(**{"microsoft-client_secret": "",
                                                               "microsoft-secret_expires_on": "2027-01-31"})
                     ).status_code == 303
    row = stored(Marketplace.MICROSOFT)
    assert row.secret_ciphertext == sealed and row.secret_expires_at.date().isoformat() == "2027-01-31"


@pytest.mark.parametrize(("values", "message"), [
    ({"microsoft-entra_tenant_id": "contoso.onmicrosoft.com"}, "The Entra tenant id is a GUID"),
    ({"microsoft-client_id": "12345"}, "client id (application id) is a GUID"),
    ({"microsoft-client_id": ""}, "Enter the app&#39;s client id"),
    ({"microsoft-client_secret": ""}, "Enter the client secret."),
    ({"microsoft-client_secret": "0b9c8a6e-1111-4222-8333-944455556666"}, "probably the secret&#39;s id"),
    ({"microsoft-secret_expires_on": ""}, "Enter the date the client secret expires"),
    ({"microsoft-secret_expires_on": "2026-03-01"}, "This date has passed"),
    ({"microsoft-secret_expires_on": "31.12.2026"}, "Not a valid date value"),
    ({"microsoft-offer_ids": "good-offer, bad offer!"}, "is not an offer id"),
])
def test_bad_microsoft_settings_are_refused_with_a_clear_message_and_nothing_saved(client, tenant, as_admin, values,
                                                                                  message):
    answer = post_form(client, f"{PAGE}/microsoft", microsoft(**values))
    assert answer.status_code == 400 and message in answer.get_data(as_text=True)
    assert stored(Marketplace.MICROSOFT) is None


def test_the_stackit_settings_keep_the_key_sealed_with_its_end_date(client, tenant, as_admin):
    assert post_form(client, f"{PAGE}/stackit", {"stackit-project_id": PROJECT_ID,
                                                 "stackit-service_account_key": STACKIT_KEY}).status_code == 303
    row = stored(Marketplace.STACKIT)
    assert row.settings["project_id"] == PROJECT_ID
    assert json.loads(unseal(row.secret_ciphertext))["credentials"]["kid"] == "k1"
    page = client.get(PAGE).get_data(as_text=True)
    assert f"<code>{PROJECT_ID}</code>" in page and "set, ends on <strong>2027-06-30</strong>" in page
    assert "PRIVATE KEY" not in page


@pytest.mark.parametrize(("values", "message"), [
    ({"stackit-project_id": "my-project"}, "The vendor project id is a GUID"),
    ({"stackit-service_account_key": ""}, "Paste the service-account key file."),
    ({"stackit-service_account_key": "not json"}, "Paste the whole service-account key file"),
    ({"stackit-service_account_key": '{"credentials": {"kid": "k"}}'}, "needs credentials with kid, iss, sub"),
    ({"stackit-service_account_key": STACKIT_KEY.replace("2027-06-30", "2026-01-01")}, "This key has expired"),
])
def test_bad_stackit_settings_are_refused(client, tenant, as_admin, values, message):
    answer = post_form(client, f"{PAGE}/stackit", {"stackit-project_id": PROJECT_ID,
                                                   "stackit-service_account_key": STACKIT_KEY, **values})
    assert answer.status_code == 400 and message in answer.get_data(as_text=True)
    assert stored(Marketplace.STACKIT) is None


def test_removing_the_settings_brings_the_sandbox_back(client, tenant, as_admin):
    post_form(client, f"{PAGE}/microsoft", microsoft())
    assert post_form(client, f"{PAGE}/microsoft/disconnect").status_code == 303
    assert stored(Marketplace.MICROSOFT) is None
    assert client.get(PAGE).get_data(as_text=True).count("Sandbox") == 2
    assert post_form(client, f"{PAGE}/amazon/disconnect").status_code == 404


def test_only_the_tenants_admins_change_the_settings(client, auth, tenant, customer, support, admin, other_tenant,
                                                     clock):
    auth.login(customer.email)
    assert client.get(PAGE).status_code == 403
    assert post_form(client, f"{PAGE}/microsoft", microsoft()).status_code == 403
    with pytest.raises(Forbidden):
        service.save_microsoft(tenant=tenant, actor=Actor(support), entra_tenant_id=ENTRA_TENANT, client_id=CLIENT_ID,
                               client_secret="x" * 30, secret_expires_on="2026-12-31")
    with pytest.raises(Forbidden):  # another tenant's admin
        service.save_stackit(tenant=other_tenant, actor=Actor(admin), project_id=PROJECT_ID,
                             service_account_key=STACKIT_KEY)
    with pytest.raises(Forbidden):  # support acting as the admin
        service.disconnect(tenant=tenant, actor=Actor(admin, impersonator=support), marketplace=Marketplace.STACKIT)
    assert stored(Marketplace.MICROSOFT) is None and stored(Marketplace.STACKIT) is None


def test_a_secret_that_expires_too_far_ahead_is_a_typo(tenant, admin, clock):
    with pytest.raises(InvalidInput, match="expire within two years"):
        service.save_microsoft(tenant=tenant, actor=Actor(admin), entra_tenant_id=ENTRA_TENANT, client_id=CLIENT_ID,
                               client_secret="x" * 30, secret_expires_on=(now() + timedelta(days=3650)).date())


def test_a_connection_is_switched_off_and_on_with_its_settings_kept(client, tenant, as_admin, admin):
    post_form(client, f"{PAGE}/microsoft", microsoft())
    answer = post_form(client, f"{PAGE}/microsoft/switch", {"enabled": "off"}, follow_redirects=True)
    assert "switched off: its purchases, webhooks and polls are refused" in answer.get_data(as_text=True)
    row = stored(Marketplace.MICROSOFT)
    assert row.enabled is False and row.settings["client_id"] == CLIENT_ID
    assert "Switched off" in client.get(PAGE).get_data(as_text=True)
    post_form(client, f"{PAGE}/microsoft", microsoft(**{"microsoft-client_secret": ""}))  # saving keeps it off
    assert stored(Marketplace.MICROSOFT).enabled is False
    post_form(client, f"{PAGE}/microsoft/switch", {"enabled": "on"})
    assert stored(Marketplace.MICROSOFT).enabled is True
    answer = post_form(client, f"{PAGE}/stackit/switch", {"enabled": "off"}, follow_redirects=True)
    assert "There are no STACKIT Marketplace settings to switch" in answer.get_data(as_text=True)
    assert stored(Marketplace.STACKIT) is None
