"""What a new customer, support and admin met on their first visit: each defect, fixed and kept fixed."""

from __future__ import annotations

import html
import itertools
import logging
import re
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import func, select

from app.clock import now
from app.domain.catalogue import Interval, Provider
from app.domain.subscriptions import SubscriptionStatus
from app.extensions import db
from app.models import Subscription, SubscriptionEvent
from app.services import ordering
from app.services.actors import Actor
from tests import factories
from tests.helpers import complete_profile, post_form, run_scheduled_tasks

HX = {"HX-Request": "true"}
_keys = itertools.count(1)


# --- helpers ---------------------------------------------------------------------------------------


def place(tenant, user, plan, quantity: int = 1, backorder: bool = False, **requested: str) -> Subscription:
    return ordering.place_order(tenant=tenant, actor=Actor(user), plan_id=plan.id, requested_config=requested,
                                quantity=quantity, auto_backorder=backorder, idempotency_key=f"defect-{next(_keys)}")


def provision(clock) -> None:
    clock.advance(seconds=30)
    run_scheduled_tasks()
    db.session.expire_all()


def reload(subscription: Subscription) -> Subscription:
    db.session.expire_all()
    return db.session.get(Subscription, subscription.id)


def region(page: str, element_id: str) -> str:
    """The element with `element_id` and what it holds, up to its closing tag."""
    match = re.search(rf'<(\w+)[^>]*\bid="{element_id}".*?</\1>', page, re.S)
    assert match, f"no #{element_id} on the page"
    return match.group(0)


def row_for(page: str, subscription: Subscription) -> str:
    match = re.search(rf"<tr>(?:(?!</tr>).)*#{subscription.id}\b.*?</tr>", page, re.S)
    assert match, f"no row for subscription {subscription.id}"
    return match.group(0)


def version_on(page: str) -> str:
    match = re.search(r'name="version" type="hidden" value="(\d+)"', page)
    assert match, "no version field on the page"
    return match.group(1)


def events_of(subscription: Subscription) -> int:
    return db.session.scalar(select(func.count()).select_from(SubscriptionEvent).where(
        SubscriptionEvent.subscription_id == subscription.id)) or 0


# --- fixtures --------------------------------------------------------------------------------------


@pytest.fixture
def plan(tenant):
    """Customers pick type, location and image, and a quantity; 9.90 EUR a month each."""
    return factories.plan(tenant, name="Flex", allow_customer_location_selection=True, quantity_allowed=True,
                          max_quantity=10)


@pytest.fixture
def active(tenant, logged_in, plan, cloud, clock) -> Subscription:
    subscription = place(tenant, logged_in, plan)
    provision(clock)
    subscription = reload(subscription)
    assert subscription.status is SubscriptionStatus.ACTIVE
    return subscription


@pytest.fixture
def canceled(tenant, logged_in, plan) -> Subscription:
    subscription = Subscription(tenant_id=tenant.id, user_id=logged_in.id, plan_id=plan.id,
                                status=SubscriptionStatus.CANCELED, price_minor=990, currency="EUR",
                                interval=Interval.MONTH, canceled_at=now(), effective_at=now())
    db.session.add(subscription)
    db.session.commit()
    return subscription


@pytest.fixture
def waiting(tenant, logged_in, cloud) -> Subscription:
    """A subscription on the backorder list for cx22 in Helsinki; cx22 in Falkenstein is available."""
    backordered = factories.plan(tenant, allow_customer_location_selection=True)
    cloud.set_capacity("cx22", "hel1", 0)
    subscription = place(tenant, logged_in, backordered, location="hel1", backorder=True)
    assert subscription.status is SubscriptionStatus.PENDING_BACKORDER
    return subscription


# --- 10: cancelling a canceled subscription --------------------------------------------------------


def test_the_cancel_page_of_a_canceled_subscription_goes_back_with_a_message(client, canceled):
    response = client.get(f"/subscriptions/{canceled.id}/cancel")
    assert response.status_code == 303 and response.headers["Location"] == f"/subscriptions/{canceled.id}"
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "This subscription is already canceled." in page and "Cancel Flex?" not in page


def test_cancelling_a_canceled_subscription_again_goes_back_with_a_message(client, canceled):
    before = events_of(canceled)
    response = post_form(client, f"/subscriptions/{canceled.id}/cancel", {"version": canceled.version})
    assert response.status_code == 303 and response.headers["Location"] == f"/subscriptions/{canceled.id}"
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "This subscription is already canceled." in page
    assert events_of(canceled) == before and reload(canceled).status is SubscriptionStatus.CANCELED
    # Even a form without a version (which would otherwise be answered 400) is sent back the same way.
    response = post_form(client, f"/subscriptions/{canceled.id}/cancel", {})
    assert response.status_code == 303 and response.headers["Location"] == f"/subscriptions/{canceled.id}"


def test_a_canceled_subscription_shows_no_empty_action_row(client, canceled, active):
    assert 'class="actions"' not in client.get(f"/subscriptions/{canceled.id}").get_data(as_text=True)
    assert 'class="actions"' in client.get(f"/subscriptions/{active.id}").get_data(as_text=True)


# --- 11: messages that outlive what they say -------------------------------------------------------


def test_the_setting_up_notice_lives_in_the_refreshing_summary_and_goes_once_active(
        client, tenant, logged_in, plan, cloud, clock):
    subscription = place(tenant, logged_in, plan)
    summary = client.get(f"/subscriptions/{subscription.id}/summary", headers=HX).get_data(as_text=True)
    assert "Your server is being set up" in summary and 'hx-trigger="every 3s"' in summary

    provision(clock)
    summary = client.get(f"/subscriptions/{subscription.id}/summary", headers=HX).get_data(as_text=True)
    assert "Active" in summary and "being set up" not in summary
    assert "being set up" not in client.get(f"/subscriptions/{subscription.id}").get_data(as_text=True)


def test_the_order_flash_does_not_say_the_server_is_being_set_up(client, logged_in, plan, cloud):
    key = re.search(r'name="idempotency_key" type="hidden" value="([^"]+)"',
                    client.get(f"/order/{plan.id}").get_data(as_text=True)).group(1)
    response = post_form(client, f"/order/{plan.id}", {"serverType": "cx22", "location": "nbg1", "quantity": 1,
                                                       "idempotency_key": key})
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    summary = region(page, "summary")  # the notice is in the summary, which refreshes itself ...
    assert "being set up" in summary and "Thank you! Your order is placed." in page
    assert "being set up" not in page.replace(summary, "")  # ... and not in a flash that would outlive it


def test_the_profile_gate_says_why_once(client, customer, auth, plan):
    auth.login(customer.email)
    response = post_form(client, f"/order/{plan.id}", {"serverType": "cx32", "location": "hel1", "quantity": 2,
                                                       "idempotency_key": "profile-gate"})
    assert urlsplit(response.headers["Location"]).path == "/account/profile"
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert len(re.findall(r"complete your billing profile", page, re.I)) == 1


def test_after_switching_a_backorder_the_page_shows_setting_up_and_polls_fast(client, waiting):
    response = post_form(client, f"/subscriptions/{waiting.id}/backorder/switch",
                         {"version": waiting.version, "server_type": "cx22", "location": "fsn1"})
    assert response.status_code == 303
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    summary = region(page, "summary")
    assert 'badge-status-pending_fulfillment">Setting up</span>' in summary and "On backorder" not in summary
    assert 'hx-trigger="every 3s"' in summary and "backorder list" not in summary
    assert "Switched to cx22 in Falkenstein, Germany (fsn1)." in page

    item = reload(waiting).items[0]
    fragment = client.get(f"/subscriptions/{waiting.id}/items/{item.id}", headers=HX).get_data(as_text=True)
    assert "Waiting for capacity" not in fragment and 'hx-trigger="every 2s"' in fragment


def test_a_waiting_backorder_still_says_so_and_polls_slowly(client, waiting):
    summary = client.get(f"/subscriptions/{waiting.id}/summary", headers=HX).get_data(as_text=True)
    assert "On backorder" in summary and "backorder list" in summary and 'hx-trigger="every 10s"' in summary


# --- 12: alternatives keep every other choice ------------------------------------------------------


def test_picking_an_alternative_keeps_the_image_and_every_other_choice(client, logged_in, plan, cloud):
    cloud.set_capacity("cx22", "nbg1", 0)
    response = post_form(client, f"/order/{plan.id}", {
        "serverType": "cx22", "location": "nbg1", "image": "debian-12", "quantity": 3, "auto_backorder": "",
        "idempotency_key": "alternatives"})
    assert response.status_code == 409
    block = re.search(r'<ul class="alternatives">(.*?)</ul>', response.get_data(as_text=True), re.S).group(1)
    links = [html.unescape(href) for href in re.findall(r'href="([^"]+)"', block)]
    assert links
    for link in links:
        chosen = {key: values[0] for key, values in parse_qs(urlsplit(link).query).items()}
        assert (chosen.get("image"), chosen.get("quantity")) == ("debian-12", "3"), link

    fsn1 = next(link for link in links if "location=fsn1" in link)
    page = client.get(fsn1).get_data(as_text=True)
    assert re.search(r'<select[^>]*name="image".*?<option selected value="debian-12"', page, re.S)
    assert re.search(r'<select[^>]*name="location".*?<option selected value="fsn1"', page, re.S)


# --- 13: the history follows power actions and names the server ------------------------------------


def test_a_power_action_refreshes_the_history(client, active):
    item = active.items[0]
    detail = client.get(f"/subscriptions/{active.id}").get_data(as_text=True)
    history = region(detail, "history")
    assert f'hx-get="/subscriptions/{active.id}/history"' in history
    assert "history-changed from:body" in history

    response = post_form(client, f"/subscriptions/{active.id}/items/{item.id}/actions/stop", headers=HX)
    assert response.status_code == 200 and response.headers["HX-Trigger"] == "history-changed"

    fragment = client.get(f"/subscriptions/{active.id}/history", headers=HX)
    text = fragment.get_data(as_text=True)
    assert fragment.status_code == 200 and "<html" not in text
    assert text.lstrip().startswith('<section class="panel" id="history"') and "Server stop" in text


def test_the_history_fragment_is_the_customers_own(client, tenant, active, auth):
    other = factories.user(tenant, email="other@example.com")
    auth.logout()
    auth.login(other.email)
    assert client.get(f"/subscriptions/{active.id}/history", headers=HX).status_code == 404


def test_server_events_name_their_server(client, tenant, logged_in, plan, cloud, clock):
    subscription = place(tenant, logged_in, plan, quantity=2)
    provision(clock)
    first, second = reload(subscription).items
    history = region(client.get(f"/subscriptions/{subscription.id}").get_data(as_text=True), "history")
    # By FQDN: the name the customer chose, under the tenant's domain.
    assert f"Server created ({first.fqdn})" in history and f"Server created ({second.fqdn})" in history


# --- 14: wording -----------------------------------------------------------------------------------


def test_a_stopping_server_says_stopping_in_plain_words(client, active):
    item = active.items[0]
    fragment = post_form(client, f"/subscriptions/{active.id}/items/{item.id}/actions/stop",
                         headers=HX).get_data(as_text=True)
    assert "Stopping…" in fragment
    assert "Poweroff" not in fragment and "%)" not in fragment


def test_the_sold_out_headline_names_the_place(client, logged_in, plan, cloud):
    cloud.set_capacity("cx22", "nbg1", 0)
    response = post_form(client, f"/order/{plan.id}", {"serverType": "cx22", "location": "nbg1", "quantity": 1,
                                                       "idempotency_key": "sold-out"})
    headline = region(response.get_data(as_text=True), "unavailable")
    assert "cx22 is sold out in Nuremberg, Germany (nbg1) for now." in headline
    assert " nbg1 for now" not in headline


def test_digitalocean_is_spelled_as_the_company_does(client, tenant, admin, auth):
    factories.service_type(tenant, provider=Provider.DIGITALOCEAN, name="Droplets")
    auth.login(admin.email)
    page = client.get("/admin/").get_data(as_text=True)
    assert "DigitalOcean" in page and "Digitalocean" not in page


def test_support_sees_the_total_price_and_the_country_by_name(client, tenant, customer, support, auth, plan):
    complete_profile(customer)
    subscription = Subscription(tenant_id=tenant.id, user_id=customer.id, plan_id=plan.id,
                                status=SubscriptionStatus.ACTIVE, quantity=2, price_minor=4980, currency="EUR",
                                interval=Interval.MONTH, current_period_end=now() + timedelta(days=30))
    db.session.add(subscription)
    db.session.commit()
    auth.login(support.email)
    page = client.get(f"/support/customers/{customer.id}").get_data(as_text=True)
    row = row_for(page, subscription)
    # price_minor is the recurring total for all units (what the order's preview showed and what is charged).
    assert "€49.80" in row and "per month" in row and "(2 \u00d7 €24.90)" in row
    assert "\u00d7 2" not in row
    assert "<dd>Germany</dd>" in page and "<dd>DE</dd>" not in page


def test_free_plans_never_speak_of_billing(client, tenant, logged_in, cloud, clock):
    free = factories.plan(tenant, name="Trial", price_minor=0)
    card = re.search(r'<article class="plan-card[^"]*" data-plan="' + free.slug + '".*?</article>',
                     client.get("/").get_data(as_text=True), re.S).group(0)
    order_page = client.get(f"/order/{free.id}").get_data(as_text=True)
    preview = client.get(f"/order/{free.id}/preview?quantity=1", headers=HX).get_data(as_text=True)
    subscription = place(tenant, logged_in, free)
    setting_up = client.get(f"/subscriptions/{subscription.id}/summary", headers=HX).get_data(as_text=True)
    provision(clock)
    running = client.get(f"/subscriptions/{subscription.id}/summary", headers=HX).get_data(as_text=True)
    listed = row_for(client.get("/subscriptions/").get_data(as_text=True), subscription)

    assert "Free" in preview and "Free" in running and "Runs until you cancel" in listed
    for text in (card, region(order_page, "order-form"), preview, setting_up, running, listed):
        assert not re.search(r"bill|charge|renew", text, re.I), text


def test_paid_plans_still_say_when_billing_starts_and_renews(client, tenant, logged_in, plan, cloud, clock):
    subscription = place(tenant, logged_in, plan)
    assert "Billing starts when your server is ready" in client.get(
        f"/subscriptions/{subscription.id}/summary", headers=HX).get_data(as_text=True)
    provision(clock)
    assert "Renews" in client.get(f"/subscriptions/{subscription.id}/summary", headers=HX).get_data(as_text=True)


# --- 15: the price box comes before "Place order" --------------------------------------------------


def test_the_price_box_comes_before_the_order_button(client, logged_in, plan):
    page = client.get(f"/order/{plan.id}").get_data(as_text=True)
    form = region(page, "order-form")
    assert form.index('id="preview"') < form.index("Place order")
    assert form.index('id="availability"') < form.index("Place order")
    assert form.index('name="serverType"') < form.index('id="preview"')


# --- 16: `flask up` does not log every poll --------------------------------------------------------


class _Headers(dict):
    def get(self, key, default=None):  # type: ignore[override]
        return super().get(key, default)


def _handler(method: str, path: str, headers: dict[str, str], kind: str = "QuietPollingHandler"):
    from app import cli

    cls = getattr(cli, kind)
    handler = cls.__new__(cls)
    handler.command, handler.path, handler.request_version = method, path, "HTTP/1.1"
    handler.requestline = f"{method} {path} HTTP/1.1"
    handler.headers = _Headers(headers)
    handler.client_address = ("127.0.0.1", 50000)
    return handler


def test_flask_up_leaves_successful_htmx_gets_out_of_the_access_log(caplog):
    caplog.set_level(logging.INFO, logger="werkzeug")
    _handler("GET", "/subscriptions/1/summary", HX).log_request(200)
    _handler("GET", "/subscriptions/1/items/1/server-info", HX).log_request(304)
    assert "/subscriptions/1" not in caplog.text

    _handler("GET", "/subscriptions/1", {}).log_request(200)  # a page
    _handler("POST", "/subscriptions/1/items/1/actions/stop", HX).log_request(200)  # an action
    _handler("GET", "/subscriptions/2/summary", HX).log_request(500)  # an error
    logged = caplog.text
    assert '"GET /subscriptions/1 HTTP/1.1" 200' in logged
    assert "POST /subscriptions/1/items/1/actions/stop" in logged
    assert "GET /subscriptions/2/summary" in logged


def test_flask_up_logs_only_the_errors_of_the_sandbox_clouds(caplog):
    caplog.set_level(logging.INFO, logger="werkzeug")
    _handler("GET", "/v1/servers/1", {}, "QuietSuccessHandler").log_request(200)
    _handler("POST", "/v1/servers", {}, "QuietSuccessHandler").log_request(201)
    assert "/v1/servers" not in caplog.text
    _handler("POST", "/v1/servers", {}, "QuietSuccessHandler").log_request(412)
    assert '"POST /v1/servers HTTP/1.1" 412' in caplog.text


def test_flask_up_can_log_every_request(app, runner, monkeypatch):
    from app import cli

    served = {}
    monkeypatch.setattr("werkzeug.serving.run_simple", lambda *args, **kwargs: served.update(kwargs))
    monkeypatch.setattr("app.tasks.worker.start_beside_web_server", lambda workers: _NoWorker())
    monkeypatch.setattr(cli, "upgrade", lambda: None)
    monkeypatch.setitem(app.config, "SANDBOX_HETZNER_URL", "http://127.0.0.1:9/v1")  # no sandbox clouds started

    result = runner.invoke(args=["up", "--no-demo", "--log-requests", "all"])
    assert result.exit_code == 0, result.output
    assert served["request_handler"] is not cli.QuietPollingHandler

    monkeypatch.setenv("LOG_REQUESTS", "quiet")
    result = runner.invoke(args=["up", "--no-demo"])
    assert result.exit_code == 0, result.output
    assert served["request_handler"] is cli.QuietPollingHandler


class _NoWorker:
    def stop(self) -> None:
        pass
