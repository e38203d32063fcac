"""The account page's API tokens: created with a name, scopes and expiry, shown once, listed, revoked."""

from __future__ import annotations

import re

from app.extensions import db
from app.models import ApiToken
from tests.helpers import post_form


def test_create_see_once_use_and_revoke(client, auth, tenant, customer) -> None:  # type: ignore[no-untyped-def]
    auth.login(customer.email)
    page = client.get("/account/tokens").get_data(as_text=True)
    assert "Administration" not in page  # the admin scope is for tenant admins
    created = post_form(client, "/account/tokens", {"name": "deploy", "write": "y", "expires_in_days": "30"})
    assert created.status_code == 200
    secret = re.search(r'id="new-token">(ptk_[0-9A-Za-z]+)<', created.get_data(as_text=True)).group(1)
    again = client.get("/account/tokens").get_data(as_text=True)
    assert secret not in again and "deploy" in again and "Never" in again
    api = client.get("/api/v1/subscriptions", headers={"Authorization": f"Bearer {secret}"})
    assert api.status_code == 200
    assert "Never" not in client.get("/account/tokens").get_data(as_text=True)  # last use shown
    row = db.session.scalar(db.select(ApiToken))
    assert post_form(client, f"/account/tokens/{row.id}/revoke").status_code == 303
    assert client.get("/api/v1/subscriptions", headers={"Authorization": f"Bearer {secret}"}).status_code == 401


def test_bad_input_names_the_field_and_creates_nothing(client, auth, tenant, customer) -> None:  # type: ignore[no-untyped-def]
    auth.login(customer.email)
    refused = post_form(client, "/account/tokens", {"name": "x", "admin": "y", "expires_in_days": "30"})
    assert refused.status_code == 400
    assert "admin scope" in refused.get_data(as_text=True)
    assert post_form(client, "/account/tokens", {"name": "x", "read": "y", "expires_in_days": "9999"}
                     ).status_code == 400
    assert db.session.scalar(db.select(db.func.count()).select_from(ApiToken)) == 0


def test_tenant_admins_are_offered_the_admin_scope(client, auth, tenant, admin) -> None:  # type: ignore[no-untyped-def]
    auth.login(admin.email)
    assert "Administration" in client.get("/account/tokens").get_data(as_text=True)


def test_impersonation_does_not_extend_to_tokens_or_the_api(client, auth, tenant, customer, support) -> None:  # type: ignore[no-untyped-def]
    from tests.web.test_impersonation import impersonate

    auth.login(support.email)
    impersonate(client, customer)
    page = client.get("/account/tokens").get_data(as_text=True)
    assert "cannot create or revoke a customer's API tokens while impersonating" in page
    refused = post_form(client, "/account/tokens", {"name": "x", "read": "y", "expires_in_days": "30"})
    assert refused.status_code == 403
    assert db.session.scalar(db.select(db.func.count()).select_from(ApiToken)) == 0
    api = client.get("/api/v1/subscriptions")  # the impersonating session alone reaches nothing
    assert api.status_code == 401
    assert api.headers["Cache-Control"] == "no-store"
