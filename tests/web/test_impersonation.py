"""Support impersonation through the browser's eyes: RELIABILITY rows 3, 12, 17-20."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.clock import now
from app.domain.accounts import Role
from app.domain.catalogue import Interval
from app.domain.subscriptions import SubscriptionStatus
from app.extensions import db
from app.models import (
    CustomerProfile,
    EndReason,
    Impersonation,
    ImpersonationAction,
    Subscription,
    SubscriptionEvent,
    User,
    UserSession,
)
from app.services.actors import Actor
from app.services.passwords import verify_password
from tests import factories
from tests.helpers import AuthActions, csrf_token, post_form

HX = {"HX-Request": "true"}
HOSTILE = '"><script>alert(1)</script><b hx-get="/logout" hx-trigger="load">x</b>'


# --- helpers ---------------------------------------------------------------------------------------------------

def session_token(client) -> str | None:
    with client.session_transaction() as session:
        return session.get("_user_id")


def impersonate(client, customer: User, reason: str = "Ticket #4711: cannot order"):
    return post_form(client, f"/support/customers/{customer.id}/impersonate", {"reason": reason})


def stop(client, **kwargs):
    return post_form(client, "/support/impersonation/stop", **kwargs)


def records() -> list[Impersonation]:
    db.session.expire_all()
    return list(db.session.scalars(select(Impersonation).order_by(Impersonation.id)))


def subscription_of(customer: User, tenant) -> Subscription:
    plan = factories.plan(tenant, name="Cloud S")
    start = now()
    row = Subscription(tenant_id=tenant.id, user_id=customer.id, plan_id=plan.id, status=SubscriptionStatus.ACTIVE,
                       quantity=1, price_minor=990, currency="EUR", interval=Interval.MONTH,
                       activated_at=start, current_period_start=start, current_period_end=start + timedelta(days=30))
    db.session.add(row)
    db.session.commit()
    return row


@pytest.fixture
def acting(client, auth, support, customer, clock):
    """The support user, logged in and impersonating the customer (on the frozen clock)."""
    auth.login(support.email)
    response = impersonate(client, customer)
    assert response.status_code == 303, response.get_data(as_text=True)
    return records()[-1]


# --- the support area ------------------------------------------------------------------------------------------

def test_search_results_link_to_the_customer_page(client, auth, support, customer):
    auth.login(support.email)
    page = client.get("/support/?q=casey").get_data(as_text=True)
    assert f'href="/support/customers/{customer.id}"' in page


def test_the_customer_page_shows_profile_subscriptions_and_events(client, auth, tenant, support, customer):
    db.session.add(CustomerProfile(user_id=customer.id, full_name="Casey C.", billing_email="bills@example.com",
                                   address="Hauptstrasse 1", city="Berlin", country="DE"))
    subscription = subscription_of(customer, tenant)
    db.session.add(SubscriptionEvent(tenant_id=tenant.id, subscription_id=subscription.id, kind="activate",
                                     to_status="active", actor_id=None, created_at=now()))
    db.session.commit()
    auth.login(support.email)
    response = client.get(f"/support/customers/{customer.id}")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Casey Customer" in page and "bills@example.com" in page and "Berlin" in page
    assert "Cloud S" in page and "€9.90" in page and "Active" in page
    assert "Activate" in page and "by the portal" in page
    assert 'name="reason"' in page and "Impersonate Casey Customer" in page
    assert "<form" in page and 'method="post"' in page


@pytest.mark.parametrize("who", ["admin", "foreign", "other_support"])
def test_only_the_tenants_customers_have_a_page(request, client, auth, tenant, other_tenant, support, who):
    target = {
        "admin": lambda: request.getfixturevalue("admin"),
        "foreign": lambda: factories.user(other_tenant),
        "other_support": lambda: factories.user(tenant, role=Role.SUPPORT),
    }[who]()
    auth.login(support.email)
    assert client.get(f"/support/customers/{target.id}").status_code == 404


@pytest.mark.parametrize("who", ["customer", "admin"])
def test_the_customer_page_is_for_support_only(request, client, auth, customer, who):
    auth.login(request.getfixturevalue(who).email)
    assert client.get(f"/support/customers/{customer.id}").status_code == 403


# --- row 17 and 18: starting -----------------------------------------------------------------------------------

def test_starting_switches_to_a_new_session_and_lands_on_the_customers_pages(app, client, auth, support, customer):
    auth.login(support.email)
    before = session_token(client)
    with client.session_transaction() as session:
        captured = client.get_cookie("session").value
        session["planted"] = "by an attacker"
    response = impersonate(client, customer)
    assert response.status_code == 303 and response.headers["Location"] == "/subscriptions/"
    after = session_token(client)
    assert after and after != before  # the session id changes at start (row 3)
    with client.session_transaction() as session:
        assert "planted" not in session
    record = records()[-1]
    assert (record.support_user_id, record.customer_id, record.reason) == (support.id, customer.id,
                                                                         "Ticket #4711: cannot order")
    page = client.get("/subscriptions/").get_data(as_text=True)
    assert "You are now acting as Casey Customer" in page
    thief = app.test_client()  # the support cookie from before the start is dead
    thief.set_cookie("session", captured)
    assert thief.get("/support/").status_code == 302


def test_starting_needs_a_post(client, auth, support, customer):
    auth.login(support.email)
    assert client.get(f"/support/customers/{customer.id}/impersonate").status_code == 405
    assert records() == []


def test_starting_needs_a_csrf_token(client, auth, support, customer):
    auth.login(support.email)
    response = client.post(f"/support/customers/{customer.id}/impersonate", data={"reason": "Ticket #1"})
    assert response.status_code == 400
    assert records() == [] and client.get("/support/").status_code == 200


@pytest.mark.parametrize("reason", ["", "   ", "ab", "x" * 501])
def test_starting_needs_a_reason(client, auth, support, customer, reason):
    auth.login(support.email)
    response = impersonate(client, customer, reason=reason)
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert 'aria-invalid="true"' in page and "Impersonate Casey Customer" in page
    assert records() == [] and client.get("/support/").status_code == 200


@pytest.mark.parametrize(
    ("who", "status", "message"),
    [("admin", 403, "Tenant admins cannot be impersonated."),
     ("other_support", 403, "Support staff cannot be impersonated."),
     ("self", 403, "You cannot impersonate yourself."),
     ("inactive", 403, "disabled"),
     ("foreign", 404, "")],
)
def test_refused_targets(request, client, auth, tenant, other_tenant, support, who, status, message):
    target = {
        "admin": lambda: request.getfixturevalue("admin"),
        "other_support": lambda: factories.user(tenant, role=Role.SUPPORT),
        "self": lambda: support,
        "inactive": lambda: factories.user(tenant, is_active=False, name="Ina Inactive"),
        "foreign": lambda: factories.user(other_tenant),
    }[who]()
    auth.login(support.email)
    before = session_token(client)
    response = impersonate(client, target)
    assert response.status_code == status
    assert message in response.get_data(as_text=True)
    assert records() == []
    assert session_token(client) == before and client.get("/support/").status_code == 200


@pytest.mark.parametrize("who", ["customer", "admin"])
def test_only_support_can_start(request, client, auth, customer, who):
    auth.login(request.getfixturevalue(who).email)
    assert impersonate(client, customer).status_code == 403
    assert records() == []


def test_never_while_already_impersonating(client, tenant, acting):
    other = factories.user(tenant, name="Second Customer")
    assert client.get("/support/").status_code == 403  # the support area is closed while acting as a customer
    assert impersonate(client, other).status_code == 403
    assert len(records()) == 1 and records()[0].ended_at is None


# --- row 18: the banner ------------------------------------------------------------------------------------------

def banner(page: str) -> str:
    match = re.search(r'<aside id="impersonation-banner".*?</aside>', page, re.S)
    assert match, "no impersonation banner"
    return match.group(0)


@pytest.mark.parametrize("path", ["/", "/subscriptions/", "/account/profile", "/no-such-page"])
def test_the_banner_is_on_every_page(client, acting, path):
    shown = banner(client.get(path).get_data(as_text=True))
    assert "Sam Support" in shown and "Casey Customer" in shown and "casey@example.com" in shown
    assert "Ticket #4711: cannot order" in shown
    assert "60 min left" in shown
    assert 'action="/support/impersonation/stop"' in shown and "Stop impersonating" in shown
    assert 'name="csrf_token"' in shown


def test_the_banner_is_on_every_htmx_fragment_with_the_time_left(client, tenant, acting, clock):
    plan = factories.plan(tenant)
    clock.advance(minutes=17)
    response = client.get(f"/order/{plan.id}/preview?quantity=1", headers=HX)
    fragment = response.get_data(as_text=True)
    assert response.status_code == 200 and "<html" not in fragment
    shown = banner(fragment)
    assert 'hx-swap-oob="true"' in shown and "43 min left" in shown
    assert fragment.count('id="impersonation-banner"') == 1


def test_the_banner_refreshes_itself(client, acting, clock):
    clock.advance(minutes=59, seconds=30)
    response = client.get("/support/impersonation/banner", headers=HX)
    shown = banner(response.get_data(as_text=True))
    assert "1 min left" in shown and "hx-swap-oob" not in shown


def test_no_banner_without_impersonation(client, auth, customer, support):
    auth.login(customer.email)
    assert "impersonation-banner" not in client.get("/").get_data(as_text=True)
    assert client.post("/support/impersonation/stop",
                       data={"csrf_token": csrf_token(client)}).status_code == 404


def test_hostile_names_and_reasons_are_escaped(client, auth, tenant, support, admin):
    victim = factories.user(tenant, name=HOSTILE, email="victim@example.com")
    auth.login(support.email)
    impersonate(client, victim, reason=HOSTILE)
    page = client.get("/").get_data(as_text=True)
    shown = banner(page)
    assert "<script>" not in shown and "<b hx-get" not in shown
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in shown and "&#34;&gt;" in shown
    stop(client)
    auth.logout()
    auth.login(admin.email)
    for path in ("/admin/audit", f"/admin/audit/{records()[-1].id}"):
        audit = client.get(path).get_data(as_text=True)
        assert "<script>alert(1)" not in audit and '<b hx-get="/logout"' not in audit
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in audit


# --- row 19: blocked actions, and every action recorded with both ----------------------------------------------

def test_the_security_page_is_refused_while_impersonating(client, acting):
    response = client.get("/account/security")
    page = response.get_data(as_text=True)
    assert response.status_code == 403
    assert "Not while impersonating" in page and "Nothing was changed." in page
    assert "impersonation-banner" in page


@pytest.mark.parametrize(
    ("path", "data"),
    [("/account/security/password",
      {"password-current_password": factories.PASSWORD, "password-new_password": "a brand new passphrase",
       "password-confirm": "a brand new passphrase"}),
     ("/account/security/email",
      {"email-email": "taken-over@example.com", "email-password": factories.PASSWORD})],
)
def test_password_and_email_changes_are_refused_and_change_nothing(client, acting, customer, path, data):
    response = post_form(client, path, data)
    assert response.status_code == 403
    assert "Not while impersonating" in response.get_data(as_text=True)
    db.session.expire_all()
    unchanged = db.session.get(User, customer.id)
    assert unchanged.email == "casey@example.com"
    assert verify_password(unchanged.password_hash, factories.PASSWORD)
    assert client.get("/subscriptions/").status_code == 200  # still impersonating, nothing else ended


def test_an_htmx_refusal_comes_back_as_a_message(client, acting):
    response = post_form(client, "/account/security/password", {}, headers={**HX, "Referer": "/account/profile"})
    assert response.status_code == 204 and response.headers["HX-Redirect"] == "/account/profile"
    assert "Not while impersonating" in client.get("/account/profile").get_data(as_text=True)


def test_actions_are_recorded_with_both_users(client, tenant, acting, customer, support):
    subscription = subscription_of(customer, tenant)
    page = client.get(f"/subscriptions/{subscription.id}/cancel").get_data(as_text=True)
    version = re.search(r'name="version" type="hidden" value="(\d+)"', page).group(1)
    response = post_form(client, f"/subscriptions/{subscription.id}/cancel",
                         {"version": version, "reason": "Asked on the phone"})
    assert response.status_code == 303
    event = db.session.scalar(select(SubscriptionEvent).where(SubscriptionEvent.subscription_id == subscription.id))
    assert (event.actor_id, event.impersonator_id) == (customer.id, support.id)
    history = client.get(f"/subscriptions/{subscription.id}").get_data(as_text=True)
    assert "by support Sam Support for Casey Customer" in history
    actions = list(db.session.scalars(select(ImpersonationAction).where(
        ImpersonationAction.impersonation_id == acting.id).order_by(ImpersonationAction.id)))
    changes = [(a.method, a.path, a.endpoint, a.status_code) for a in actions if a.method != "GET"]
    assert changes == [("POST", f"/subscriptions/{subscription.id}/cancel", "subscriptions.cancel", 303)]
    views = [a.path for a in actions if a.method == "GET"]
    assert f"/subscriptions/{subscription.id}/cancel" in views and f"/subscriptions/{subscription.id}" in views


def test_fragments_and_banner_polls_are_not_recorded_as_views(client, tenant, acting):
    plan = factories.plan(tenant)
    client.get(f"/order/{plan.id}/preview", headers=HX)
    client.get("/support/impersonation/banner", headers=HX)
    assert db.session.scalar(select(func.count()).select_from(ImpersonationAction)) == 0


def test_refused_actions_are_recorded_too(client, acting):
    client.get("/account/security")
    post_form(client, "/account/security/password", {"password-current_password": "x"})
    actions = db.session.scalars(select(ImpersonationAction).where(ImpersonationAction.status_code == 403)
                                 .order_by(ImpersonationAction.id))
    assert [(a.method, a.endpoint) for a in actions] == [("GET", "account.security"),
                                                         ("POST", "account.change_password")]


# --- stopping, logging out -------------------------------------------------------------------------------------

def test_stop_returns_to_the_support_area_with_a_new_session(app, client, acting, customer, clock):
    impersonating_token = session_token(client)
    captured = client.get_cookie("session").value
    clock.advance(minutes=10)
    response = stop(client)
    assert response.status_code == 303 and response.headers["Location"] == f"/support/customers/{customer.id}"
    assert session_token(client) not in (None, impersonating_token)
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "You stopped acting as Casey Customer." in page and "impersonation-banner" not in page
    record = records()[-1]
    assert (record.end_reason, record.ended_at) == (EndReason.STOPPED, clock.now())
    assert db.session.get(UserSession, impersonating_token).revoked_at is not None
    thief = app.test_client()  # the impersonation cookie is dead after the stop (row 3)
    thief.set_cookie("session", captured)
    assert thief.get("/subscriptions/").status_code == 302


def test_a_double_click_on_stop_keeps_the_support_session(app, client, acting):
    token = csrf_token(client)
    old_cookie = client.get_cookie("session").value
    assert client.post("/support/impersonation/stop", data={"csrf_token": token}).status_code == 303
    second = app.test_client()  # the second click, sent with the cookie from before the first answer
    second.set_cookie("session", old_cookie)
    response = second.post("/support/impersonation/stop", data={"csrf_token": token})
    assert response.status_code == 303 and response.headers["Location"] == "/support/"
    assert "Set-Cookie" not in response.headers
    assert client.get("/support/").status_code == 200
    assert [r.end_reason for r in records()] == [EndReason.STOPPED]


def test_stop_needs_a_csrf_token(client, acting):
    assert client.post("/support/impersonation/stop").status_code == 400
    assert records()[-1].ended_at is None
    assert "impersonation-banner" in client.get("/").get_data(as_text=True)


def test_logging_out_while_impersonating_ends_it_and_logs_everyone_out(client, auth, acting):
    auth.logout()
    record = records()[-1]
    assert record.end_reason is EndReason.LOGGED_OUT
    assert client.get("/support/").status_code == 302 and client.get("/subscriptions/").status_code == 302
    assert db.session.scalar(select(func.count()).select_from(UserSession)
                             .where(UserSession.revoked_at.is_(None))) == 0


def test_a_customer_disabled_meanwhile_ends_the_impersonation(client, acting, customer):
    from app.services import accounts

    accounts.set_active(actor=Actor.system("test"), user=customer, active=False)
    page = client.get("/").get_data(as_text=True)
    assert "The impersonation has ended" in page and "impersonation-banner" not in page
    assert records()[-1].end_reason is EndReason.SESSION_ENDED


# --- row 20: the time limit ------------------------------------------------------------------------------------

def test_the_impersonation_ends_by_itself_after_the_time_limit(client, acting, customer, clock):
    clock.advance(minutes=59)
    assert client.get("/subscriptions/").status_code == 200
    clock.advance(minutes=1)
    response = client.get("/subscriptions/")
    assert response.status_code == 303 and response.headers["Location"] == f"/support/customers/{customer.id}"
    record = records()[-1]
    assert record.end_reason is EndReason.EXPIRED and record.ended_at == record.ends_at
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "the 60-minute limit was reached" in page and "impersonation-banner" not in page
    assert client.get("/subscriptions/").status_code == 403  # support again, not the customer


def test_an_expired_state_changing_request_does_nothing(client, tenant, acting, customer, clock):
    subscription = subscription_of(customer, tenant)
    page = client.get(f"/subscriptions/{subscription.id}/cancel").get_data(as_text=True)
    version = re.search(r'name="version" type="hidden" value="(\d+)"', page).group(1)
    token = csrf_token(client)
    clock.advance(minutes=61)
    response = client.post(f"/subscriptions/{subscription.id}/cancel",
                           data={"csrf_token": token, "version": version})
    assert response.status_code == 303 and response.headers["Location"].startswith("/support/customers/")
    db.session.expire_all()
    assert db.session.get(Subscription, subscription.id).status is SubscriptionStatus.ACTIVE


def test_an_expired_htmx_request_gets_an_hx_redirect(client, acting, customer, clock):
    clock.advance(minutes=61)
    response = client.get("/support/impersonation/banner", headers=HX)
    assert response.status_code == 204
    assert response.headers["HX-Redirect"] == f"/support/customers/{customer.id}"


def test_the_time_limit_is_configurable(app, client, auth, support, customer, clock):
    app.config["IMPERSONATION_MINUTES"] = 5
    try:
        auth.login(support.email)
        impersonate(client, customer)
    finally:
        app.config["IMPERSONATION_MINUTES"] = 60
    assert "5 min left" in client.get("/").get_data(as_text=True)
    clock.advance(minutes=5)
    assert client.get("/").status_code == 303
    assert records()[-1].end_reason is EndReason.EXPIRED


# --- the audit in the admin area -------------------------------------------------------------------------------

def test_admins_read_the_audit_trail(client, auth, tenant, other_tenant, admin, acting, clock):
    client.get("/subscriptions/")
    clock.advance(minutes=3)
    stop(client)
    foreign = factories.user(other_tenant, role=Role.SUPPORT, name="Foreign Support")
    db.session.add(Impersonation(tenant_id=other_tenant.id, support_user_id=foreign.id,
                                 customer_id=factories.user(other_tenant).id, reason="Not yours",
                                 started_at=now(), ends_at=now() + timedelta(hours=1)))
    db.session.commit()
    auth.logout()
    auth.login(admin.email)
    page = client.get("/admin/audit").get_data(as_text=True)
    assert "Sam Support" in page and "Casey Customer" in page and "Ticket #4711: cannot order" in page
    assert "Stopped by support" in page and "Foreign Support" not in page and "Not yours" not in page
    detail = client.get(f"/admin/audit/{acting.id}").get_data(as_text=True)
    assert "/subscriptions/" in detail and "/support/impersonation/stop" in detail
    foreign_id = records()[-1].id
    assert client.get(f"/admin/audit/{foreign_id}").status_code == 404


def test_the_audit_closes_impersonations_whose_browser_never_came_back(app, admin, acting, clock):
    clock.advance(hours=2)
    browser = app.test_client()  # the admin's; the impersonating browser never asks again
    AuthActions(browser).login(admin.email)
    assert "Time limit reached" in browser.get("/admin/audit").get_data(as_text=True)
    record = records()[-1]
    assert record.end_reason is EndReason.EXPIRED and record.ended_at == record.ends_at


@pytest.mark.parametrize("who", ["customer", "support"])
def test_the_audit_is_for_admins_only(request, client, auth, who):
    auth.login(request.getfixturevalue(who).email)
    assert client.get("/admin/audit").status_code == 403


def test_the_audit_reads_three_statements_and_writes_nothing_when_nothing_is_open(app, client, auth, admin, acting,
                                                                                   clock):
    from tests.querycount import count_queries

    stop(client)
    auth.logout()
    auth.login(admin.email)
    client.get("/admin/audit")
    with count_queries(app) as log:
        page = client.get("/admin/audit").get_data(as_text=True)
    assert "Stopped by support" in page
    # The session's user; whether any impersonation is still open; the page with both users and the counts.
    assert log.count == 3, log.statements
    assert not [s for s in log.statements if s.lstrip().upper().startswith(("UPDATE", "INSERT", "DELETE"))]
