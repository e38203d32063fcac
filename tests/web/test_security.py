"""Headers, error pages and hostile requests (RELIABILITY rows 10, 14, 15, 16)."""

from __future__ import annotations

import pytest

from app import create_app
from tests.conftest import config_for_tests

PAGES = ["/", "/login", "/register", "/does-not-exist", "/static/css/app.css"]


@pytest.mark.parametrize("path", PAGES)
def test_every_response_carries_the_security_headers(client, tenant, path):
    with client.get(path) as response:
        headers = response.headers
    csp = headers["Content-Security-Policy"]
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "frame-ancestors 'none'" in csp and "default-src 'self'" in csp
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "same-origin"
    assert headers["X-Request-ID"]


def test_pages_vary_on_hx_request(client, tenant):
    assert "HX-Request" in client.get("/").headers["Vary"]


def test_private_pages_are_not_stored(client, customer, auth):
    assert "no-store" not in client.get("/login").headers.get("Cache-Control", "")
    auth.login(customer.email)
    assert client.get("/").headers["Cache-Control"] == "no-store"


def test_a_well_formed_request_id_from_the_proxy_is_kept(client, tenant):
    response = client.get("/nope", headers={"X-Request-ID": "abc-123-def-456"})
    assert response.headers["X-Request-ID"] == "abc-123-def-456"
    assert "abc-123-def-456" in response.get_data(as_text=True)
    forged = client.get("/", headers={"X-Request-ID": "<script>"}).headers["X-Request-ID"]
    assert forged != "<script>"


def test_not_found_page(client, tenant):
    response = client.get("/nope")
    page = response.get_data(as_text=True)
    assert response.status_code == 404 and "Not found" in page and response.headers["X-Request-ID"] in page


def test_htmx_errors_are_fragments(client, tenant):
    page = client.get("/nope", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "<html" not in page and "Not found" in page


def test_oversized_bodies_get_413(client, tenant):
    response = client.post("/login", data={"email": "x" * (2 * 1024 * 1024)})
    assert response.status_code == 413
    assert "Too large" in response.get_data(as_text=True)


def test_too_many_form_parts_are_refused(client, tenant):
    data = {f"field{n}": "x" for n in range(1000)}
    response = client.post("/login", data=data, content_type="multipart/form-data")
    assert response.status_code in (400, 413)


def test_unexpected_errors_show_a_request_id_and_no_trace(database_url, tmp_path):
    app = create_app({**config_for_tests(database_url, str(tmp_path)), "PROPAGATE_EXCEPTIONS": False})

    @app.get("/boom")
    def boom() -> str:
        raise RuntimeError("secret internals")

    with app.app_context():
        from tests import factories

        factories.tenant(slug="default", hosts=["localhost"])
        try:
            response = app.test_client().get("/boom")
            page = response.get_data(as_text=True)
            assert response.status_code == 500
            assert "Something went wrong" in page and response.headers["X-Request-ID"] in page
            assert "secret internals" not in page and "Traceback" not in page
        finally:
            from sqlalchemy import delete

            from app.extensions import db, dispose_engines
            from app.models import Tenant

            db.session.execute(delete(Tenant))
            db.session.commit()
            db.session.remove()
            dispose_engines()


def test_a_bad_request_page(client, tenant):
    response = client.post("/login")
    assert response.status_code == 400
    assert response.headers["X-Request-ID"] in response.get_data(as_text=True)
