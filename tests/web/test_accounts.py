"""Registration, login, logout, sessions and throttling (RELIABILITY rows 1-5, 13)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app.domain.accounts import Role
from app.extensions import db
from app.models import User, UserSession
from app.services import accounts
from app.services.actors import Actor
from tests import factories
from tests.helpers import csrf_token, emails_to, follow_emailed_link, post_form


def register(client, email="new@example.com", password="a sound passphrase", **extra):
    data = {"name": "New Person", "email": email, "password": password, "confirm": password, **extra}
    return post_form(client, "/register", data)


def is_logged_in(client) -> bool:
    return "Log out" in client.get("/").get_data(as_text=True)


def test_register_creates_a_customer_who_confirms_the_address_to_log_in(app, client, tenant):
    # Registration no longer logs in: the answer must not depend on whether the address has an account
    # (tests/web/test_registration.py), so the new account waits for its address to be confirmed.
    response = register(client, email="  New@Example.COM ")
    assert response.status_code == 303
    assert response.headers["Location"] == "/register/check-your-inbox"
    user = db.session.scalar(select(User).where(User.email == "new@example.com"))
    assert user.role == Role.CUSTOMER and user.tenant_id == tenant.id and user.email_verified_at is None
    assert user.password_hash.startswith("$argon2id$")
    assert not is_logged_in(client)
    [email] = emails_to(app, "new@example.com")
    assert email.subject == "Confirm your email address"
    response = follow_emailed_link(client, app, "new@example.com")
    assert response.status_code == 303 and response.headers["Location"] == "/"
    assert is_logged_in(client)


def test_register_ignores_role_and_tenant_fields(client, tenant, other_tenant):
    register(client, role="tenant_admin", tenant_id=str(other_tenant.id), is_active="false")
    user = db.session.scalar(select(User).where(User.email == "new@example.com"))
    assert (user.role, user.tenant_id, user.is_active) == (Role.CUSTOMER, tenant.id, True)


def test_register_with_a_taken_email_creates_nothing_and_tells_the_owner(app, client, customer):
    response = register(client, email=customer.email.upper())
    assert response.status_code == 303 and response.headers["Location"] == "/register/check-your-inbox"
    assert db.session.scalar(select(func.count()).select_from(User)) == 1
    [email] = emails_to(app, customer.email)
    assert email.subject == "Someone tried to use your email address"


@pytest.mark.parametrize(
    ("password", "confirm", "message"),
    [("short", "short", "at least 12"), ("a sound passphrase", "another phrase!!", "passwords differ")],
)
def test_register_explains_bad_passwords(client, tenant, password, confirm, message):
    data = {"name": "N", "email": "n@example.com", "password": password, "confirm": confirm}
    response = post_form(client, "/register", data)
    assert response.status_code == 400
    assert message in response.get_data(as_text=True).lower()
    assert db.session.scalar(select(func.count()).select_from(User)) == 0


@pytest.mark.parametrize("password", ["  leading spaces count", "ünïcødé pässwörd ✓ 密码", "x" * 1000])
def test_passwords_are_taken_whole(app, client, tenant, auth, password):
    register(client, email="whole@example.com", password=password)
    follow_emailed_link(client, app, "whole@example.com")
    auth.logout()
    assert auth.login("whole@example.com", password.strip() + "!").status_code == 401
    assert auth.login("whole@example.com", password).status_code == 303


def test_login_lands_on_the_home_of_each_role(client, customer, admin, support, auth):
    for user, home in ((customer, "/"), (admin, "/admin/"), (support, "/support/")):
        response = auth.login(user.email)
        assert response.status_code == 303 and response.headers["Location"] == home
        auth.logout()


@pytest.mark.parametrize("email", ["casey@example.com", "nobody@example.com"])
def test_login_failure_is_generic(client, customer, auth, email):
    response = auth.login(email, "wrong password here")
    assert response.status_code == 401
    page = response.get_data(as_text=True)
    assert "Email or password is not right." in page
    assert not is_logged_in(client)


def test_disabled_account_cannot_log_in(client, tenant, auth):
    user = factories.user(tenant, is_active=False)
    assert auth.login(user.email).status_code == 401


def test_session_is_renewed_at_login(client, customer, auth):
    with client.session_transaction() as session:
        session["planted"] = "by an attacker"
    auth.login(customer.email)
    with client.session_transaction() as session:
        assert "planted" not in session


def test_cookie_captured_before_logout_is_dead_after_logout(client, app, customer, auth):
    auth.login(customer.email)
    captured = client.get_cookie("session").value
    auth.logout()
    thief = app.test_client()
    thief.set_cookie("session", captured)
    assert not is_logged_in(thief)


def test_disabling_an_account_ends_its_sessions(client, customer, auth):
    auth.login(customer.email)
    accounts.set_active(actor=Actor.system("test"), user=customer, active=False)
    assert not is_logged_in(client)


def test_ending_all_sessions_keeps_only_the_current_one(app, customer, auth, client):
    auth.login(customer.email)
    other = app.test_client()
    post_form(other, "/login", {"email": customer.email, "password": factories.PASSWORD})
    current = db.session.scalars(select(UserSession.token).order_by(UserSession.created_at)).all()[-1]
    assert accounts.end_all_sessions(user=customer, keep_token=current) == 1
    assert is_logged_in(other) and not is_logged_in(client)


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/support/?q=x", "/support/?q=x"),
        ("//evil.example/", "/"),
        ("https://evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("javascript:alert(1)", "/"),
        ("/%0d%0aSet-Cookie:x=1", "/%0d%0aSet-Cookie:x=1"),
    ],
)
def test_next_accepts_only_local_paths(client, customer, target, expected):
    data = {"email": customer.email, "password": factories.PASSWORD}
    response = post_form(client, "/login?" + _query(next=target), data)
    assert response.headers["Location"] == expected


def _query(**params: str) -> str:
    from urllib.parse import urlencode

    return urlencode(params)


def test_logout_needs_a_post(client, customer, auth):
    auth.login(customer.email)
    assert client.get("/logout").status_code == 405
    assert is_logged_in(client)


def test_forms_without_csrf_token_are_refused(client, customer):
    response = client.post("/login", data={"email": customer.email, "password": factories.PASSWORD})
    assert response.status_code == 400
    assert "expired" in response.get_data(as_text=True)
    assert not is_logged_in(client)
    response = client.post("/register", data={"name": "x", "email": "x@example.com", "password": "p" * 12,
                                              "confirm": "p" * 12})
    assert response.status_code == 400
    assert db.session.scalar(select(func.count()).select_from(User).where(User.email == "x@example.com")) == 0


def test_htmx_requests_send_the_token_in_a_header(client, customer, auth):
    auth.login(customer.email)
    token = csrf_token(client)
    assert client.post("/logout", headers={"HX-Request": "true"}).status_code == 400
    assert client.post("/logout", headers={"HX-Request": "true", "X-CSRFToken": token}).status_code == 303


def test_login_is_throttled_per_account(client, customer, auth):
    for _ in range(5):
        assert auth.login(customer.email, "wrong password here").status_code == 401
    response = auth.login(customer.email)  # even the right password waits now
    assert response.status_code == 429
    assert "Too many attempts" in response.get_data(as_text=True)
    assert "per 1 minute" not in response.get_data(as_text=True)


def test_login_is_throttled_per_address(client, customer, auth):
    for n in range(20):
        auth.login(f"guess{n}@example.com", "wrong password here")
    assert auth.login(customer.email).status_code == 429


def test_successful_logins_are_not_counted(client, customer, auth):
    for _ in range(7):
        assert auth.login(customer.email).status_code == 303
        auth.logout()


def test_failed_logins_are_logged(client, customer, auth, caplog):
    auth.login(customer.email, "wrong password here")
    assert any(r.message == "login failed" for r in caplog.records)
