"""Deleting the account from its page, and how staff see a deleted account (RELIABILITY rows 3, 4, 19, 33)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from app.domain.subscriptions import SubscriptionStatus
from app.extensions import db
from app.models import Subscription, User
from app.services import deletion
from tests import factories
from tests.helpers import AuthActions, emails_to, post_form


@pytest.fixture
def plan(tenant):  # type: ignore[no-untyped-def]
    return factories.plan(tenant)


def delete_account(client, password=factories.PASSWORD):
    return post_form(client, "/account/delete", {"password": password})


def reloaded(user: User) -> User:
    db.session.expire_all()
    return db.session.get(User, user.id)


def is_logged_in(client) -> bool:
    return "Log out" in client.get("/").get_data(as_text=True)


def test_the_security_page_leads_to_the_deletion_page(client, logged_in, plan):
    factories.subscription(logged_in.tenant, logged_in, plan)
    assert 'href="/account/delete"' in client.get("/account/security").get_data(as_text=True)
    page = client.get("/account/delete").get_data(as_text=True)
    assert "cancels your 1 subscription at once" in page and "after 30 days" in page
    assert 'autocomplete="current-password"' in page


def test_deleting_cancels_everything_and_logs_out_everywhere(app, client, logged_in, plan, clock):
    subscriptions = [factories.subscription(logged_in.tenant, logged_in, plan) for _ in range(2)]
    captured = client.get_cookie("session").value
    elsewhere = app.test_client()
    AuthActions(elsewhere).login(logged_in.email)

    response = delete_account(client)
    assert response.status_code == 303 and response.headers["Location"] == "/login"
    assert "Your account is deleted" in client.get("/login").get_data(as_text=True)
    assert not is_logged_in(client) and not is_logged_in(elsewhere)
    thief = app.test_client()
    thief.set_cookie("session", captured)
    assert not is_logged_in(thief)  # an old session cookie no longer works
    assert AuthActions(app.test_client()).login(logged_in.email).status_code == 401

    db.session.expire_all()
    statuses = db.session.scalars(select(Subscription.status).where(Subscription.user_id == logged_in.id)).all()
    assert statuses == [SubscriptionStatus.CANCELED] * len(subscriptions)
    user = reloaded(logged_in)
    assert user.deleted_at == clock.now() and user.purge_at == clock.now() + timedelta(days=30)
    [email] = [m for m in emails_to(app, "casey@example.com") if "deleted" in m.subject]
    assert "2 subscriptions were canceled at once" in email.body


def test_a_wrong_password_deletes_nothing(client, logged_in):
    response = delete_account(client, password="not my password at all")
    assert response.status_code == 400 and "Your password is not right." in response.get_data(as_text=True)
    assert reloaded(logged_in).deleted_at is None and is_logged_in(client)
    response = delete_account(client, password="")
    assert response.status_code == 400 and reloaded(logged_in).deleted_at is None


def test_deleting_needs_a_csrf_token(client, logged_in):
    assert client.post("/account/delete", data={"password": factories.PASSWORD}).status_code == 400
    assert reloaded(logged_in).deleted_at is None


def test_support_impersonating_the_customer_cannot_delete(app, client, customer, support, auth):
    from tests.helpers import complete_profile

    complete_profile(customer)
    auth.login(support.email)
    post_form(client, f"/support/customers/{customer.id}/impersonate", {"reason": "Ticket #9: wants to leave"})
    page = client.get("/account/delete")
    assert page.status_code == 403 and "Not while impersonating" in page.get_data(as_text=True)
    response = delete_account(client)
    assert response.status_code == 403
    assert reloaded(customer).deleted_at is None and reloaded(customer).is_active


def test_staff_have_no_such_page(client, admin, auth):
    auth.login(admin.email)
    assert client.get("/account/delete").status_code == 403
    assert delete_account(client).status_code == 403


def test_support_and_admins_see_the_account_as_deleted_then_purged(app, client, logged_in, plan, support, admin,
                                                                  clock):
    subscription = factories.subscription(logged_in.tenant, logged_in, plan)
    delete_account(client)
    staff = app.test_client()
    AuthActions(staff).login(support.email)
    page = staff.get(f"/support/customers/{logged_in.id}").get_data(as_text=True)
    assert "Deleted, purge on 14 April 2026" in page and "This account is deleted" in page
    search = staff.get("/support/?q=casey").get_data(as_text=True)  # the search's list says so too
    assert '<span class="badge badge-muted">Deleted, purge on 14 April 2026</span>' in search
    AuthActions(staff).logout()
    AuthActions(staff).login(admin.email)
    assert "Deleted, purge on 14 April 2026" in staff.get(f"/admin/subscriptions/{subscription.id}").get_data(
        as_text=True)

    clock.advance(days=30)
    assert deletion.purge_due() == 1
    AuthActions(staff).login(admin.email)  # a new day, a new session
    page = staff.get(f"/admin/subscriptions/{subscription.id}").get_data(as_text=True)
    assert "Deleted, purged" in page and "casey@example.com" not in page
    AuthActions(staff).logout()
    AuthActions(staff).login(support.email)
    page = staff.get(f"/support/customers/{logged_in.id}").get_data(as_text=True)
    assert "Deleted, purged" in page and "Casey Customer" not in page and "Deleted account" in page
    assert "Purged with the account on 14 Apr 2026" in page
    assert '<span class="badge badge-muted">Deleted, purged</span>' in staff.get("/support/?q=deleted").get_data(
        as_text=True)


def test_the_purge_runs_by_hand_as_of_a_time_and_once(runner, client, logged_in, clock):
    delete_account(client)
    db.session.commit()

    early = runner.invoke(args=["jobs", "run", "account-purge", "--as-of", "2026-04-13T00:00:00Z"])
    assert early.exit_code == 0 and "0 accounts purged" in early.output
    first = runner.invoke(args=["jobs", "run", "account-purge", "--as-of", "2026-04-15T00:00:00Z"])
    assert first.exit_code == 0 and "1 account purged" in first.output, first.output
    again = runner.invoke(args=["jobs", "run", "account-purge", "--as-of", "2026-05-15T00:00:00Z"])
    assert again.exit_code == 0 and "0 accounts purged" in again.output
    assert reloaded(logged_in).email == f"deleted-{logged_in.id}@invalid"
