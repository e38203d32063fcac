"""The customer's password and login email (RELIABILITY rows 2, 4, 13)."""

from __future__ import annotations

import pytest

from app.extensions import db
from app.models import User
from app.services.passwords import verify_password
from tests import factories
from tests.helpers import AuthActions, emails_to, follow_emailed_link, post_form, without_csrf

NEW = "a brand new passphrase ✓"


def change_password(client, current=factories.PASSWORD, new=NEW, confirm=None):
    return post_form(client, "/account/security/password", {
        "password-current_password": current, "password-new_password": new,
        "password-confirm": new if confirm is None else confirm})


def change_email(client, email, password=factories.PASSWORD):
    return post_form(client, "/account/security/email", {"email-email": email, "email-password": password})


def session_token(client) -> str | None:
    with client.session_transaction() as session:
        return session.get("_user_id")


def reloaded(user: User) -> User:
    db.session.expire_all()
    return db.session.get(User, user.id)


def is_logged_in(client) -> bool:
    return "Log out" in client.get("/").get_data(as_text=True)


@pytest.fixture
def logged_in(client, auth, customer):
    auth.login(customer.email)
    return customer


def test_the_page_shows_both_forms(client, logged_in):
    page = client.get("/account/security").get_data(as_text=True)
    assert "Change password" in page and "Change email" in page and "casey@example.com" in page
    assert 'autocomplete="current-password"' in page and 'autocomplete="new-password"' in page


def test_anonymous_visitors_are_sent_to_log_in(client, tenant):
    response = client.get("/account/security")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login?next=")


@pytest.mark.parametrize("who", ["admin", "support"])
def test_staff_have_no_such_page(request, client, auth, who):
    auth.login(request.getfixturevalue(who).email)
    assert client.get("/account/security").status_code == 403


def test_a_password_change_ends_the_other_sessions_and_renews_this_one(app, client, logged_in):
    other = app.test_client()
    AuthActions(other).login(logged_in.email)
    before = session_token(client)
    response = change_password(client)
    assert response.status_code == 303 and response.headers["Location"] == "/account/security"
    assert session_token(client) not in (None, before)
    assert "Your password is changed." in client.get("/account/security").get_data(as_text=True)
    assert is_logged_in(client) and not is_logged_in(other)
    assert verify_password(reloaded(logged_in).password_hash, NEW)
    fresh = app.test_client()
    assert AuthActions(fresh).login(logged_in.email).status_code == 401
    assert AuthActions(fresh).login(logged_in.email, NEW).status_code == 303


@pytest.mark.parametrize(
    ("current", "new", "confirm", "message"),
    [("not my password at all", NEW, None, "Your current password is not right."),
     (factories.PASSWORD, "short", None, "Use 12 to 1024 characters."),
     (factories.PASSWORD, NEW, "something else entirely", "The passwords differ."),
     (factories.PASSWORD, factories.PASSWORD, None, "different from the current one")],
)
def test_a_refused_password_change_changes_nothing(app, client, logged_in, current, new, confirm, message):
    other = app.test_client()
    AuthActions(other).login(logged_in.email)
    before = session_token(client)
    response = change_password(client, current=current, new=new, confirm=confirm)
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert verify_password(reloaded(logged_in).password_hash, factories.PASSWORD)
    assert session_token(client) == before and is_logged_in(other)


def test_a_password_change_needs_a_csrf_token(client, logged_in):
    response = client.post("/account/security/password", data={
        "password-current_password": factories.PASSWORD, "password-new_password": NEW, "password-confirm": NEW})
    assert response.status_code == 400
    assert verify_password(reloaded(logged_in).password_hash, factories.PASSWORD)


def test_wrong_current_passwords_are_throttled(client, logged_in):
    for _ in range(10):
        assert change_password(client, current="not my password at all").status_code == 400
    assert change_password(client).status_code == 429
    assert verify_password(reloaded(logged_in).password_hash, factories.PASSWORD)


def test_an_email_change_waits_for_the_new_address_to_confirm_it(app, client, logged_in):
    response = change_email(client, "  Casey.New@Example.COM ")
    assert response.status_code == 303
    page = client.get("/account/security").get_data(as_text=True)
    assert "We sent a link to casey.new@example.com" in page
    assert "A confirmation is pending for <strong>casey.new@example.com</strong>" in page
    assert reloaded(logged_in).email == "casey@example.com"  # not before the new address confirms
    assert AuthActions(app.test_client()).login("casey.new@example.com").status_code == 401
    [link] = emails_to(app, "casey.new@example.com")
    assert link.subject == "Confirm your new login email"

    response = follow_emailed_link(client, app, "casey.new@example.com")
    assert response.status_code == 303 and response.headers["Location"] == "/account/security"
    assert reloaded(logged_in).email == "casey.new@example.com"
    assert "A confirmation is pending" not in client.get("/account/security").get_data(as_text=True)
    [notice] = emails_to(app, "casey@example.com")  # the old address is told
    assert notice.subject == "Your login email was changed"
    assert "from casey@example.com to casey.new@example.com" in notice.body
    assert AuthActions(app.test_client()).login("casey.new@example.com").status_code == 303


def test_asking_again_replaces_the_pending_change(app, client, logged_in):
    change_email(client, "first@example.com")
    change_email(client, "second@example.com")
    page = client.get("/account/security").get_data(as_text=True)
    assert "pending for <strong>second@example.com</strong>" in page and "first@example.com" not in page
    assert follow_emailed_link(client, app, "first@example.com").status_code == 404
    assert reloaded(logged_in).email == "casey@example.com"
    follow_emailed_link(client, app, "second@example.com")
    assert reloaded(logged_in).email == "second@example.com"


def test_an_email_of_another_tenant_is_free(app, client, other_tenant, logged_in):
    factories.user(other_tenant, email="shared@example.com")
    assert change_email(client, "shared@example.com").status_code == 303
    follow_emailed_link(client, app, "shared@example.com")
    assert reloaded(logged_in).email == "shared@example.com"


def test_an_address_taken_before_the_confirmation_changes_nothing(app, client, tenant, logged_in):
    change_email(client, "wanted@example.com")
    factories.user(tenant, email="wanted@example.com")  # someone else got there first
    response = follow_emailed_link(client, app, "wanted@example.com")
    assert response.status_code == 409
    assert "your login email stays casey@example.com" in response.get_data(as_text=True)
    assert reloaded(logged_in).email == "casey@example.com"


def test_a_password_change_is_told_by_email(app, client, logged_in):
    change_password(client)
    [email] = emails_to(app, "casey@example.com")
    assert email.subject == "Your password was changed"
    assert "/forgot-password" in email.body


@pytest.mark.parametrize(
    ("email", "password", "message"),
    [("new@example.com", "not my password at all", "Your password is not right."),
     ("casey@example.com", factories.PASSWORD, "This is already your email."),
     ("not an email", factories.PASSWORD, "Invalid email address.")],
)
def test_a_refused_email_change_changes_nothing(client, tenant, logged_in, email, password, message):
    factories.user(tenant, email="taken@example.com")
    response = change_email(client, email, password)
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert reloaded(logged_in).email == "casey@example.com"


def test_hostile_input_is_shown_escaped(client, logged_in):
    response = change_email(client, '"><script>alert(1)</script>@x')
    page = response.get_data(as_text=True)
    assert response.status_code == 400 and "<script>alert(1)" not in page


def test_an_email_change_reads_the_same_for_a_taken_and_a_free_address(app, tenant, customer):
    factories.user(tenant, email="taken@example.com", name="Tara Taken")
    answers = []
    for address in ("taken@example.com", "free@example.com"):
        client = app.test_client()
        AuthActions(client).login(customer.email)
        response = change_email(client, address)
        page = client.get(response.headers["Location"]).get_data(as_text=True)
        answers.append((response.status_code, response.headers["Location"],
                        without_csrf(response.get_data(as_text=True)),
                        without_csrf(page).replace(address, "ADDRESS")))
    assert answers[0] == answers[1]
    assert "A confirmation is pending for <strong>ADDRESS</strong>" in answers[0][3]
    assert [m.subject for m in emails_to(app, "taken@example.com")] == ["Someone tried to use your email address"]
    assert [m.subject for m in emails_to(app, "free@example.com")] == ["Confirm your new login email"]
    assert reloaded(customer).email == "casey@example.com"
