"""A forgotten password: the link by email, used once, for an hour, on its own tenant (RELIABILITY rows 1, 4, 36)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from app.domain.accounts import Role
from app.extensions import db
from app.models import AccountToken, EndReason, Impersonation, User, UserSession
from app.services.passwords import verify_password
from tests import factories
from tests.helpers import AuthActions, emailed_link, emails_to, outbox, post_form, without_csrf

NEW = "a fresh and long passphrase"
OTHER = {"base_url": "http://other.test"}


def ask(client, email, **kwargs):
    return post_form(client, "/forgot-password", {"email": email}, **kwargs)


def set_password(client, path, password=NEW, confirm=None, **kwargs):
    return post_form(client, path, {"password": password, "confirm": password if confirm is None else confirm},
                     **kwargs)


def reloaded(user: User) -> User:
    db.session.expire_all()
    return db.session.get(User, user.id)


def is_logged_in(client, **kwargs) -> bool:
    return "Log out" in client.get("/", **kwargs).get_data(as_text=True)



def test_the_login_page_offers_it(client, tenant):
    page = client.get("/login").get_data(as_text=True)
    assert 'href="/forgot-password"' in page
    assert "Forgot your password?" in client.get("/forgot-password").get_data(as_text=True)


def test_the_answer_is_the_same_whether_or_not_the_address_has_an_account(app, client, customer):
    answers = []
    for email in (customer.email, "nobody@example.com"):
        response = ask(app.test_client(), email)
        followed = client.get(response.headers["Location"])
        answers.append((response.status_code, response.headers["Location"],
                        without_csrf(response.get_data(as_text=True)), followed.status_code,
                        without_csrf(followed.get_data(as_text=True)).replace(email, "ADDRESS")))
    known, unknown = answers
    assert known == unknown
    assert known[:2] == (303, "/forgot-password/sent") and known[3] == 200
    assert [m.to for m in outbox(app)] == [[customer.email]]  # only the account's owner gets a link


def test_the_link_page_names_what_was_asked_for(client, customer):
    response = ask(client, "  Casey@Example.com ")
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "If <strong>casey@example.com</strong> belongs to an account" in page
    assert "60 minutes" in page


def test_the_link_sets_a_new_password_once_and_logs_in(app, client, customer):
    ask(client, customer.email)
    [email] = emails_to(app, customer.email)
    assert email.subject == "Set a new password for your Nimbus Test account"
    path = emailed_link(app, customer.email)
    assert path.startswith("/reset-password/")
    page = client.get(path)
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    assert "casey@example.com" in page.get_data(as_text=True)

    response = set_password(client, path)
    assert response.status_code == 303 and response.headers["Location"] == "/"
    assert is_logged_in(client)
    assert verify_password(reloaded(customer).password_hash, NEW)
    assert [m.subject for m in emails_to(app, customer.email)][-1] == "Your password was changed"

    again = set_password(app.test_client(), path, password="yet another long passphrase")
    assert again.status_code == 404 and "This link does not work" in again.get_data(as_text=True)
    assert client.get(path).status_code == 404
    assert verify_password(reloaded(customer).password_hash, NEW)
    fresh = AuthActions(app.test_client())
    assert fresh.login(customer.email).status_code == 401
    assert fresh.login(customer.email, NEW).status_code == 303


@pytest.mark.parametrize(("minutes", "works"), [(59, True), (61, False)])
def test_the_link_works_for_an_hour(app, client, customer, clock, minutes, works):
    ask(client, customer.email)
    clock.advance(minutes=minutes)
    response = set_password(client, emailed_link(app, customer.email))
    assert response.status_code == (303 if works else 404)
    assert verify_password(reloaded(customer).password_hash, NEW) is works


def test_asking_again_replaces_the_older_link(app, client, customer):
    ask(client, customer.email)
    first = emailed_link(app, customer.email)
    ask(client, customer.email)
    second = emailed_link(app, customer.email)
    assert first != second
    assert set_password(client, first).status_code == 404
    assert set_password(client, second).status_code == 303


def test_only_the_hash_of_the_link_is_stored(app, client, customer):
    ask(client, customer.email)
    secret = emailed_link(app, customer.email).rsplit("/", 1)[1]
    token = db.session.scalar(select(AccountToken))
    assert token.user_id == customer.id and secret not in token.token_hash and len(token.token_hash) == 64


def test_a_refused_password_leaves_the_link_usable(app, client, customer):
    ask(client, customer.email)
    path = emailed_link(app, customer.email)
    response = set_password(client, path, password="short")
    assert response.status_code == 400 and "Use 12 to 1024 characters." in response.get_data(as_text=True)
    response = set_password(client, path, confirm="something else entirely")
    assert response.status_code == 400 and "The passwords differ." in response.get_data(as_text=True)
    assert set_password(client, path).status_code == 303


def test_a_new_password_ends_every_other_session(app, client, customer):
    elsewhere = app.test_client()
    AuthActions(elsewhere).login(customer.email)
    assert is_logged_in(elsewhere)
    ask(client, customer.email)
    set_password(client, emailed_link(app, customer.email))
    assert not is_logged_in(elsewhere)
    assert is_logged_in(client)


def test_a_new_password_closes_supports_impersonation_of_the_customer(app, client, customer, support):
    from tests.helpers import complete_profile

    complete_profile(customer)
    staff = app.test_client()
    AuthActions(staff).login(support.email)
    post_form(staff, f"/support/customers/{customer.id}/impersonate", {"reason": "Ticket #1: cannot log in"})
    assert "Casey Customer" in staff.get("/").get_data(as_text=True)
    ask(client, customer.email)
    set_password(client, emailed_link(app, customer.email))
    db.session.expire_all()
    record = db.session.scalar(select(Impersonation))
    assert record.end_reason is EndReason.SESSION_ENDED and record.ended_at is not None
    assert "Stop impersonating" not in staff.get("/").get_data(as_text=True)


def test_the_link_of_one_tenant_does_nothing_on_another(app, client, customer, other_tenant):
    twin = factories.user(other_tenant, email=customer.email)  # the same address, another tenant's account
    ask(client, customer.email)
    path = emailed_link(app, customer.email)
    assert client.get(path, **OTHER).status_code == 404
    response = set_password(client, path, **OTHER)
    assert response.status_code == 404 and "This link does not work" in response.get_data(as_text=True)
    assert verify_password(reloaded(twin).password_hash, factories.PASSWORD)
    assert verify_password(reloaded(customer).password_hash, factories.PASSWORD)
    assert set_password(client, path).status_code == 303  # still good where it belongs


@pytest.mark.parametrize("token", ["x", "A" * 43, "é" * 30, "x" * 5000, "..%2F..%2Flogin", "%ED%A0%80"])
def test_unknown_and_garbage_links_get_a_clear_page(client, tenant, token):
    for response in (client.get(f"/reset-password/{token}"), set_password(client, f"/reset-password/{token}"),
                     client.get(f"/confirm-email/{token}"), post_form(client, f"/confirm-email/{token}")):
        assert response.status_code in (404, 400)
        assert "Something went wrong" not in response.get_data(as_text=True)


@pytest.mark.parametrize("state", ["disabled", "deleted"])
def test_an_account_that_cannot_log_in_gets_no_link(app, client, tenant, clock, state):
    user = factories.user(tenant, email="gone@example.com", is_active=False)
    if state == "deleted":
        user.deleted_at = user.purge_at = clock.now()
        db.session.commit()
    response = ask(client, user.email)
    assert response.status_code == 303 and response.headers["Location"] == "/forgot-password/sent"
    assert outbox(app) == []


def test_a_link_sent_before_the_account_was_disabled_stops_working(app, client, customer):
    ask(client, customer.email)
    customer.is_active = False
    db.session.commit()
    assert set_password(client, emailed_link(app, customer.email)).status_code == 404
    assert verify_password(reloaded(customer).password_hash, factories.PASSWORD)


def test_a_reset_confirms_an_unconfirmed_address(app, client, tenant):
    user = factories.user(tenant, email="late@example.com", verified=False)
    ask(client, user.email)
    assert set_password(client, emailed_link(app, user.email)).status_code == 303
    assert reloaded(user).email_verified_at is not None


def test_staff_can_reset_too(app, client, admin):
    ask(client, admin.email)
    response = set_password(client, emailed_link(app, admin.email))
    assert response.headers["Location"] == "/admin/" and reloaded(admin).role is Role.TENANT_ADMIN


def test_links_are_throttled_per_address_asked_for(app, client, customer):
    for _ in range(5):
        assert ask(client, customer.email).status_code == 303
    response = ask(client, customer.email)
    assert response.status_code == 429
    assert "We sent several emails to this address" in response.get_data(as_text=True)
    assert len(outbox(app)) == 5
    assert ask(client, "nobody@example.com").status_code == 303  # the same limit for addresses without an account
    for _ in range(4):
        ask(client, "nobody@example.com")
    assert ask(client, "nobody@example.com").status_code == 429


def test_links_are_throttled_per_client(client, tenant):
    for n in range(20):
        assert ask(client, f"guess{n}@example.com").status_code == 303
    response = ask(client, "guess-more@example.com")
    assert response.status_code == 429
    assert "Too many requests from your network" in response.get_data(as_text=True)


def test_a_reset_needs_a_csrf_token(app, client, customer):
    ask(client, customer.email)
    path = emailed_link(app, customer.email)
    response = client.post(path, data={"password": NEW, "confirm": NEW})
    assert response.status_code == 400
    assert verify_password(reloaded(customer).password_hash, factories.PASSWORD)


def test_a_logged_in_browser_is_logged_out_before_the_links_user_logs_in(app, client, customer, tenant):
    other = factories.user(tenant, email="other@example.com", name="Olive Other")
    AuthActions(client).login(other.email)
    ask(app.test_client(), customer.email)
    set_password(client, emailed_link(app, customer.email))
    db.session.expire_all()
    assert db.session.scalar(select(UserSession.revoked_at).where(UserSession.user_id == other.id)) is not None
    page = client.get("/").get_data(as_text=True)
    assert "Casey Customer" in page and "Olive Other" not in page


def test_reset_links_work_for_a_short_time(app, client, customer, clock):
    ask(client, customer.email)
    token = db.session.scalar(select(AccountToken))
    assert token.expires_at - token.created_at == timedelta(hours=1)
