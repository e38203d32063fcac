"""The development outbox: the tenant's latest emails, with clickable links, outside production only."""

from __future__ import annotations

from datetime import timedelta

from tests import factories
from tests.querycount import count_queries
from tests.web.test_account_emails import logged_email
from tests.web.test_new_user_defects import _NoWorker


def test_the_outbox_shows_the_tenants_latest_emails_with_their_links(app, client, tenant, other_tenant,
                                                                      customer):
    logged_email(customer, "Reset your password", age=timedelta(minutes=1),
                 text="Set a new password: http://localhost/reset/TOKEN-123 (valid for an hour).")
    logged_email(customer, "Older one", age=timedelta(hours=1))
    logged_email(factories.user(other_tenant), "Another tenant's email")
    client.get("/outbox")
    with count_queries(app) as log:
        response = client.get("/outbox")
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and "Development outbox" in page and "Not in production." in page
    assert '<a href="http://localhost/reset/TOKEN-123" rel="noopener noreferrer">' in page
    assert customer.email in page and page.index("Reset your password") < page.index("Older one")
    assert "Another tenant" not in page
    assert log.count == 1, log.statements  # the tenant's latest emails; nobody is logged in
    for n in range(10):
        logged_email(customer, f"More {n}")
    with count_queries(app) as more:
        client.get("/outbox")
    assert more.count == log.count


def test_the_outbox_is_linked_from_the_login_page_and_the_footer_outside_production(app, client, tenant,
                                                                                     monkeypatch):
    login = client.get("/login").get_data(as_text=True)
    assert login.count('href="/outbox"') == 2  # the sentence under the form, and the footer
    monkeypatch.setitem(app.config, "OUTBOX_PAGE", False)
    assert 'href="/outbox"' not in client.get("/login").get_data(as_text=True)


def test_the_outbox_does_not_exist_in_production(app, client, tenant, customer, monkeypatch):
    logged_email(customer, "Reset your password")
    monkeypatch.setitem(app.config, "OUTBOX_PAGE", False)
    response = client.get("/outbox")
    assert response.status_code == 404 and "Reset your password" not in response.get_data(as_text=True)


def test_the_outbox_page_exists_only_where_emails_do_not_leave_the_machine():
    from app.config import mail_settings

    assert mail_settings({}, "development", "instance")["OUTBOX_PAGE"] is True  # the file backend
    assert mail_settings({"MAIL_BACKEND": "smtp"}, "development", "instance")["OUTBOX_PAGE"] is False
    assert mail_settings({"MAIL_BACKEND": "file"}, "production", "instance")["OUTBOX_PAGE"] is False
    assert mail_settings({}, "production", "instance")["OUTBOX_PAGE"] is False


def test_flask_up_makes_the_links_in_emails_point_at_the_port_it_serves_on(app, runner, monkeypatch):
    from app import cli

    monkeypatch.setattr("werkzeug.serving.run_simple", lambda *args, **kwargs: None)
    monkeypatch.setattr("app.tasks.worker.start_beside_web_server", lambda workers: _NoWorker())
    monkeypatch.setattr(cli, "upgrade", lambda: None)
    monkeypatch.setitem(app.config, "SANDBOX_HETZNER_URL", "http://127.0.0.1:9/v1")  # no sandbox clouds started
    monkeypatch.setitem(app.config, "PUBLIC_PORT", None)
    assert runner.invoke(args=["up", "--no-demo", "--port", "5123"]).exit_code == 0
    assert app.config["PUBLIC_PORT"] == 5123

    monkeypatch.setitem(app.config, "PUBLIC_PORT", 8443)  # set by the environment: kept
    assert runner.invoke(args=["up", "--no-demo", "--port", "5124"]).exit_code == 0
    assert app.config["PUBLIC_PORT"] == 8443
