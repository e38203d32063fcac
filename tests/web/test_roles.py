"""Each area is closed to the other roles, in one place (RELIABILITY rows 9, 10)."""

from __future__ import annotations

import pytest

from app.domain.catalogue import CatalogueState
from tests import factories


@pytest.mark.parametrize("path", ["/admin/", "/support/"])
def test_anonymous_visitors_are_sent_to_log_in(client, tenant, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")


def test_anonymous_htmx_requests_get_an_hx_redirect(client, tenant):
    response = client.get("/support/?q=a", headers={"HX-Request": "true"})
    assert response.status_code == 204
    assert response.headers["HX-Redirect"].startswith("/login?next=")


@pytest.mark.parametrize(
    ("who", "path", "status"),
    [
        ("customer", "/admin/", 403),
        ("support", "/admin/", 403),
        ("admin", "/admin/", 200),
        ("customer", "/support/", 403),
        ("admin", "/support/", 403),
        ("support", "/support/", 200),
    ],
)
def test_areas_are_closed_to_other_roles(request, client, auth, who, path, status):
    user = request.getfixturevalue(who)
    auth.login(user.email)
    assert client.get(path).status_code == status
    assert client.get(path, headers={"HX-Request": "true"}).status_code == status


def test_the_403_page_explains_and_shows_a_request_id(client, customer, auth):
    auth.login(customer.email)
    response = client.get("/admin/")
    page = response.get_data(as_text=True)
    assert "Not allowed" in page and response.headers["X-Request-ID"] in page


def test_navigation_fits_each_role(client, auth, customer, admin, support):
    expectations = {customer: ("Plans", None), admin: ("Admin", "/admin/"), support: ("Support", "/support/")}
    for user, (label, href) in expectations.items():
        auth.login(user.email)
        page = client.get("/").get_data(as_text=True)
        assert label in page
        for other in ("/admin/", "/support/"):
            assert (f'href="{other}"' in page) is (other == href)
        auth.logout()


def test_admin_sees_every_plan_of_the_tenant_in_every_state(client, tenant, other_tenant, admin, auth):
    factories.plan(tenant, name="Draft Plan", state=CatalogueState.DRAFT)
    factories.plan(tenant, name="Old Plan", state=CatalogueState.DEPRECATED)
    factories.plan(other_tenant, name="Foreign Plan")
    auth.login(admin.email)
    page = client.get("/admin/").get_data(as_text=True)
    assert "Draft Plan" in page and "Old Plan" in page and "Deprecated" in page
    assert "Foreign Plan" not in page


def test_support_sees_and_searches_only_its_tenants_customers(client, tenant, other_tenant, support, auth):
    factories.user(tenant, name="Dana Jones", email="dana@example.com")
    factories.user(tenant, name="Eli Smith", email="eli@example.com")
    factories.user(other_tenant, name="Foreign Jones", email="foreign@example.com")
    auth.login(support.email)
    page = client.get("/support/").get_data(as_text=True)
    assert "Dana Jones" in page and "Eli Smith" in page and "Foreign Jones" not in page
    assert "sam@example.com" not in page  # staff are not customers
    fragment = client.get("/support/?q=JONES", headers={"HX-Request": "true"})
    text = fragment.get_data(as_text=True)
    assert "Dana Jones" in text and "Eli Smith" not in text and "<html" not in text
    assert "HX-Request" in fragment.headers["Vary"]


def test_support_search_treats_wildcards_literally(client, tenant, support, auth):
    factories.user(tenant, name="Dana Jones", email="dana@example.com")
    auth.login(support.email)
    assert "Dana Jones" not in client.get("/support/?q=%25").get_data(as_text=True)


def test_support_results_are_paginated(client, tenant, support, auth):
    for n in range(30):
        factories.user(tenant, name=f"Customer {n:02d}")
    auth.login(support.email)
    first = client.get("/support/").get_data(as_text=True)
    second = client.get("/support/?page=2").get_data(as_text=True)
    assert "Customer 00" in first and "Customer 29" not in first and "Next" in first
    assert "Customer 29" in second and "Customer 00" not in second and "Previous" in second
