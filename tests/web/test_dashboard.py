"""The customer's dashboard: subscriptions, servers, power controls, cancel and resume (RELIABILITY 6, 10, 12, 16)."""

from __future__ import annotations

import itertools
import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.clock import now
from app.domain.catalogue import Interval
from app.domain.subscriptions import ItemStatus, SubscriptionStatus
from app.extensions import db
from app.models import Subscription, SubscriptionEvent, SubscriptionItem
from app.services import events, ordering
from app.services.actors import Actor
from tests import factories
from tests.helpers import complete_profile, csrf_token, post_form, run_scheduled_tasks
from tests.querycount import count_queries

HX = {"HX-Request": "true"}
_VERSION = re.compile(r'name="version" type="hidden" value="(\d+)"')
_keys = itertools.count(1)


# --- helpers ---------------------------------------------------------------------------------------


def place(tenant, user, plan, quantity: int = 1) -> Subscription:
    return ordering.place_order(tenant=tenant, actor=Actor(user), plan_id=plan.id, requested_config={},
                                quantity=quantity, auto_backorder=False, idempotency_key=f"key-{next(_keys)}")


def provision(clock) -> None:
    """Let the sandbox boot the servers and run the polls a worker would run."""
    clock.advance(seconds=30)
    run_scheduled_tasks()
    db.session.expire_all()


def reload(subscription: Subscription) -> Subscription:
    db.session.expire_all()
    return db.session.get(Subscription, subscription.id)


def count_events(subscription: Subscription, *where: object) -> int:
    return db.session.scalar(select(func.count()).select_from(SubscriptionEvent).where(
        SubscriptionEvent.subscription_id == subscription.id, *where)) or 0


def version_on(page: str) -> str:
    match = _VERSION.search(page)
    assert match, "no version field on the page"
    return match.group(1)


def buttons(fragment: str) -> dict[str, bool]:
    """Power buttons by label -> enabled."""
    found = re.findall(r"<button([^>]*)>(Start|Stop|Restart)</button>", fragment)
    return {label: " disabled " not in f" {attributes} " for attributes, label in found}


def polls(fragment: str) -> bool:
    return re.search(r'hx-trigger="every \d+m?s"', fragment) is not None


def item_url(subscription: Subscription, item: SubscriptionItem, tail: str = "") -> str:
    return f"/subscriptions/{subscription.id}/items/{item.id}{tail}"


def power(client, subscription: Subscription, item: SubscriptionItem, command: str, **kwargs: object):
    return post_form(client, item_url(subscription, item, f"/actions/{command}"), **kwargs)


def cancel(client, subscription: Subscription, reason: str = "", version: str | None = None):
    path = f"/subscriptions/{subscription.id}/cancel"
    version = version or version_on(client.get(path).get_data(as_text=True))
    return post_form(client, path, {"version": version, "reason": reason})


def resume(client, subscription: Subscription, version: str | None = None, **kwargs: object):
    version = version or version_on(client.get(f"/subscriptions/{subscription.id}").get_data(as_text=True))
    return post_form(client, f"/subscriptions/{subscription.id}/resume", {"version": version}, **kwargs)


def add_subscriptions(tenant, user, how_many: int, *, service_type) -> None:
    """Rows as the dashboard reads them, each with its own plan, product and two items (not provisioned)."""
    for n in range(how_many):
        plan = factories.plan(tenant, service_type_=service_type, name=f"Bulk plan {n}")
        status = SubscriptionStatus.PENDING_CANCEL if n % 2 else SubscriptionStatus.ACTIVE
        subscription = Subscription(
            tenant_id=tenant.id, user_id=user.id, plan_id=plan.id, status=status, quantity=2, price_minor=990,
            currency="EUR", interval=Interval.MONTH, requested_config=plan.config_defaults,
            current_period_end=now() + timedelta(days=30), effective_at=now() + timedelta(days=30) if n % 2 else None,
        )
        db.session.add(subscription)
        db.session.flush()
        add_items(subscription, 2)
    db.session.commit()


_names = itertools.count(1)  # server names are unique within the tenant


def add_items(subscription: Subscription, how_many: int) -> None:
    for n in range(how_many):
        item = SubscriptionItem(tenant_id=subscription.tenant_id, subscription_id=subscription.id,
                                status=ItemStatus.ACTIVE if n % 2 else ItemStatus.PROVISIONING,
                                provider="hetzner", config={"serverType": "cx22", "location": "nbg1"},
                                hostname=f"bulk-{subscription.id}-{next(_names)}", ipv4=f"192.0.2.{n % 250 + 1}")
        db.session.add(item)
        db.session.flush()
        events.record(subscription, "server_created", item=item, actor=Actor(subscription.user))
    db.session.commit()


# --- fixtures --------------------------------------------------------------------------------------


@pytest.fixture
def plan(tenant):
    return factories.plan(tenant, name="Cloud S")


@pytest.fixture
def active(tenant, logged_in, plan, cloud, clock) -> Subscription:
    """The logged-in customer's subscription, provisioned: one running server, billing started."""
    subscription = place(tenant, logged_in, plan)
    provision(clock)
    subscription = reload(subscription)
    assert subscription.status == "active"
    return subscription


@pytest.fixture
def foreign(tenant, plan, cloud, clock) -> Subscription:
    """Another customer's active subscription with a running server, in the same tenant."""
    other = factories.user(tenant, email="other@example.com", name="Olivia Other")
    complete_profile(other)
    subscription = place(tenant, other, plan)
    provision(clock)
    return reload(subscription)


# --- the dashboard ---------------------------------------------------------------------------------


def test_the_dashboard_lists_only_the_customers_own_subscriptions(client, tenant, other_tenant, active, foreign):
    factories.plan(other_tenant, name="Elsewhere")
    page = client.get("/subscriptions/").get_data(as_text=True)
    assert f'href="/subscriptions/{active.id}"' in page
    assert f'href="/subscriptions/{foreign.id}"' not in page
    assert page.count("<tr>") == 2  # the head and one subscription
    assert "Cloud S" in page and "Active" in page and "€9.90" in page and "per month" in page
    assert "1 of 1 ready" in page
    assert "Renews 15 Apr 2026" in page


def test_the_dashboard_shows_when_a_pending_cancellation_ends(client, active):
    cancel(client, active)
    page = client.get("/subscriptions/").get_data(as_text=True)
    assert "Pending cancellation" in page and "Ends 15 Apr 2026" in page and "Renews" not in page


def test_an_empty_dashboard_invites_to_order(client, logged_in):
    page = client.get("/subscriptions/").get_data(as_text=True)
    assert "No subscriptions yet" in page and "See the plans" in page
    assert "<table" not in page


def test_the_dashboard_and_its_fragments_are_not_stored(client, active):
    item = active.items[0]
    pages = ["/subscriptions/", f"/subscriptions/{active.id}", f"/subscriptions/{active.id}/cancel"]
    fragments = [f"/subscriptions/{active.id}/summary", item_url(active, item), item_url(active, item, "/server-info")]
    for path, headers in [*((p, {}) for p in pages), *((f, HX) for f in fragments)]:
        response = client.get(path, headers=headers)
        assert response.status_code == 200, path
        assert response.headers["Cache-Control"] == "no-store", path


def test_anonymous_visitors_are_sent_to_log_in(client, foreign):
    item = foreign.items[0]
    response = client.get("/subscriptions/")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login?next=")
    fragment = client.get(item_url(foreign, item, "/server-info"), headers=HX)
    assert fragment.status_code == 204 and fragment.headers["HX-Redirect"].startswith("/login?next=")
    assert fragment.get_data(as_text=True) == ""


@pytest.mark.parametrize("who", ["admin", "support"])
def test_staff_have_no_customer_dashboard(request, client, auth, who):
    auth.login(request.getfixturevalue(who).email)
    assert client.get("/subscriptions/").status_code == 403


# --- the detail page -------------------------------------------------------------------------------


def test_the_detail_page_shows_the_servers_and_the_history_with_who_acted(client, active, support):
    events.record(active, "note", actor=Actor(active.user, impersonator=support), reason="Checked the DNS")
    db.session.commit()
    item = active.items[0]
    page = client.get(f"/subscriptions/{active.id}").get_data(as_text=True)
    assert "Cloud S" in page and "Active" in page and "Renews" in page and "15 Apr 2026" in page
    assert item.hostname in page and f"<code>{item.fqdn}</code>" in page
    assert f"<code>{item.ipv4}</code>" in page and f"<code>{item.ipv6}</code>" in page
    assert item.fqdn.endswith(".cloud.example.test")
    assert "Ordered: Setting up" in page and "by Casey Customer" in page
    assert "Activated: Setting up → Active" in page and "by the portal" in page
    assert "by support Sam Support for Casey Customer" in page and "Checked the DNS" in page
    assert "Cancel subscription" in page


def test_the_item_polls_while_provisioning_and_stops_once_active(client, tenant, logged_in, plan, cloud, clock):
    subscription = place(tenant, logged_in, plan)
    item = subscription.items[0]
    response = client.get(item_url(subscription, item), headers=HX)
    fragment = response.get_data(as_text=True)
    assert response.status_code == 200 and "<html" not in fragment
    assert 'data-item-status="provisioning"' in fragment and "Booting your server" in fragment
    assert f'hx-get="{item_url(subscription, item)}" hx-trigger="every 2s"' in fragment
    assert "HX-Request" in response.headers["Vary"]
    summary = client.get(f"/subscriptions/{subscription.id}/summary", headers=HX).get_data(as_text=True)
    assert "Setting up" in summary and polls(summary)

    provision(clock)
    fragment = client.get(item_url(subscription, item), headers=HX).get_data(as_text=True)
    assert 'data-item-status="active"' in fragment and not polls(fragment)
    assert 'hx-trigger="load"' in fragment  # asks once for the live server info
    summary = client.get(f"/subscriptions/{subscription.id}/summary", headers=HX).get_data(as_text=True)
    assert "Active" in summary and not polls(summary)


def test_the_server_info_fragment_shows_the_live_power_state(client, active, cloud):
    item = active.items[0]
    response = client.get(item_url(active, item, "/server-info"), headers=HX)
    fragment = response.get_data(as_text=True)
    assert response.status_code == 200 and "<html" not in fragment
    assert 'data-power="running"' in fragment and not polls(fragment)
    assert buttons(fragment) == {"Start": False, "Stop": True, "Restart": True}
    assert cloud.calls[-1] == ("server_info", item.server_id)
    assert "HX-Request" in response.headers["Vary"]


def test_stop_shows_stopping_then_off(client, active, cloud, clock):
    item = active.items[0]
    response = power(client, active, item, "stop", headers=HX)
    fragment = response.get_data(as_text=True)
    assert response.status_code == 200 and "<html" not in fragment
    assert 'data-power="stopping"' in fragment and "Stopping" in fragment
    assert buttons(fragment) == {"Start": False, "Stop": False, "Restart": False}
    assert polls(fragment)
    assert ("power_off", item.server_id) in cloud.calls
    assert "HX-Request" in response.headers["Vary"]

    clock.advance(seconds=10)
    fragment = client.get(item_url(active, item, "/server-info"), headers=HX).get_data(as_text=True)
    assert 'data-power="off"' in fragment and not polls(fragment)
    assert buttons(fragment) == {"Start": True, "Stop": False, "Restart": False}
    assert "Server stop" in client.get(f"/subscriptions/{active.id}").get_data(as_text=True)


def test_a_power_action_while_another_runs_is_answered_busy(client, active, cloud):
    item = active.items[0]
    power(client, active, item, "stop", headers=HX)
    response = power(client, active, item, "start", headers=HX)
    fragment = response.get_data(as_text=True)
    assert response.status_code == 409
    assert "Another action is still running on this server." in fragment and "<html" not in fragment
    assert 'data-power="stopping"' in fragment and polls(fragment)
    assert [call[0] for call in cloud.calls].count("power_off") == 1
    assert count_events(active, SubscriptionEvent.kind == "server_start") == 0


def test_a_power_action_without_htmx_redirects_back_with_a_message(client, active):
    item = active.items[0]
    response = power(client, active, item, "restart")
    assert response.status_code == 303 and response.headers["Location"] == f"/subscriptions/{active.id}"
    busy = power(client, active, item, "stop")
    assert busy.status_code == 303
    assert "Another action is still running" in client.get(busy.headers["Location"]).get_data(as_text=True)


def test_an_unknown_power_command_is_not_found(client, active, cloud):
    before = list(cloud.calls)
    assert power(client, active, active.items[0], "destroy", headers=HX).status_code == 404
    assert cloud.calls == before


# --- cancel and resume -----------------------------------------------------------------------------


def test_cancel_asks_for_confirmation_then_ends_at_the_period_end_and_can_be_resumed(client, active):
    confirmation = client.get(f"/subscriptions/{active.id}/cancel")
    page = confirmation.get_data(as_text=True)
    assert confirmation.status_code == 200
    assert "Cancel Cloud S?" in page and "stays active until <strong>15 Apr 2026, 10:00 UTC</strong>" in page
    assert reload(active).status == "active"  # looking changes nothing

    response = cancel(client, active, reason="Too expensive")
    assert response.status_code == 303 and response.headers["Location"] == f"/subscriptions/{active.id}"
    assert reload(active).status == "pending_cancel"
    detail = client.get(f"/subscriptions/{active.id}").get_data(as_text=True)
    assert "Your cancellation is scheduled" in detail
    assert "Pending cancellation" in detail and "Ends 15 Apr 2026, 10:00 UTC unless you resume." in detail
    assert "Resume subscription" in detail and "Too expensive" in detail

    response = resume(client, active)
    assert response.status_code == 303
    assert reload(active).status == "active" and reload(active).effective_at is None
    detail = client.get(f"/subscriptions/{active.id}").get_data(as_text=True)
    assert "Welcome back!" in detail and "Resume subscription" not in detail and "Cancel subscription" in detail


def test_resume_from_htmx_redirects_the_whole_page(client, active):
    cancel(client, active)
    response = resume(client, active, headers=HX)
    assert response.status_code == 204 and response.headers["HX-Redirect"] == f"/subscriptions/{active.id}"
    assert reload(active).status == "active"


def test_a_form_from_a_stale_page_changes_nothing_and_asks_to_reload(client, active):
    stale = version_on(client.get(f"/subscriptions/{active.id}/cancel").get_data(as_text=True))
    cancel(client, active)  # another tab cancels ...
    resume(client, active)  # ... and resumes
    changes = count_events(active)

    response = cancel(client, active, reason="from the old tab", version=stale)
    assert response.status_code == 303
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "This subscription changed in the meantime. Please reload the page and try again." in page
    assert reload(active).status == "active" and count_events(active) == changes
    assert "from the old tab" not in page


def test_cancel_without_a_version_is_refused(client, active):
    response = post_form(client, f"/subscriptions/{active.id}/cancel", {"reason": "no version"})
    assert response.status_code == 400
    assert reload(active).status == "active"


def test_cancel_and_resume_without_csrf_are_refused(client, active):
    version = str(active.version)
    for path in (f"/subscriptions/{active.id}/cancel", f"/subscriptions/{active.id}/resume"):
        assert client.post(path, data={"version": version}).status_code == 400
        assert client.post(path, data={"version": version}, headers=HX).status_code == 400
    assert reload(active).status == "active"


# --- other people's subscriptions (row 6) and forged htmx (row 10) ---------------------------------


def test_another_customers_subscription_is_not_found_and_no_call_reaches_the_cloud(client, active, foreign, cloud):
    item = foreign.items[0]
    assert item.server_id is not None
    before = list(cloud.calls)
    for path in (f"/subscriptions/{foreign.id}", f"/subscriptions/{foreign.id}/summary",
                 f"/subscriptions/{foreign.id}/cancel", item_url(foreign, item),
                 item_url(foreign, item, "/server-info")):
        assert client.get(path).status_code == 404, path
        assert client.get(path, headers=HX).status_code == 404, path
    for command in ("start", "stop", "restart"):
        assert power(client, foreign, item, command).status_code == 404
        assert power(client, foreign, item, command, headers=HX).status_code == 404
    assert cancel(client, foreign, version=str(foreign.version)).status_code == 404
    assert resume(client, foreign, version=str(foreign.version)).status_code == 404
    assert cloud.calls == before
    assert reload(foreign).status == "active"


def test_an_own_subscription_with_another_customers_item_is_not_found(client, active, foreign, cloud):
    before = list(cloud.calls)
    theirs = foreign.items[0]
    assert client.get(f"/subscriptions/{active.id}/items/{theirs.id}/server-info", headers=HX).status_code == 404
    assert client.get(f"/subscriptions/{active.id}/items/{theirs.id}", headers=HX).status_code == 404
    assert post_form(client, f"/subscriptions/{active.id}/items/{theirs.id}/actions/stop",
                     headers=HX).status_code == 404
    assert cloud.calls == before


def test_another_tenants_subscription_is_not_found(client, other_tenant, active, cloud):
    stranger = factories.user(other_tenant)
    subscription = Subscription(tenant_id=other_tenant.id, user_id=stranger.id,
                                plan_id=factories.plan(other_tenant).id, status=SubscriptionStatus.ACTIVE,
                                price_minor=100, currency="EUR", interval=Interval.MONTH)
    db.session.add(subscription)
    db.session.commit()
    assert client.get(f"/subscriptions/{subscription.id}").status_code == 404
    assert client.get(f"/subscriptions/{subscription.id}", base_url="http://other.test").status_code in (302, 404)


def test_a_forged_hx_request_header_gives_no_extra_access(client, active, foreign, cloud):
    item = active.items[0]
    before = list(cloud.calls)
    # htmx's header does not replace the CSRF token ...
    response = client.post(item_url(active, item, "/actions/stop"), headers=HX)
    assert response.status_code == 400 and cloud.calls == before
    # ... nor make a POST-only action answer a GET ...
    assert client.get(item_url(active, item, "/actions/stop"), headers=HX).status_code == 405
    # ... nor open someone else's fragments.
    assert client.get(item_url(foreign, foreign.items[0], "/server-info"), headers=HX).status_code == 404
    assert cloud.calls == before
    # With the session's token in the header, as htmx sends it, the own server stops.
    token = csrf_token(client)
    response = client.post(item_url(active, item, "/actions/stop"), headers={**HX, "X-CSRFToken": token})
    assert response.status_code == 200 and ("power_off", item.server_id) in cloud.calls


def test_fragments_and_pages_vary_on_hx_request(client, active):
    item = active.items[0]
    for path in (f"/subscriptions/{active.id}", f"/subscriptions/{active.id}/summary", item_url(active, item),
                 item_url(active, item, "/server-info")):
        for headers in ({}, HX):
            assert "HX-Request" in client.get(path, headers=headers).headers["Vary"], path


# --- hostile values (row 12) -----------------------------------------------------------------------


def test_hostile_hostnames_and_reasons_are_escaped(client, active):
    item = active.items[0]
    item.hostname = '<script>alert("h")</script>'
    item.fqdn = '"><b hx-get="/logout" hx-trigger="load">x</b>'
    db.session.commit()
    cancel(client, active, reason="<script>alert(1)</script>")
    for page in (client.get(f"/subscriptions/{active.id}").get_data(as_text=True),
                 client.get(item_url(active, item), headers=HX).get_data(as_text=True)):
        assert '<script>alert("h")</script>' not in page and "&lt;script&gt;alert(" in page
        assert '<b hx-get="/logout"' not in page and "&lt;b hx-get=&#34;/logout&#34;" in page
    detail = client.get(f"/subscriptions/{active.id}").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in detail and "&lt;script&gt;alert(1)&lt;/script&gt;" in detail


# --- a fixed number of queries ---------------------------------------------------------------------


def test_the_dashboard_runs_a_fixed_number_of_queries(app, client, tenant, logged_in):
    service_type = factories.service_type(tenant)
    add_subscriptions(tenant, logged_in, 5, service_type=service_type)
    client.get("/subscriptions/")
    with count_queries(app) as few:
        page = client.get("/subscriptions/").get_data(as_text=True)
    assert page.count("Bulk plan") == 5 and len(re.findall(r'href="/subscriptions/\d+"', page)) == 5  # row links

    add_subscriptions(tenant, logged_in, 45, service_type=service_type)
    with count_queries(app) as many:
        page = client.get("/subscriptions/").get_data(as_text=True)
    assert page.count("Bulk plan") == 50
    assert many.count == few.count, many.statements
    assert few.count == 2, few.statements  # the session's user, then the list in one statement


def test_the_detail_page_runs_a_fixed_number_of_queries(app, client, tenant, logged_in, plan, support):
    subscription = factories.subscription(tenant, logged_in, plan, quantity=50)
    add_items(subscription, 5)
    events.record(subscription, "note", actor=Actor(logged_in, impersonator=support))
    db.session.commit()
    path = f"/subscriptions/{subscription.id}"
    client.get(path)
    with count_queries(app) as few:
        page = client.get(path).get_data(as_text=True)
    assert page.count('class="item-card"') == 5

    add_items(subscription, 45)
    for n in range(10):  # history written by different people
        staff = support if n % 2 else None
        events.record(subscription, "note", actor=Actor(factories.user(tenant), impersonator=staff))
    db.session.commit()
    with count_queries(app) as many:
        page = client.get(path).get_data(as_text=True)
    assert page.count('class="item-card"') == 50
    assert many.count == few.count, many.statements
    # The session's user; the subscription with plan, product and service type; its items; its history
    # with who acted.
    assert few.count == 4, few.statements


def test_the_summary_and_item_fragments_run_two_statements(app, client, tenant, logged_in, plan):
    subscription = factories.subscription(tenant, logged_in, plan)
    add_items(subscription, 1)
    item = subscription.items[0]
    for path in (f"/subscriptions/{subscription.id}/summary", item_url(subscription, item)):
        client.get(path, headers=HX)
        with count_queries(app) as log:
            assert client.get(path, headers=HX).status_code == 200
        assert log.count == 2, log.statements  # the session's user, then what the fragment shows


def test_lists_name_servers_by_their_fqdn(client, auth, tenant, logged_in, plan, admin):
    subscription = factories.subscription(tenant, logged_in, plan, quantity=3)
    for n in range(3):
        db.session.add(SubscriptionItem(tenant_id=tenant.id, subscription_id=subscription.id, provider="hetzner",
                                        status=ItemStatus.ACTIVE, hostname=f"app-{n}",
                                        fqdn=f"app-{n}.default.cloud.example.test"))
    db.session.commit()
    expected = 'app-0.default.cloud.example.test <span class="muted small">and 2 more</span>'
    assert expected in client.get("/subscriptions/").get_data(as_text=True)
    auth.logout()
    auth.login(admin.email)
    assert expected in client.get("/admin/subscriptions").get_data(as_text=True)


def test_the_server_card_shows_a_resize_with_its_progress_then_its_outcome(client, active, cloud, clock):
    from app.services import resizing

    item = active.items[0]
    item.config = {**item.config, "server_type": "cx32"}
    db.session.commit()
    resizing.advance(item.id)
    clock.advance(seconds=10)
    resizing.advance(item.id)  # the type change runs
    clock.advance(seconds=1)
    resizing.advance(item.id)

    fragment = client.get(item_url(active, item, "/server-info"), headers=HX).get_data(as_text=True)
    assert 'data-resize="resizing"' in fragment and "Resizing… to cx32 (" in fragment and polls(fragment)
    assert buttons(fragment) == {"Start": False, "Stop": False, "Restart": False}

    item = db.session.get(SubscriptionItem, item.id)
    item.resize_step, item.resize_error = "failed", "The cloud refused to change the server's type: <b>no</b>."
    db.session.commit()
    fragment = client.get(item_url(active, item, "/server-info"), headers=HX).get_data(as_text=True)
    assert 'data-resize="failed"' in fragment and "was not changed to cx32" in fragment
    assert "&lt;b&gt;no&lt;/b&gt;" in fragment
