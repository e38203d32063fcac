"""Hostile and malformed requests: a clear, branded answer with a request id, never a 500 (RELIABILITY 15, 34, 35).

Each test here stands for one failure found when the portal was probed from outside; tests/fuzz walks every
route with the same kinds of values.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
from flask import Flask
from sqlalchemy import func, select, text

from app import create_app
from app.extensions import db, dispose_engines
from app.models import Subscription, User
from tests import factories
from tests.conftest import config_for_tests
from tests.helpers import csrf_token, post_form
from tests.web.test_dashboard import complete_profile, item_url, place

HX = {"HX-Request": "true"}
TOO_BIG_FOR_POSTGRESQL = 2**31
TOO_BIG_FOR_SQLITE = 2**63


def request_id_shown(response) -> str:
    """The request id of `response`: in its header, not "-", and on the page."""
    request_id = response.headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{16}", request_id), request_id
    assert request_id in response.get_data(as_text=True)
    return request_id


def branded(response, tenant) -> bool:
    return tenant.name in response.get_data(as_text=True)


@pytest.fixture
def subscribed(client, auth, tenant, customer, clock):
    complete_profile(customer)
    subscription = place(tenant, customer, factories.plan(tenant, name="Cloud S"))
    auth.login(customer.email)
    return subscription


# --- 1. ids past the database's integers, pages past any offset -------------------------------------------------

@pytest.mark.parametrize("number", [TOO_BIG_FOR_POSTGRESQL, TOO_BIG_FOR_SQLITE, 10**20])
@pytest.mark.parametrize("path", ["/subscriptions/{n}", "/order/{n}", "/subscriptions/{n}/summary",
                                  "/subscriptions/{n}/cancel", "/subscriptions/1/items/{n}/server-info"])
def test_ids_beyond_the_databases_integers_are_not_found(client, subscribed, tenant, path, number):
    response = client.get(path.format(n=number))
    assert response.status_code == 404
    request_id_shown(response)
    assert branded(response, tenant)


@pytest.mark.parametrize("number", [TOO_BIG_FOR_POSTGRESQL, TOO_BIG_FOR_SQLITE])
def test_power_actions_on_huge_ids_are_not_found(client, subscribed, number):
    token = csrf_token(client)
    response = client.post(f"/subscriptions/{number}/items/{number}/actions/start", headers={"X-CSRFToken": token})
    assert response.status_code == 404


@pytest.mark.parametrize("number", [TOO_BIG_FOR_POSTGRESQL, TOO_BIG_FOR_SQLITE])
def test_staff_pages_with_huge_ids_are_not_found(client, auth, support, admin, number):
    auth.login(support.email)
    assert client.get(f"/support/customers/{number}").status_code == 404
    assert post_form(client, f"/support/customers/{number}/impersonate", {"reason": "Ticket 1"}).status_code == 404
    auth.logout()
    auth.login(admin.email)
    assert client.get(f"/admin/audit/{number}").status_code == 404


@pytest.mark.parametrize("page", ["99999999999999999999", str(2**63), "-5", "abc", ""])
def test_huge_page_numbers_give_an_empty_page(client, auth, support, admin, page):
    auth.login(support.email)
    assert client.get(f"/support/?q=a&page={page}").status_code == 200
    auth.logout()
    auth.login(admin.email)
    assert client.get(f"/admin/audit?page={page}").status_code == 200


# --- 2. NUL bytes ----------------------------------------------------------------------------------------------

NUL_MESSAGE = "not allowed (NUL)"


def test_nul_bytes_in_a_login_are_refused_with_a_message(client, tenant):
    response = post_form(client, "/login", {"email": "casey\x00@example.com", "password": "x" * 12})
    assert response.status_code == 400
    assert NUL_MESSAGE in response.get_data(as_text=True)
    request_id_shown(response)


def test_nul_bytes_in_a_registration_change_nothing(client, tenant):
    before = db.session.scalar(select(func.count()).select_from(User))
    response = post_form(client, "/register", {"name": "Eve\x00", "email": "eve@example.com",
                                               "password": "long enough pass", "confirm": "long enough pass"})
    assert response.status_code == 400 and NUL_MESSAGE in response.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(User)) == before


@pytest.mark.parametrize("path", ["/support/?q=a%00b", "/support/?q%00=a"])
def test_nul_bytes_in_a_query_string_are_refused(client, auth, support, path):
    auth.login(support.email)
    response = client.get(path)
    assert response.status_code == 400 and NUL_MESSAGE in response.get_data(as_text=True)


def test_nul_bytes_in_a_cancel_reason_change_nothing(client, subscribed):
    path = f"/subscriptions/{subscribed.id}/cancel"
    response = post_form(client, path, {"version": str(subscribed.version), "reason": "bye\x00"})
    assert response.status_code == 400
    db.session.expire_all()
    assert db.session.get(Subscription, subscribed.id).status == "pending_fulfillment"


# --- 3. the order's idempotency key ----------------------------------------------------------------------------

def test_an_overlong_idempotency_key_is_refused_with_a_message(client, subscribed, tenant):
    plan = subscribed.plan
    response = post_form(client, f"/order/{plan.id}", {"quantity": "1", "idempotency_key": "k" * 500,
                                                       "serverType": "cx22", "location": "nbg1"})
    assert response.status_code == 400
    assert "out of date" in response.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(Subscription)) == 1


def test_an_overlong_idempotency_key_in_the_query_string_is_replaced(client, subscribed):
    page = client.get(f"/order/{subscribed.plan.id}?idempotency_key={'k' * 500}").get_data(as_text=True)
    key = re.search(r'name="idempotency_key" type="hidden" value="([^"]*)"', page).group(1)
    assert len(key) == 32


# --- 4. JSON and other bodies sent to form endpoints -----------------------------------------------------------

DEEP = "[" * 100_000 + "]" * 100_000


@pytest.mark.parametrize("body", ['"str"', "5", "[1,2]", '{"email": 5}', '{"email": null}', DEEP])
@pytest.mark.parametrize("path", ["/login", "/register"])
def test_json_bodies_are_refused_as_not_a_form(client, tenant, path, body):
    response = client.post(path, data=body, content_type="application/json",
                           headers={"X-CSRFToken": csrf_token(client)})
    assert response.status_code == 415
    assert "HTML form submissions only" in response.get_data(as_text=True)
    request_id_shown(response)


def test_json_bodies_to_the_order_and_profile_forms_are_refused(client, subscribed):
    token = csrf_token(client)
    for path in (f"/order/{subscribed.plan.id}", "/account/profile"):
        response = client.post(path, data=json.dumps({"quantity": [1], "full_name": {"a": 1}}),
                               content_type="application/json", headers={"X-CSRFToken": token})
        assert response.status_code == 415, path


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", "application/octet-stream"])
def test_other_content_types_are_refused(client, tenant, content_type):
    response = client.post("/login", data="email=a@b.c", content_type=content_type,
                           headers={"X-CSRFToken": csrf_token(client)})
    assert response.status_code == 415


# --- 5. a failed write does not break the error page -----------------------------------------------------------

@pytest.fixture
def failing_app(database_url, tmp_path) -> Iterator[Flask]:
    """An app of its own (committed data, real transactions) with routes that fail in the worst ways."""
    app = create_app({**config_for_tests(database_url, str(tmp_path)), "PROPAGATE_EXCEPTIONS": False})

    @app.post("/failed-write")
    def failed_write() -> str:
        db.session.execute(text("UPDATE no_such_table SET x = 1"))  # aborts the transaction on PostgreSQL
        return "unreachable"

    with app.app_context():
        factories.tenant(slug="default", name="Branded Hosting", hosts=["localhost"])
        try:
            yield app
        finally:
            from sqlalchemy import delete

            from app.models import Tenant

            db.session.rollback()
            db.session.execute(delete(Tenant))
            db.session.commit()
            db.session.remove()
            dispose_engines()


def test_the_error_page_after_a_failed_write_is_branded_with_a_request_id(failing_app):
    client = failing_app.test_client()
    response = client.post("/failed-write", headers={"X-CSRFToken": csrf_token(client)})
    page = response.get_data(as_text=True)
    assert response.status_code == 500
    assert "Something went wrong" in page and "Branded Hosting" in page
    request_id_shown(response)
    assert response.headers["Content-Security-Policy"] and "Traceback" not in page


def test_when_even_the_error_page_fails_a_plain_one_answers(failing_app, monkeypatch):
    from app.web import errors

    def broken(*args, **kwargs):
        raise RuntimeError("the template is broken")

    monkeypatch.setattr(errors, "render_template", broken)
    client = failing_app.test_client()
    response = client.get("/nope")
    page = response.get_data(as_text=True)
    assert response.status_code == 404 and "Not found" in page and "Branded Hosting" in page
    request_id_shown(response)
    assert response.headers["X-Content-Type-Options"] == "nosniff"


# --- 6. refusals made before any view: CSRF, 413 --------------------------------------------------------------

def test_the_csrf_refusal_is_branded_with_a_request_id(client, tenant):
    response = client.post("/login", data={"email": "a@example.com", "password": "x" * 12})
    assert response.status_code == 400 and "This form has expired" in response.get_data(as_text=True)
    request_id_shown(response)
    assert branded(response, tenant)


def test_the_too_large_refusal_is_branded_with_a_request_id(client, tenant):
    response = client.post("/login", data={"email": "x" * (2 * 1024 * 1024)})
    assert response.status_code == 413
    request_id_shown(response)
    assert branded(response, tenant)


# --- 7. the form-part limit for URL-encoded bodies -------------------------------------------------------------

def test_url_encoded_posts_with_too_many_fields_are_refused(client, tenant):
    body = "&".join(f"field{n}=x" for n in range(1000))
    response = client.post("/login", data=body, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 413
    assert "more fields than this portal accepts" in response.get_data(as_text=True)
    request_id_shown(response)


def test_url_encoded_posts_of_a_normal_size_still_work(client, tenant, customer):
    token = csrf_token(client)
    body = f"csrf_token={token}&email={customer.email}&password={factories.PASSWORD}"
    response = client.post("/login", data=body, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 303


# --- 8. hosts ----------------------------------------------------------------------------------------------------

def test_an_unknown_host_is_never_reflected_in_a_redirect(client, tenant):
    response = client.get("/admin", headers={"Host": "evil.example"})
    assert response.status_code == 308
    assert response.headers["Location"] == "/admin/"


def test_redirects_are_relative(client, tenant, customer, auth):
    response = client.get("/subscriptions/")
    assert response.headers["Location"].startswith("/login?next=")


def test_in_development_an_unknown_host_gets_the_default_tenant(client, tenant):
    response = client.get("/", headers={"Host": "anything.example"})
    assert response.status_code == 200 and tenant.name in response.get_data(as_text=True)


def test_in_production_an_unknown_host_answers_400(app, client, tenant, monkeypatch):
    monkeypatch.setitem(app.config, "PORTAL_ENV", "production")
    monkeypatch.setitem(app.config, "EXTRA_HOSTS", frozenset({"portal.example.com"}))
    response = client.get("/", headers={"Host": "evil.example"})
    assert response.status_code == 400 and "does not answer on this address" in response.get_data(as_text=True)
    request_id_shown(response)
    assert client.get("/", headers={"Host": "localhost"}).status_code == 200  # the tenant's own host
    assert client.get("/", headers={"Host": "Portal.Example.com:443"}).status_code == 200  # an extra host


@pytest.mark.parametrize("host", ["bad host", "a..b", "-x.example", "x" * 300, "ex%ample"])
def test_malformed_hosts_answer_400(client, tenant, host):
    assert client.get("/", headers={"Host": host}).status_code == 400


def test_the_forwarded_host_is_never_reflected_either(database_url, tmp_path):
    app = create_app({**config_for_tests(database_url, str(tmp_path)), "PROXY_HOPS": 1})
    with app.app_context():
        tenant = factories.tenant(slug="default", hosts=["localhost"])
        try:
            response = app.test_client().get("/admin", headers={"X-Forwarded-Host": "evil.example"})
            assert response.headers["Location"] == "/admin/"
        finally:
            db.session.delete(tenant)
            db.session.commit()
            db.session.remove()
            dispose_engines()


# --- 9. failed htmx requests are never silent -------------------------------------------------------------------

def test_every_page_has_the_region_where_htmx_failures_show(client, tenant):
    page = client.get("/").get_data(as_text=True)
    assert 'id="request-problem"' in page and "js/portal.js" in page
    with client.get("/static/js/portal.js") as script:
        assert script.status_code == 200


def test_an_htmx_action_after_logging_out_elsewhere_goes_to_login_and_back(client, subscribed, auth):
    item = subscribed.items[0]
    page = f"http://localhost/subscriptions/{subscribed.id}"
    token = csrf_token(client)
    auth.logout()  # the other tab
    response = client.post(item_url(subscribed, item, "/actions/restart"),
                           headers={**HX, "X-CSRFToken": token, "HX-Current-URL": page})
    assert response.status_code == 204
    assert response.headers["HX-Redirect"] == f"/login?next=/subscriptions/{subscribed.id}&ended=1"


def test_an_htmx_poll_after_logging_out_goes_to_login_and_back_to_the_page(client, subscribed, auth):
    auth.logout()
    response = client.get(f"/subscriptions/{subscribed.id}/summary",
                          headers={**HX, "HX-Current-URL": f"http://localhost/subscriptions/{subscribed.id}"})
    assert response.headers["HX-Redirect"] == f"/login?next=/subscriptions/{subscribed.id}&ended=1"


def test_htmx_errors_come_as_a_fragment_the_page_can_show(client, subscribed):
    response = client.get("/subscriptions/999999/summary", headers=HX)
    page = response.get_data(as_text=True)
    assert response.status_code == 404 and 'class="alert alert-error"' in page and "<html" not in page
    request_id_shown(response)


def test_two_htmx_requests_after_the_session_ended_say_so_once(client, subscribed, auth):
    auth.logout()
    page = {**HX, "HX-Current-URL": f"http://localhost/order/{subscribed.plan.id}"}
    client.get(f"/order/{subscribed.plan.id}/preview", headers=page)
    client.get(f"/order/{subscribed.plan.id}/availability", headers=page)
    login = client.get(f"/login?next=/order/{subscribed.plan.id}").get_data(as_text=True)
    assert login.count("Your session has ended. Please log in again.") == 1
