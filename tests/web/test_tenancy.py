"""Tenants are separated by host (RELIABILITY rows 7, 9)."""

from __future__ import annotations

from tests import factories
from tests.helpers import post_form

OTHER = {"base_url": "http://other.test"}


def test_a_user_cannot_log_in_on_another_tenants_host(client, customer, other_tenant, auth):
    assert auth.login(customer.email, **OTHER).status_code == 401
    assert auth.login(customer.email).status_code == 303


def test_the_same_email_is_a_different_account_per_tenant(client, customer, other_tenant, auth):
    twin = factories.user(other_tenant, email=customer.email, password="the other tenant's secret")
    assert auth.login(twin.email, "the other tenant's secret", **OTHER).status_code == 303
    assert auth.login(customer.email, "the other tenant's secret").status_code == 401


def test_each_tenant_sees_only_its_own_plans(client, tenant, other_tenant):
    factories.plan(tenant, name="Nimbus Small")
    factories.plan(other_tenant, name="Other Large")
    home = client.get("/").get_data(as_text=True)
    away = client.get("/", **OTHER).get_data(as_text=True)
    assert "Nimbus Small" in home and "Other Large" not in home
    assert "Other Large" in away and "Nimbus Small" not in away


def test_an_unknown_host_falls_back_to_the_default_tenant(client, tenant):
    factories.plan(tenant, name="Nimbus Small")
    page = client.get("/", base_url="http://unknown.example").get_data(as_text=True)
    assert "Nimbus Small" in page and tenant.name in page


def test_host_matching_ignores_case_and_port(client, tenant, other_tenant):
    factories.plan(other_tenant, name="Other Large")
    assert "Other Large" in client.get("/", base_url="http://OTHER.test:8080").get_data(as_text=True)


def test_a_session_from_one_tenant_is_worthless_on_another(app, client, customer, other_tenant, auth):
    auth.login(customer.email)
    stolen = client.get_cookie("session").value
    other = app.test_client()
    other.set_cookie("session", stolen, domain="other.test")
    page = other.get("/", **OTHER).get_data(as_text=True)
    assert "Log out" not in page


def test_a_tenant_admin_cannot_reach_another_tenants_admin_area(client, admin, other_tenant, auth):
    assert auth.login(admin.email, **OTHER).status_code == 401


def test_registration_lands_in_the_hosts_tenant(client, tenant, other_tenant):
    data = {"name": "O", "email": "o@example.com", "password": "x" * 12, "confirm": "x" * 12}
    post_form(client, "/register", data, **OTHER)
    from sqlalchemy import select

    from app.extensions import db
    from app.models import User

    assert db.session.scalar(select(User.tenant_id).where(User.email == "o@example.com")) == other_tenant.id
