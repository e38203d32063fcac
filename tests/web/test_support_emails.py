"""Support sees a customer's emails on the customer's page: what, when and what became of it, not the text."""

from __future__ import annotations

from datetime import timedelta

from app.domain.notifications import EmailStatus, Event
from tests import factories
from tests.querycount import count_queries
from tests.web.test_account_emails import logged_email


def test_the_customer_page_lists_their_emails_with_status_and_no_text(app, client, auth, tenant, other_tenant,
                                                                      support, customer):
    logged_email(customer, "Your plan ends", age=timedelta(hours=2))
    logged_email(customer, "Reset your password", event=Event.PASSWORD_RESET, status=EmailStatus.FAILED,
                 attempts=5, text="Set a new password: http://localhost/reset/SECRET-TOKEN")
    failed = logged_email(customer, "Server ready", event=Event.SERVER_READY, status=EmailStatus.QUEUED, attempts=2)
    failed.last_error = "SMTPServerDisconnected: Connection unexpectedly closed"
    logged_email(factories.user(tenant), "Someone else's")
    logged_email(factories.user(other_tenant), "Another tenant's")
    auth.login(support.email)
    path = f"/support/customers/{customer.id}"
    client.get(path)
    with count_queries(app) as log:
        page = client.get(path).get_data(as_text=True)
    assert "Your plan ends" in page and "Reset your password" in page and "Server ready" in page
    assert "Retrying" in page and "Failed" in page and "SMTPServerDisconnected" in page and "(2 attempts)" in page
    assert "Someone else&#39;s" not in page and "Another tenant" not in page
    assert "SECRET-TOKEN" not in page and "Hello there" not in page
    assert page.index("Server ready") < page.index("Reset your password") < page.index("Your plan ends")

    for n in range(10):
        logged_email(customer, f"More {n}")
    with count_queries(app) as more:
        client.get(path)
    assert more.count == log.count, more.statements  # the emails are one statement, however many
