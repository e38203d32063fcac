"""Ordering a plan: the form, the live price and availability, and the order (RELIABILITY rows 8, 11, 13, 21)."""

from __future__ import annotations

import html
import re
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import func, select

from app.domain.catalogue import CatalogueState
from app.extensions import db
from app.models import Charge, Subscription, SubscriptionItem
from tests import factories
from tests.helpers import complete_profile, csrf_token, post_form, run_scheduled_tasks
from tests.querycount import count_queries

PROFILE = {"full_name": "Casey Customer", "billing_email": "billing@example.com", "company": "",
           "address": "Hauptstrasse 1", "postal_code": "10115", "city": "Berlin", "country": "DE"}
HX = {"HX-Request": "true"}
_KEY = re.compile(r'name="idempotency_key" type="hidden" value="([^"]+)"')


# --- helpers ---------------------------------------------------------------------------------------


def count(model: type, *where: object) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*where)) or 0


def only_subscription() -> Subscription:
    db.session.expire_all()
    return db.session.scalars(select(Subscription)).one()


def idempotency_key(client, plan) -> str:
    match = _KEY.search(client.get(f"/order/{plan.id}").get_data(as_text=True))
    assert match, "no idempotency key on the order page"
    return match.group(1)


def order(client, plan, key: str | None = None, **fields: object):
    """Submit the order form as a browser would: with the key and the server name the page gave, and the CSRF
    token."""
    page = client.get(f"/order/{plan.id}").get_data(as_text=True)
    data = {"serverType": "cx22", "location": "nbg1", "quantity": 1, "hostname": hostname_value(page), **fields}
    data["idempotency_key"] = key or _KEY.search(page).group(1)
    return post_form(client, f"/order/{plan.id}", data)


def hostname_value(page: str) -> str | None:
    field = re.search(r'<input[^>]*name="hostname"[^>]*value="([^"]*)"', page)
    return field.group(1) if field else None


def selected(page: str, name: str) -> str | None:
    """The selected option of the select called `name`, or None when it has no such select."""
    select_tag = re.search(rf'<select[^>]*name="{name}"[^>]*>(.*?)</select>', page, re.S)
    if select_tag is None:
        return None
    option = re.search(r'<option selected value="([^"]*)"', select_tag.group(1))
    return option.group(1) if option else None


def quantity_value(page: str) -> str | None:
    field = re.search(r'<input[^>]*name="quantity"[^>]*type="number"[^>]*value="([^"]*)"', page)
    return field.group(1) if field else None


def data_amount(page: str, name: str) -> int:
    match = re.search(rf'data-{name}="(\d+)"', page)
    assert match, f"no data-{name} in the page"
    return int(match.group(1))


def alternative_hrefs(page: str) -> list[str]:
    block = re.search(r'<ul class="alternatives">(.*?)</ul>', page, re.S)
    assert block, "no alternatives on the page"
    return [html.unescape(href) for href in re.findall(r'href="([^"]+)"', block.group(1))]


def alternative_links(page: str) -> list[dict[str, str]]:
    """Each alternative link as its path and query parameters."""
    links = []
    for href in alternative_hrefs(page):
        parts = urlsplit(href)
        links.append({"path": parts.path, **{k: v[0] for k, v in parse_qs(parts.query).items()}})
    return links


def provision(clock) -> None:
    """Let the sandbox boot the servers and run the polls a worker would run."""
    clock.advance(seconds=30)
    run_scheduled_tasks()
    db.session.expire_all()


# --- fixtures --------------------------------------------------------------------------------------


@pytest.fixture
def shopper(client, customer, auth):
    """The customer, with a complete billing profile, logged in."""
    complete_profile(customer)
    auth.login(customer.email)
    return customer


@pytest.fixture
def plan(tenant):
    """A Hetzner plan whose customers choose server type, location and quantity (up to 10); 9.90 EUR."""
    return factories.plan(tenant, name="Flex", allow_customer_location_selection=True, quantity_allowed=True,
                          max_quantity=10)


@pytest.fixture
def fixed_plan(tenant):
    """A single-unit plan in the plan's own location (nbg1)."""
    return factories.plan(tenant, name="Fixed")


# --- the order page --------------------------------------------------------------------------------


def test_order_page_shows_the_choices_the_quantity_and_the_price(client, shopper, plan):
    response = client.get(f"/order/{plan.id}")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Order Flex" in page
    assert selected(page, "serverType") == "cx22" and selected(page, "location") == "nbg1"
    assert 'value="hel1">Helsinki, Finland (hel1)</option>' in page
    assert quantity_value(page) == "1"
    assert data_amount(page, "recurring") == 990 and data_amount(page, "due-now") == 990
    assert 'id="availability"' in page and f"/order/{plan.id}/availability" in page
    assert _KEY.search(page)


def test_a_fixed_plan_offers_neither_location_nor_quantity(client, shopper, fixed_plan):
    page = client.get(f"/order/{fixed_plan.id}").get_data(as_text=True)
    assert selected(page, "serverType") == "cx22"
    assert 'name="location"' not in page
    assert quantity_value(page) is None and '<input type="hidden" name="quantity" value="1">' in page
    assert "servers are ready" not in page


def test_choices_in_the_query_string_are_preselected(client, shopper, plan):
    page = client.get(f"/order/{plan.id}?serverType=cx32&location=hel1&quantity=3").get_data(as_text=True)
    assert selected(page, "serverType") == "cx32" and selected(page, "location") == "hel1"
    assert quantity_value(page) == "3"
    assert data_amount(page, "recurring") == 3 * 990


def test_each_visit_of_the_order_page_gets_its_own_idempotency_key(client, shopper, plan):
    assert idempotency_key(client, plan) != idempotency_key(client, plan)


# --- who may order ---------------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["admin", "support"])
def test_staff_cannot_order(request, client, auth, plan, who):
    auth.login(request.getfixturevalue(who).email)
    assert client.get(f"/order/{plan.id}").status_code == 403
    assert order(client, plan, key="staff-key").status_code == 403
    assert client.get(f"/order/{plan.id}/preview", headers=HX).status_code == 403
    assert count(Subscription) == 0


def test_anonymous_visitors_are_sent_to_log_in(client, tenant, plan):
    response = client.get(f"/order/{plan.id}?serverType=cx32")
    assert response.status_code == 302
    assert response.headers["Location"] == f"/login?next=/order/{plan.id}?serverType%3Dcx32"
    assert order(client, plan, key="anonymous-key").status_code == 302
    fragment = client.get(f"/order/{plan.id}/preview", headers=HX)
    assert fragment.status_code == 204 and fragment.headers["HX-Redirect"].startswith("/login?next=")
    assert count(Subscription) == 0


@pytest.mark.parametrize(
    ("plan_state", "product_state"),
    [
        (CatalogueState.DRAFT, CatalogueState.PUBLISHED),
        (CatalogueState.DEPRECATED, CatalogueState.PUBLISHED),
        (CatalogueState.RETIRED, CatalogueState.PUBLISHED),
        (CatalogueState.PUBLISHED, CatalogueState.DRAFT),
    ],
)
def test_plans_that_are_not_published_cannot_be_ordered(client, tenant, shopper, plan_state, product_state):
    closed = factories.plan(tenant, state=plan_state, product_=factories.product(tenant, state=product_state))
    for response in (client.get(f"/order/{closed.id}"), order(client, closed, key="closed-plan")):
        assert response.status_code == 410
        assert "This plan is no longer available for new orders" in response.get_data(as_text=True)
    assert count(Subscription) == 0


def test_another_tenants_plan_is_not_found(client, other_tenant, shopper):
    foreign = factories.plan(other_tenant)
    for path in (f"/order/{foreign.id}", f"/order/{foreign.id}/preview", f"/order/{foreign.id}/availability"):
        assert client.get(path).status_code == 404
        assert client.get(path, headers=HX).status_code == 404
    assert order(client, foreign, key="foreign-plan").status_code == 404
    assert count(Subscription) == 0


@pytest.mark.parametrize("token", [None, "not-a-token"])
def test_an_order_without_a_valid_csrf_token_is_refused(client, shopper, plan, token):
    data = {"serverType": "cx22", "location": "nbg1", "quantity": "1", "idempotency_key": "no-csrf"}
    if token:
        data["csrf_token"] = token
    response = client.post(f"/order/{plan.id}", data=data)
    assert response.status_code == 400
    assert "This form has expired" in response.get_data(as_text=True)
    assert count(Subscription) == 0


def test_an_order_sent_as_get_creates_nothing(client, shopper, plan):
    response = client.get(f"/order/{plan.id}?serverType=cx22&location=nbg1&quantity=1&idempotency_key=by-get")
    assert response.status_code == 200
    assert count(Subscription) == 0


# --- the billing profile round trip ----------------------------------------------------------------


def test_an_incomplete_profile_is_completed_and_the_order_resumes_with_its_choices(client, tenant, customer, auth,
                                                                                  plan):
    auth.login(customer.email)
    response = order(client, plan, serverType="cx32", location="hel1", quantity=2)
    assert response.status_code == 303
    target = urlsplit(response.headers["Location"])
    assert target.path == "/account/profile"
    back = parse_qs(target.query)["next"][0]
    assert urlsplit(back).path == f"/order/{plan.id}"
    choices = parse_qs(urlsplit(back).query)
    assert (choices["serverType"], choices["location"], choices["quantity"]) == (["cx32"], ["hel1"], ["2"])
    assert count(Subscription) == 0

    profile_page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert profile_page.count("Complete your billing profile to continue with your order.") == 1
    assert "Save and continue" in profile_page

    saved = post_form(client, response.headers["Location"], PROFILE)
    assert saved.status_code == 303 and saved.headers["Location"] == back

    page = client.get(back).get_data(as_text=True)
    assert selected(page, "serverType") == "cx32" and selected(page, "location") == "hel1"
    assert quantity_value(page) == "2"
    # A paid plan asks for a card next, the same way (tests/web/test_payment_methods.py follows that gate).
    gate = order(client, plan, serverType="cx32", location="hel1", quantity=2)
    assert urlsplit(gate.headers["Location"]).path == "/billing/payment-methods"
    factories.payment_method(tenant, customer)
    assert order(client, plan, serverType="cx32", location="hel1", quantity=2).status_code == 303
    assert only_subscription().requested_config["location"] == "hel1"


# --- placing the order -----------------------------------------------------------------------------


def test_an_order_lands_on_the_subscription_being_set_up(client, shopper, plan, cloud, clock):
    response = order(client, plan, serverType="cx32", location="hel1", quantity=2)
    subscription = only_subscription()
    assert response.status_code == 303
    assert response.headers["Location"] == f"/subscriptions/{subscription.id}"
    assert (subscription.user_id, subscription.tenant_id, subscription.plan_id) == (
        shopper.id, shopper.tenant_id, plan.id)
    assert subscription.status == "pending_fulfillment" and subscription.quantity == 2
    assert subscription.requested_config["serverType"] == "cx32"
    assert subscription.requested_config["location"] == "hel1"
    assert [item.status for item in subscription.items] == ["provisioning", "provisioning"]
    assert [call[0] for call in cloud.calls].count("create_server") == 2

    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Setting up" in page and "Your servers are being set up" in page

    provision(clock)
    assert only_subscription().status == "active"
    assert "Active" in client.get(response.headers["Location"]).get_data(as_text=True)


def test_the_same_form_submitted_twice_makes_one_subscription(client, shopper, plan, cloud, clock):
    key = idempotency_key(client, plan)
    first = order(client, plan, key=key)
    second = order(client, plan, key=key, quantity=3)
    assert first.status_code == second.status_code == 303
    assert first.headers["Location"] == second.headers["Location"]
    assert count(Subscription) == 1 and count(SubscriptionItem) == 1
    provision(clock)
    assert count(Charge) == 1
    assert [call[0] for call in cloud.calls].count("create_server") == 1


def test_forged_price_status_tenant_and_user_fields_are_ignored(client, shopper, plan, other_tenant):
    stranger = factories.user(other_tenant)
    response = order(client, plan, price="1", price_minor="1", status="active", tenant_id=str(other_tenant.id),
                     user_id=str(stranger.id), currency="USD")
    assert response.status_code == 303
    subscription = only_subscription()
    assert subscription.price_minor == 990 and subscription.currency == "EUR"
    assert subscription.status == "pending_fulfillment"
    assert (subscription.tenant_id, subscription.user_id) == (shopper.tenant_id, shopper.id)


def test_a_location_on_a_plan_without_location_choice_is_ignored(client, shopper, fixed_plan):
    assert order(client, fixed_plan, location="hel1").status_code == 303
    assert only_subscription().requested_config["location"] == "nbg1"


def test_an_invalid_choice_is_explained_beside_its_field_and_nothing_is_ordered(client, shopper, plan, cloud):
    response = order(client, plan, serverType="nope")
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    error = re.search(r'<p class="error" id="serverType-error">([^<]*)</p>', page)
    assert error and error.group(1) == "Choose one of the offered options."
    assert 'id="location-error"' not in page
    assert count(Subscription) == 0 and cloud.calls == []


@pytest.mark.parametrize("quantity", ["0", "11", "abc"])
def test_an_invalid_quantity_is_refused(client, shopper, plan, quantity):
    response = order(client, plan, quantity=quantity)
    assert response.status_code == 400
    assert 'id="quantity-error"' in response.get_data(as_text=True)
    assert count(Subscription) == 0


def test_a_sold_out_choice_answers_409_with_alternatives_that_preselect_themselves(client, shopper, plan, cloud):
    cloud.set_capacity("cx22", "nbg1", 0)
    response = order(client, plan, quantity=2, hostname="build-box")
    page = response.get_data(as_text=True)
    assert response.status_code == 409
    assert "cx22 is sold out in Nuremberg, Germany (nbg1) for now." in page
    assert count(Subscription) == 0 and count(SubscriptionItem) == 0
    links = alternative_links(page)
    # Every other choice is kept, the server's name included.
    kept = {"path": f"/order/{plan.id}", "quantity": "2", "hostname": "build-box"}
    assert {**kept, "serverType": "cx22", "location": "fsn1"} in links
    assert {**kept, "serverType": "cx32", "location": "nbg1"} in links

    fsn1 = next(href for href in alternative_hrefs(page) if "location=fsn1" in href and "serverType=cx22" in href)
    again = client.get(fsn1).get_data(as_text=True)
    assert selected(again, "serverType") == "cx22" and selected(again, "location") == "fsn1"
    assert quantity_value(again) == "2" and hostname_value(again) == "build-box"
    assert order(client, plan, serverType="cx22", location="fsn1").status_code == 303


def test_alternatives_offer_only_choices_the_plan_allows(client, shopper, plan, cloud):
    cloud.set_capacity("cx22", "nbg1", 0)
    links = alternative_links(order(client, plan).get_data(as_text=True))
    assert links
    assert {link["serverType"] for link in links} <= {"cx22", "cx32"}
    assert {link["location"] for link in links} <= {"fsn1", "nbg1", "hel1"}


def test_a_plan_without_location_choice_offers_no_alternatives_elsewhere(client, shopper, fixed_plan, cloud):
    cloud.set_capacity("cx22", "nbg1", 0)
    response = order(client, fixed_plan)
    assert response.status_code == 409
    assert {link["location"] for link in alternative_links(response.get_data(as_text=True))} <= {"nbg1"}


def test_a_key_used_by_another_customer_makes_no_second_order(client, shopper, plan, tenant, auth):
    key = idempotency_key(client, plan)
    assert order(client, plan, key=key).status_code == 303
    auth.logout()
    other = factories.user(tenant, email="other@example.com")
    complete_profile(other)
    auth.login(other.email)
    response = order(client, plan, key=key)
    assert response.status_code == 400
    assert "This order form has already been used. Please start a new order." in response.get_data(as_text=True)
    assert count(Subscription) == 1 and count(Subscription, Subscription.user_id == other.id) == 0


def test_sold_out_with_auto_backorder_queues_the_order(client, shopper, plan, cloud, tenant, auth, clock):
    cloud.set_capacity("cx22", "nbg1", 0)
    earlier = factories.user(tenant, email="early@example.com")
    complete_profile(earlier)
    auth.logout()
    auth.login(earlier.email)
    assert order(client, plan, auto_backorder="y").status_code == 303
    auth.logout()
    auth.login(shopper.email)
    clock.advance(seconds=1)

    response = order(client, plan, auto_backorder="y")
    assert response.status_code == 303
    mine = db.session.scalars(select(Subscription).where(Subscription.user_id == shopper.id)).one()
    assert mine.status == "pending_backorder"
    assert [call[0] for call in cloud.calls].count("create_server") == 0
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "On backorder" in page and "backorder list" in page
    assert "Number 2 in the queue for cx22 in Nuremberg, Germany (nbg1)" in page


# --- the live fragments ----------------------------------------------------------------------------


def test_the_preview_fragment_prices_the_quantity(client, shopper, plan):
    response = client.get(f"/order/{plan.id}/preview?quantity=3", headers=HX)
    fragment = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<html" not in fragment and "Place order" not in fragment
    assert fragment.lstrip().startswith('<section id="preview"')
    assert data_amount(fragment, "recurring") == 2970 and data_amount(fragment, "due-now") == 2970
    assert "€29.70" in fragment and "\u00d7 3" in fragment
    assert "HX-Request" in response.headers["Vary"]
    assert response.headers["Cache-Control"] == "no-store"


def test_the_preview_runs_at_most_one_query_of_its_own(app, client, shopper, plan):
    client.get("/nope", headers=HX)
    client.get(f"/order/{plan.id}/preview?quantity=2", headers=HX)
    with count_queries(app) as baseline:
        client.get("/nope", headers=HX)  # tenant and session loading only
    with count_queries(app) as preview:
        assert client.get(f"/order/{plan.id}/preview?quantity=2", headers=HX).status_code == 200
    assert preview.count - baseline.count <= 1, preview.statements


def test_the_order_form_reads_the_session_the_plan_and_the_keys_only(app, client, shopper, plan):
    client.get(f"/order/{plan.id}")
    with count_queries(app) as log:
        assert client.get(f"/order/{plan.id}").status_code == 200
    # The session's user; the plan with product and service type; the customer's SSH keys to choose from.
    assert log.count == 3, log.statements


@pytest.mark.parametrize(
    ("quantity", "message"),
    [("0", "The quantity must be at least 1."), ("-3", "The quantity must be at least 1."),
     ("11", "This plan allows a quantity of at most 10.")],
)
def test_the_preview_explains_a_bad_quantity(client, shopper, plan, quantity, message):
    fragment = client.get(f"/order/{plan.id}/preview?quantity={quantity}", headers=HX).get_data(as_text=True)
    assert message in fragment and "data-recurring" not in fragment


def test_the_preview_of_a_single_unit_plan_refuses_more_than_one(client, shopper, fixed_plan):
    fragment = client.get(f"/order/{fixed_plan.id}/preview?quantity=2", headers=HX).get_data(as_text=True)
    assert "This plan is sold as a single unit; the quantity must be 1." in fragment


@pytest.mark.parametrize("quantity", ["abc", "2.5"])
def test_the_preview_explains_a_quantity_that_is_not_a_number(client, shopper, plan, quantity):
    fragment = client.get(f"/order/{plan.id}/preview?quantity={quantity}", headers=HX).get_data(as_text=True)
    assert "data-recurring" not in fragment and "whole number" in fragment


def test_the_availability_fragment_says_available(client, shopper, plan, cloud):
    response = client.get(f"/order/{plan.id}/availability?serverType=cx32&location=hel1", headers=HX)
    fragment = response.get_data(as_text=True)
    assert "<html" not in fragment and "Available now" in fragment
    assert ("check_availability", "cx32", "hel1") in cloud.calls
    assert "HX-Request" in response.headers["Vary"]


def test_the_availability_fragment_says_sold_out_with_alternatives(client, shopper, plan, cloud):
    cloud.set_capacity("cx22", "nbg1", 0)
    fragment = client.get(f"/order/{plan.id}/availability?serverType=cx22&location=nbg1",
                          headers=HX).get_data(as_text=True)
    assert "Available now" not in fragment
    assert "cx22 is sold out in Nuremberg, Germany (nbg1) for now." in fragment
    assert "cx22 in Falkenstein, Germany (fsn1)" in fragment


def test_the_availability_fragment_explains_an_invalid_choice(client, shopper, plan, cloud):
    fragment = client.get(f"/order/{plan.id}/availability?serverType=nope", headers=HX).get_data(as_text=True)
    assert "Please correct the highlighted choices." in fragment
    assert cloud.calls == []


@pytest.mark.parametrize("quantity", [1, 4])
def test_the_price_charged_is_the_price_the_preview_showed(client, shopper, plan, cloud, clock, quantity):
    preview = client.get(f"/order/{plan.id}/preview?quantity={quantity}", headers=HX).get_data(as_text=True)
    recurring, due_now = data_amount(preview, "recurring"), data_amount(preview, "due-now")
    assert order(client, plan, quantity=quantity).status_code == 303
    assert only_subscription().price_minor == recurring
    provision(clock)
    subscription = only_subscription()
    assert subscription.status == "active"
    charge = db.session.scalars(select(Charge).where(Charge.subscription_id == subscription.id)).one()
    assert (charge.amount_minor, charge.currency) == (due_now, "EUR")



def test_the_order_forms_selects_draw_what_wtforms_would(app):
    from wtforms import Form, SelectField
    from wtforms.fields.choices import SelectChoice

    from app.blueprints.orders.forms import ChoiceSelect

    choices = [SelectChoice("cx22", "CX22"), SelectChoice("fsn1", 'Falkenstein <"&">'), SelectChoice("a&b", "")]

    class Plain(Form):
        pick = SelectField("Pick", choices=choices, default="fsn1")

    class Fast(Form):
        pick = SelectField("Pick", choices=choices, default="fsn1", widget=ChoiceSelect())

    plain, fast = Plain().pick, Fast().pick
    assert str(fast(class_="input")) == str(plain(class_="input"))
    assert 'selected value="fsn1">Falkenstein &lt;&#34;&amp;&#34;&gt;</option>' in str(fast())


def test_an_order_is_one_transaction_that_counts_itself_on_its_plan(app, client, shopper, plan, cloud):
    from app.models import Plan

    key = idempotency_key(client, plan)
    updated_at = plan.updated_at
    data = {"serverType": "cx22", "location": "nbg1", "quantity": 1, "idempotency_key": key,
            "csrf_token": csrf_token(client, f"/order/{plan.id}")}
    with count_queries(app) as log:
        response = client.post(f"/order/{plan.id}", data=data)
    assert response.status_code == 303
    # Reads: the session's user, the plan, the order key, the profile with whether the customer has a card (a
    # paid plan needs one; one statement), whether the server's name is taken (one more than before servers were
    # named), the cloud account, the backorder queue; and the chosen SSH keys when some are ticked (none here:
    # test_an_order_with_keys_reads_them_once covers that).
    # Writes: the subscription, its item and its event in one flush, the plan's count; then the commit. What
    # follows here is the provisioning, which the tests' queue runs at once, after the commit.
    kinds = [" ".join(s.split()[:3]).upper() for s in log.statements[:12]]
    assert kinds[7] == "INSERT INTO SUBSCRIPTIONS" and kinds[10] == "UPDATE PLANS SET", kinds
    assert sorted(kinds[8:10]) == ["INSERT INTO SUBSCRIPTION_EVENTS", "INSERT INTO SUBSCRIPTION_ITEMS"], kinds
    assert all(kind.startswith("SELECT") for kind in kinds[:7]), kinds
    assert "SELECT SUBSCRIPTION_ITEMS.HOSTNAME FROM" in kinds[:7], kinds
    assert not kinds[11].startswith("SELECT SUBSCRIPTIONS.ID"), "the subscription was read again after the commit"
    db.session.expire_all()
    counted = db.session.get(Plan, plan.id)
    assert counted.subscription_count == 1 and counted.updated_at == updated_at
    assert client.post(f"/order/{plan.id}", data=data).status_code == 303  # the same form again: no new order
    db.session.expire_all()
    assert db.session.get(Plan, plan.id).subscription_count == 1
