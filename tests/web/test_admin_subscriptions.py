"""The tenant admin's subscriptions: find any of the tenant's, suspend, reinstate, cancel, keep servers longer."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from app.clock import now
from app.domain.catalogue import ChangeRule, Interval
from app.domain.subscriptions import SubscriptionStatus
from app.extensions import db
from app.models import Subscription, SubscriptionEvent
from app.services import subscriptions
from app.services.actors import Actor
from tests import factories
from tests.helpers import AuthActions, post_form
from tests.querycount import count_queries
from tests.web.test_dashboard import add_subscriptions, complete_profile, place, provision

HX = {"HX-Request": "true"}
RELOAD = "This subscription changed in the meantime. Please reload the page and try again."
ACTIONS = ["suspend", "reinstate", "cancel", "keep-longer"]
TOO_BIG_FOR_POSTGRESQL = 2**31
TOO_BIG_FOR_SQLITE = 2**63


# --- helpers ---------------------------------------------------------------------------------------------------


def url(subscription_id: int, action: str = "") -> str:
    return f"/admin/subscriptions/{subscription_id}" + (f"/{action}" if action else "")


def reload(subscription: Subscription) -> Subscription:
    db.session.expire_all()
    return db.session.get(Subscription, subscription.id)


def events_of(subscription: Subscription, kind: str) -> list[SubscriptionEvent]:
    return list(db.session.scalars(select(SubscriptionEvent).where(
        SubscriptionEvent.subscription_id == subscription.id, SubscriptionEvent.kind == kind)))


def event_count(subscription: Subscription) -> int:
    return db.session.scalar(select(func.count()).select_from(SubscriptionEvent).where(
        SubscriptionEvent.subscription_id == subscription.id)) or 0


def version_on(page: str, form: str) -> str:
    match = re.search(rf'name="{form}-version" type="hidden" value="(\d+)"', page)
    assert match, f"no {form} form on the page"
    return match.group(1)


def act(client, subscription: Subscription, action: str, version: str | None = None, **fields: str):
    """Send one of the detail page's forms, with the version the page shows unless told otherwise."""
    form = action.replace("-", "_")
    if version is None:
        version = version_on(client.get(url(subscription.id)).get_data(as_text=True), form)
    data = {f"{form}-version": version, **{f"{form}-{name}": value for name, value in fields.items()}}
    return post_form(client, url(subscription.id, action), data)


def snapshot(subscription: Subscription) -> tuple[object, ...]:
    fresh = reload(subscription)
    return fresh.status, fresh.version, fresh.effective_at, fresh.servers_delete_at, event_count(fresh)


def rows(page: str) -> list[str]:
    """The subscription ids the list shows, in order."""
    return re.findall(r'<span class="visually-hidden">Subscription </span>#(\d+)</a>', page)


# --- fixtures --------------------------------------------------------------------------------------------------


@pytest.fixture
def plan(tenant):
    return factories.plan(tenant, name="Cloud S")


@pytest.fixture
def active(tenant, customer, plan, cloud, clock) -> Subscription:
    """Casey's subscription with one running server, billing started (period end 15 Apr 2026)."""
    complete_profile(customer)
    subscription = place(tenant, customer, plan)
    provision(clock)
    subscription = reload(subscription)
    assert subscription.status == "active"
    return subscription


@pytest.fixture
def as_admin(client, auth, admin):
    auth.login(admin.email)
    return admin


@pytest.fixture
def foreign(other_tenant) -> Subscription:
    """A subscription of another tenant."""
    stranger = factories.user(other_tenant, email="olga@example.com", name="Olga Elsewhere")
    subscription = Subscription(tenant_id=other_tenant.id, user_id=stranger.id,
                                plan_id=factories.plan(other_tenant, name="Elsewhere").id,
                                status=SubscriptionStatus.ACTIVE, price_minor=990, currency="EUR",
                                interval=Interval.MONTH, current_period_end=now() + timedelta(days=30))
    db.session.add(subscription)
    db.session.commit()
    return subscription


def suspended(tenant, admin, subscription: Subscription, reason: str = "Unpaid invoice 42") -> Subscription:
    subscriptions.suspend(tenant=tenant, actor=Actor(admin), subscription_id=subscription.id, reason=reason)
    return reload(subscription)


def canceled(tenant, admin, subscription: Subscription) -> Subscription:
    suspended(tenant, admin, subscription)  # a suspended subscription is canceled at once, whatever the plan
    subscriptions.cancel(tenant=tenant, actor=Actor(admin), subscription_id=subscription.id, reason="Abuse")
    subscription = reload(subscription)
    assert subscription.status == "canceled"
    return subscription


# --- the list --------------------------------------------------------------------------------------------------


def test_the_list_shows_every_subscription_of_the_tenant_newest_first(client, as_admin, tenant, plan, active,
                                                                      foreign):
    olivia = factories.user(tenant, email="olivia@example.com", name="Olivia Other")
    complete_profile(olivia)
    newer = place(tenant, olivia, plan)  # still setting up
    response = client.get("/admin/subscriptions")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert rows(page) == [str(newer.id), str(active.id)]
    assert f'href="/admin/subscriptions/{active.id}"' in page
    assert "Casey Customer" in page and "casey@example.com" in page and "Cloud S" in page
    assert "Active" in page and "Setting up" in page
    assert "1 of 1 ready" in page and "0 of 1 ready" in page
    assert "€9.90" in page and "per month" in page and "Renews 15 Apr 2026" in page
    assert "Olga Elsewhere" not in page and "Elsewhere" not in page
    assert 'aria-current="page">Subscriptions' in page


def test_the_list_filters_by_status_and_search(client, as_admin, tenant, plan, active):
    olivia = factories.user(tenant, email="olivia@example.com", name="Olivia O'Brien")
    complete_profile(olivia)
    pending = place(tenant, olivia, plan)

    def shown(query: str) -> list[str]:
        response = client.get(f"/admin/subscriptions?{query}")
        assert response.status_code == 200, query
        return rows(response.get_data(as_text=True))

    assert shown("status=active") == [str(active.id)]
    assert shown("status=pending_fulfillment") == [str(pending.id)]
    assert shown("status=suspended") == []
    assert shown("q=OLIVIA") == [str(pending.id)]
    assert shown("q=casey%40example") == [str(active.id)]
    assert shown(f"q=%23{active.id}") == [str(active.id)]
    assert shown(f"q=%23{active.id}&status=pending_fulfillment") == []
    assert shown("q=olivia&status=active") == []
    assert shown("q=%25") == [] and shown("q=_") == []  # LIKE's wildcards are taken literally
    # Values that are no filter are ignored, never an error.
    for junk in ("status=deleted", "status=", "status=ACTIVE%27--", "q=", f"q=%23{TOO_BIG_FOR_SQLITE}",
                 "page=abc", "page=-1", "page=99999999999999999999", "q=" + "x" * 5000, "status=active&status=x"):
        assert client.get(f"/admin/subscriptions?{junk}").status_code == 200, junk
    assert len(shown("status=deleted")) == 2
    assert shown(f"q=%23{TOO_BIG_FOR_SQLITE}") == [] and shown("q=%23") == []


def test_the_list_keeps_its_filters_in_the_select_and_returns_only_the_results_to_htmx(client, as_admin, active):
    page = client.get("/admin/subscriptions?status=active&q=casey").get_data(as_text=True)
    assert '<option selected value="active">Active</option>' in page and 'value="casey"' in page
    response = client.get("/admin/subscriptions?status=active&q=casey", headers=HX)
    fragment = response.get_data(as_text=True)
    assert "<html" not in fragment and fragment.lstrip().startswith('<div id="results"')
    assert rows(fragment) == [str(active.id)]
    assert "HX-Request" in response.headers["Vary"]


def test_the_list_pages_by_25_and_keeps_the_filters(app, client, as_admin, tenant, customer):
    service_type = factories.service_type(tenant)
    add_subscriptions(tenant, customer, 30, service_type=service_type)  # half active, half pending_cancel
    first = client.get("/admin/subscriptions").get_data(as_text=True)
    assert len(rows(first)) == 25 and 'href="/admin/subscriptions?page=2"' in first
    assert len(rows(client.get("/admin/subscriptions?page=2").get_data(as_text=True))) == 5
    filtered = client.get("/admin/subscriptions?status=active&q=casey").get_data(as_text=True)
    assert len(rows(filtered)) == 15 and "page=2" not in filtered
    assert rows(client.get("/admin/subscriptions?page=99999999999").get_data(as_text=True)) == []

    with count_queries(app) as full:
        client.get("/admin/subscriptions")
    with count_queries(app) as short:
        client.get("/admin/subscriptions?page=2")
    assert full.count == short.count == 2, full.statements  # the session's user; the page with its servers counted
    assert "2 of 2 ready" not in first and "1 of 2 ready" in first  # add_subscriptions: one of two servers active
    assert f'href="/admin/subscriptions/{rows(first)[0]}"' in first  # each row links to its page


# --- the detail page -------------------------------------------------------------------------------------------


def test_the_detail_page_shows_the_subscription_its_servers_dates_history_and_actions(client, as_admin, active):
    item = active.items[0]
    response = client.get(url(active.id))
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Cloud S" in page and "Casey Customer" in page and "casey@example.com" in page
    assert "Active" in page and "€9.90" in page and "Renews 15 Apr 2026" in page
    assert item.hostname in page and f"<code>{item.fqdn}</code>" in page
    assert f"<code>{item.ipv4}</code>" in page and f"<code>{item.ipv6}</code>" in page
    assert "Ordered" in page and "Renews on" in page  # the timeline
    assert "Activated: Setting up → Active" in page and "by Casey Customer" in page  # the history
    assert "Suspend subscription" in page and "Cancel subscription" in page
    assert "ends at the end of the paid period, on <strong>15 Apr 2026, 10:00 UTC</strong>" in page
    assert "Reinstate subscription" not in page and "Keep the servers longer" not in page
    for form in ("suspend", "cancel"):  # each a POST with its CSRF token and the version shown
        assert f'name="{form}-csrf_token"' in page and version_on(page, form) == str(active.version)


def test_a_subscription_setting_up_can_only_be_canceled_at_once(client, as_admin, tenant, customer, plan, clock):
    complete_profile(customer)
    subscription = place(tenant, customer, plan)
    page = client.get(url(subscription.id)).get_data(as_text=True)
    assert "Cancel subscription" in page and "It is canceled <strong>now</strong>" in page
    assert "Suspend subscription" not in page and "Reinstate subscription" not in page


# --- who may ---------------------------------------------------------------------------------------------------


def test_another_tenants_subscription_is_not_found_on_every_route(client, as_admin, foreign):
    before = snapshot(foreign)
    assert client.get(url(foreign.id)).status_code == 404
    for action in ACTIONS:
        response = act(client, foreign, action, version=str(foreign.version), reason="Looking elsewhere",
                       until="2030-01-01")
        assert response.status_code == 404, action
        assert act(client, foreign, action, version="1").status_code == 404, action  # invalid form: still 404
    assert snapshot(foreign) == before
    assert str(foreign.id) not in rows(client.get(f"/admin/subscriptions?q=%23{foreign.id}").get_data(as_text=True))


@pytest.mark.parametrize("who", ["customer", "support"])
def test_customers_and_support_are_refused_on_every_route(request, client, auth, active, who):
    auth.login(request.getfixturevalue(who).email)
    before = snapshot(active)
    assert client.get("/admin/subscriptions").status_code == 403
    assert client.get(url(active.id)).status_code == 403
    assert client.get("/admin/subscriptions", headers=HX).status_code == 403
    for action in ACTIONS:
        response = act(client, active, action, version=str(active.version), reason="Not mine to do",
                       until="2030-01-01")
        assert response.status_code == 403, action
    assert snapshot(active) == before


def test_anonymous_visitors_are_sent_to_log_in(client, active):
    response = client.get(url(active.id))
    assert response.status_code == 302 and response.headers["Location"].startswith("/login?next=")


# --- suspend and reinstate -------------------------------------------------------------------------------------


def test_suspend_powers_off_records_the_admin_and_reason_and_the_customer_sees_it(app, client, as_admin, tenant,
                                                                                 customer, active, cloud):
    item = active.items[0]
    response = act(client, active, "suspend", reason="Unpaid invoice 2026-0042")
    assert response.status_code == 303 and response.headers["Location"] == url(active.id)
    subscription = reload(active)
    assert subscription.status == "suspended"
    assert subscription.effective_at == now() + timedelta(days=30)  # the default grace period
    [event] = events_of(subscription, "suspend")
    assert event.actor_id == as_admin.id and event.impersonator_id is None
    assert event.reason == "Unpaid invoice 2026-0042" and event.to_status == "suspended"
    assert ("power_off", item.server_id) in cloud.calls

    page = client.get(url(active.id)).get_data(as_text=True)
    assert f"Subscription #{active.id} is suspended" in page and "canceled on 14 April 2026" in page
    assert "Suspended" in page and "Unpaid invoice 2026-0042" in page and "by Alex Admin" in page
    assert "Reinstate subscription" in page and "Suspend subscription" not in page

    theirs = app.test_client()
    AuthActions(theirs).login(customer.email)
    mine = theirs.get(f"/subscriptions/{active.id}").get_data(as_text=True)
    assert "Suspended since" in mine and "Unpaid invoice 2026-0042" in mine
    server = theirs.get(f"/subscriptions/{active.id}/items/{item.id}/server-info", headers=HX).get_data(as_text=True)
    assert "Server controls are off while the subscription is suspended" in server and "<button" not in server


def test_suspend_with_a_grace_end_day(client, as_admin, active):
    response = act(client, active, "suspend", reason="Chargeback", grace_ends_on="2026-04-01")
    assert response.status_code == 303
    assert reload(active).effective_at == datetime(2026, 4, 1, tzinfo=UTC)
    assert "canceled on 1 April 2026" in client.get(url(active.id)).get_data(as_text=True)


@pytest.mark.parametrize(("day", "message"), [("2026-03-15", "Choose a day after today."),
                                              ("2020-01-01", "Choose a day after today."),
                                              ("2099-01-01", "within the next ten years"),
                                              ("9999-12-31", "within the next ten years"),
                                              ("2026-13-45", "Not a valid date value."),
                                              ("tomorrow", "Not a valid date value."),
                                              ("99999999-01-01", "Not a valid date value.")])
def test_a_grace_end_day_that_is_no_day_ahead_is_refused(client, as_admin, active, day, message):
    before = snapshot(active)
    response = act(client, active, "suspend", reason="Chargeback", grace_ends_on=day)
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert snapshot(active) == before


def test_reinstate_makes_it_active_again_with_the_reason(client, as_admin, tenant, admin, active, cloud):
    suspended(tenant, admin, active)
    response = act(client, active, "reinstate", reason="Paid by bank transfer")
    assert response.status_code == 303
    subscription = reload(active)
    assert subscription.status == "active" and subscription.suspended_at is None
    [event] = events_of(subscription, "reinstate")
    assert event.actor_id == admin.id and event.reason == "Paid by bank transfer"
    assert ("power_on", active.items[0].server_id) in cloud.calls
    page = client.get(url(active.id)).get_data(as_text=True)
    assert f"Subscription #{active.id} is reinstated" in page and "Suspend subscription" in page


def test_reinstate_after_the_grace_period_is_refused_with_the_reason(client, as_admin, tenant, admin, active, clock):
    suspended(tenant, admin, active)
    clock.advance(days=31)  # the grace-end job has not run yet
    before = snapshot(active)
    response = act(client, active, "reinstate", reason="Paid late")
    assert response.status_code == 400
    assert "The grace period ended on 14 April 2026" in response.get_data(as_text=True)
    assert snapshot(active) == before


# --- stale pages and missing reasons ---------------------------------------------------------------------------


def test_a_stale_page_is_told_to_reload_and_changes_nothing(client, as_admin, tenant, admin, active):
    stale = version_on(client.get(url(active.id)).get_data(as_text=True), "suspend")
    subscriptions.suspend(tenant=tenant, actor=Actor(admin), subscription_id=active.id, reason="In another tab")
    subscriptions.reinstate(tenant=tenant, actor=Actor(admin), subscription_id=active.id, reason="Changed my mind")
    before = snapshot(active)
    response = act(client, active, "suspend", version=stale, reason="Too late")
    page = response.get_data(as_text=True)
    assert response.status_code == 409 and RELOAD in page and "Nothing was changed." in page
    assert snapshot(active) == before
    assert version_on(page, "suspend") == str(reload(active).version)  # the page shown now is current


@pytest.mark.parametrize("action", ["suspend", "cancel"])
@pytest.mark.parametrize("reason", ["", "   ", "ab", "x" * 501])
def test_a_missing_or_wrong_length_reason_is_a_form_error(client, as_admin, active, action, reason):
    before = snapshot(active)
    response = act(client, active, action, reason=reason)
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert 'aria-invalid="true"' in page and ("Give a reason" in page or "between 3 and 500" in page)
    assert snapshot(active) == before


def test_reinstate_without_a_reason_is_a_form_error(client, as_admin, tenant, admin, active):
    suspended(tenant, admin, active)
    before = snapshot(active)
    response = act(client, active, "reinstate", reason="")
    assert response.status_code == 400 and "Give a reason" in response.get_data(as_text=True)
    assert snapshot(active) == before


def test_an_action_the_status_does_not_allow_is_refused_with_a_message(client, as_admin, active):
    before = snapshot(active)
    response = act(client, active, "reinstate", version=str(active.version), reason="Nothing to reinstate")
    assert response.status_code == 400
    assert "This subscription is not suspended." in response.get_data(as_text=True)
    response = act(client, active, "reinstate", version=str(active.version), reason="")  # and its form is not shown
    assert response.status_code == 400 and "Give a reason" in response.get_data(as_text=True)
    assert snapshot(active) == before


# --- cancel ----------------------------------------------------------------------------------------------------


def test_cancel_by_an_admin_follows_the_plans_rule_period_end(client, as_admin, active):
    response = act(client, active, "cancel", reason="Customer asked by phone, ticket 88")
    assert response.status_code == 303
    subscription = reload(active)
    assert subscription.status == "pending_cancel" and subscription.effective_at == subscription.current_period_end
    [event] = events_of(subscription, "cancel")
    assert event.actor_id == as_admin.id and event.reason == "Customer asked by phone, ticket 88"
    page = client.get(url(active.id)).get_data(as_text=True)
    assert f"Subscription #{active.id} ends on 15 April 2026" in page
    assert "Cancel subscription" not in page and "only the customer can take the cancellation back" in page


def test_cancel_by_an_admin_follows_the_plans_rule_immediate(client, as_admin, tenant, customer, cloud, clock):
    complete_profile(customer)
    subscription = place(tenant, customer, factories.plan(tenant, name="Hourly",
                                                          cancellation_rule=ChangeRule.IMMEDIATE))
    provision(clock)
    page = client.get(url(subscription.id)).get_data(as_text=True)
    assert "It is canceled <strong>now</strong>, as the plan says" in page
    assert act(client, subscription, "cancel", reason="Abuse report 17").status_code == 303
    subscription = reload(subscription)
    assert subscription.status == "canceled" and subscription.canceled_at == now()
    assert subscription.servers_delete_at == now() + timedelta(days=tenant.retention_days)
    page = client.get(url(subscription.id)).get_data(as_text=True)
    assert f"Subscription #{subscription.id} is canceled." in page and "Keep the servers longer" in page
    assert "Cancel subscription" not in page and "Suspend subscription" not in page


def test_cancel_a_suspended_subscription_at_once(client, as_admin, tenant, admin, active):
    suspended(tenant, admin, active)
    assert "It is canceled <strong>now</strong>" in client.get(url(active.id)).get_data(as_text=True)
    assert act(client, active, "cancel", reason="Grace not needed").status_code == 303
    assert reload(active).status == "canceled"


# --- keep the servers longer -----------------------------------------------------------------------------------


def test_keep_longer_moves_the_deletion_date_with_the_reason(client, as_admin, tenant, admin, active):
    subscription = canceled(tenant, admin, active)
    assert subscription.servers_delete_at == datetime(2026, 3, 22, 10, 0, 30, tzinfo=UTC)
    page = client.get(url(active.id)).get_data(as_text=True)
    assert 'min="2026-03-23"' in page
    response = act(client, active, "keep-longer", until="2026-04-30", reason="Customer needs the data, ticket 9")
    assert response.status_code == 303
    subscription = reload(active)
    assert subscription.servers_delete_at == datetime(2026, 4, 30, tzinfo=UTC)
    [event] = events_of(subscription, "retention_extended")
    assert event.actor_id == admin.id and event.reason == "Customer needs the data, ticket 9"
    page = client.get(url(active.id)).get_data(as_text=True)
    assert f"The servers of subscription #{active.id} are kept until 30 April 2026." in page
    assert "Servers deleted on" in page and "30 Apr 2026" in page


@pytest.mark.parametrize("day", ["2026-03-20", "2026-03-22", "2026-03-01"])
def test_keep_longer_refuses_a_day_not_after_the_current_deletion(client, as_admin, tenant, admin, active, day):
    canceled(tenant, admin, active)
    before = snapshot(active)
    response = act(client, active, "keep-longer", until=day, reason="Keep a bit")
    assert response.status_code == 400
    assert "Choose a date after the current deletion date." in response.get_data(as_text=True)
    assert snapshot(active) == before


@pytest.mark.parametrize(("day", "message"), [("", "Choose a day."), ("junk", "Not a valid date value."),
                                              ("2026-02-30", "Not a valid date value."),
                                              ("9999-12-31", "within the next ten years")])
def test_keep_longer_refuses_what_is_no_day(client, as_admin, tenant, admin, active, day, message):
    canceled(tenant, admin, active)
    before = snapshot(active)
    response = act(client, active, "keep-longer", until=day, reason="Keep a bit")
    assert response.status_code == 400 and message in response.get_data(as_text=True)
    assert snapshot(active) == before


def test_keep_longer_refuses_a_subscription_that_is_not_canceled(client, as_admin, active):
    before = snapshot(active)
    response = act(client, active, "keep-longer", version=str(active.version), until="2026-05-01",
                   reason="Keep it")
    assert response.status_code == 400
    assert "Only a canceled subscription" in response.get_data(as_text=True)
    assert snapshot(active) == before


def test_keep_longer_from_a_stale_page_is_told_to_reload(client, as_admin, tenant, admin, active):
    canceled(tenant, admin, active)
    stale = version_on(client.get(url(active.id)).get_data(as_text=True), "keep_longer")
    subscriptions.extend_retention(tenant=tenant, actor=Actor(admin), subscription_id=active.id,
                                   until=datetime(2026, 4, 1, tzinfo=UTC), reason="Another tab")
    before = snapshot(active)
    response = act(client, active, "keep-longer", version=stale, until="2026-05-01", reason="Keep it")
    assert response.status_code == 409 and RELOAD in response.get_data(as_text=True)
    assert snapshot(active) == before


# --- hostile values --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("number", [TOO_BIG_FOR_POSTGRESQL, TOO_BIG_FOR_SQLITE, 10**20])
def test_ids_beyond_the_databases_integers_are_not_found(client, as_admin, number):
    assert client.get(f"/admin/subscriptions/{number}").status_code == 404
    for action in ACTIONS:
        response = post_form(client, f"/admin/subscriptions/{number}/{action}", {"reason": "Hostile"})
        assert response.status_code == 404, action


@pytest.mark.parametrize("version", ["abc", "", "-1", "1.5", str(TOO_BIG_FOR_SQLITE), "9" * 40])
def test_junk_versions_change_nothing(client, as_admin, active, version):
    before = snapshot(active)
    for action in ("suspend", "cancel"):
        response = act(client, active, action, version=version, reason="Hostile version")
        assert response.status_code in (400, 409), (action, response.status_code)
    assert snapshot(active) == before


def test_posts_without_a_csrf_token_are_refused(client, as_admin, active):
    before = snapshot(active)
    response = client.post(url(active.id, "suspend"), data={"suspend-version": str(active.version),
                                                            "suspend-reason": "No token"})
    assert response.status_code == 400
    assert snapshot(active) == before


def test_get_on_an_action_is_not_allowed(client, as_admin, active):
    for action in ACTIONS:
        assert client.get(url(active.id, action)).status_code == 405
