"""Registration confirms the address by email and tells nobody who has an account (RELIABILITY rows 1, 36)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import User
from app.services.passwords import verify_password
from tests import factories
from tests.helpers import (
    AuthActions,
    emailed_link,
    emails_to,
    follow_emailed_link,
    outbox,
    post_form,
    without_csrf,
)

OTHER = {"base_url": "http://other.test"}
PASSWORD = "a sound passphrase"


def register(client, email="new@example.com", password=PASSWORD, **kwargs):
    data = {"name": "New Person", "email": email, "password": password, "confirm": password}
    return post_form(client, "/register", data, **kwargs)



def is_logged_in(client, **kwargs) -> bool:
    return "Log out" in client.get("/", **kwargs).get_data(as_text=True)


def user_by_email(email: str, tenant) -> User | None:  # type: ignore[no-untyped-def]
    db.session.expire_all()
    return db.session.scalar(select(User).where(User.email == email, User.tenant_id == tenant.id))


def test_the_answer_is_the_same_for_a_new_and_a_taken_address(app, tenant, customer):
    answers = []
    for email in ("new@example.com", customer.email):
        client = app.test_client()
        response = register(client, email=email)
        page = client.get(response.headers["Location"])
        answers.append((response.status_code, response.headers["Location"],
                        without_csrf(response.get_data(as_text=True)), page.status_code,
                        without_csrf(page.get_data(as_text=True)).replace(email, "ADDRESS")))
        assert not is_logged_in(client)
    new, taken = answers
    assert new == taken
    assert new[:2] == (303, "/register/check-your-inbox") and new[3] == 200
    assert "Check your inbox" in new[4]


def test_a_new_address_gets_a_confirmation_link_and_a_taken_one_a_notice_to_its_owner(app, client, customer):
    register(client, email="new@example.com")
    register(app.test_client(), email="CASEY@example.com", password="an attacker's password")
    [confirm] = emails_to(app, "new@example.com")
    [notice] = emails_to(app, customer.email)
    assert confirm.subject == "Confirm your email address" and "/confirm-email/" in confirm.body
    assert notice.subject == "Someone tried to use your email address"
    assert "/forgot-password" in notice.body and "/login" in notice.body and "/confirm-email/" not in notice.body
    owner = user_by_email(customer.email, customer.tenant)
    assert owner.name == "Casey Customer" and verify_password(owner.password_hash, factories.PASSWORD)
    assert db.session.scalar(select(func.count()).select_from(User)) == 2


def test_the_link_page_changes_nothing_until_its_button_is_pressed(app, client, tenant):
    register(client)
    path = emailed_link(app, "new@example.com")
    page = client.get(path)  # what a mail scanner does
    assert page.status_code == 200 and "Confirm and log in" in page.get_data(as_text=True)
    assert user_by_email("new@example.com", tenant).email_verified_at is None
    response = post_form(client, path)
    assert response.status_code == 303 and response.headers["Location"] == "/"
    assert user_by_email("new@example.com", tenant).email_verified_at is not None
    home = client.get("/").get_data(as_text=True)
    assert "Your address is confirmed. Welcome!" in home and "Log out" in home
    assert post_form(app.test_client(), path).status_code == 404  # once


@pytest.mark.parametrize(("hours", "works"), [(23, True), (25, False)])
def test_the_confirmation_link_works_for_a_day(app, client, tenant, clock, hours, works):
    register(client)
    clock.advance(hours=hours)
    assert follow_emailed_link(client, app, "new@example.com").status_code == (303 if works else 404)
    assert (user_by_email("new@example.com", tenant).email_verified_at is not None) is works


def test_the_confirmation_link_of_one_tenant_does_nothing_on_another(app, client, tenant, other_tenant):
    register(client)
    path = emailed_link(app, "new@example.com")
    assert client.get(path, **OTHER).status_code == 404
    assert post_form(client, path, **OTHER).status_code == 404
    assert not is_logged_in(client, **OTHER)
    assert user_by_email("new@example.com", tenant).email_verified_at is None
    assert post_form(client, path).status_code == 303


def test_an_unconfirmed_account_cannot_log_in_and_gets_a_new_link(app, client, tenant):
    register(client)
    first = emailed_link(app, "new@example.com")
    response = AuthActions(client).login("new@example.com", PASSWORD)
    assert response.status_code == 403
    assert "Confirm your email address first: we sent a new link to new@example.com." in response.get_data(as_text=True)
    assert not is_logged_in(client)
    second = emailed_link(app, "new@example.com")
    assert second != first and len(emails_to(app, "new@example.com")) == 2
    assert post_form(client, first).status_code == 404  # replaced
    assert post_form(client, second).status_code == 303


def test_an_unconfirmed_account_with_a_wrong_password_gets_the_usual_answer(app, client, tenant):
    register(client)
    response = AuthActions(client).login("new@example.com", "not the password at all")
    assert response.status_code == 401
    page = response.get_data(as_text=True)
    assert "Email or password is not right." in page and "Confirm" not in page
    assert len(emails_to(app, "new@example.com")) == 1


def test_new_links_at_login_are_throttled(app, client, tenant):
    register(client)
    for _ in range(4):
        AuthActions(client).login("new@example.com", PASSWORD)
    assert len(emails_to(app, "new@example.com")) == 5
    response = AuthActions(client).login("new@example.com", PASSWORD)
    assert response.status_code == 403
    assert "You can ask for a new link again in a while." in response.get_data(as_text=True)
    assert len(emails_to(app, "new@example.com")) == 5


def test_registrations_for_one_address_are_throttled(app, customer):
    for _ in range(5):
        assert register(app.test_client(), email=customer.email).status_code == 303
    response = register(app.test_client(), email=customer.email)
    assert response.status_code == 429
    assert "We sent several emails to this address" in response.get_data(as_text=True)
    assert len(outbox(app)) == 5


def test_the_address_of_a_deleted_account_is_not_free_before_its_purge(app, client, tenant, clock):
    gone = factories.user(tenant, email="gone@example.com", is_active=False)
    gone.deleted_at, gone.purge_at = clock.now(), clock.now() + timedelta(days=30)
    db.session.commit()
    response = register(client, email="gone@example.com")
    assert response.status_code == 303 and response.headers["Location"] == "/register/check-your-inbox"
    [notice] = emails_to(app, "gone@example.com")
    assert "after that, the address can be used for a new account" in notice.body
    assert db.session.scalar(select(func.count()).select_from(User)) == 1


def test_the_check_your_inbox_page_says_where_the_link_went(client, tenant):
    page = client.get(register(client, email="New@Example.com").headers["Location"]).get_data(as_text=True)
    assert "<strong>new@example.com</strong>" in page and "24 hours" in page and 'href="/login"' in page
