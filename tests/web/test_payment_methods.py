"""The payment methods pages, the order's card gate, the Stripe webhook endpoint and the admin's Stripe page."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from sqlalchemy import func, select

from app.clock import now
from app.extensions import db
from app.models import PaymentMethod, PaymentSetup, Subscription, WebhookEvent
from app.sandbox import FakeServer, serve
from app.sandbox.payments import SandboxPayments
from app.sandbox.stripe_api import StripeFake, sign
from tests import factories
from tests.helpers import complete_profile, post_form
from tests.web.test_impersonation import impersonate

METHODS = "/billing/payment-methods"
SECRET = "whsec_sandbox_local"


def count(model, *where) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*where)) or 0


def live_cards(user) -> list[PaymentMethod]:
    db.session.expire_all()
    return list(db.session.scalars(select(PaymentMethod).where(PaymentMethod.user_id == user.id,
                                                               PaymentMethod.removed_at.is_(None))
                                   .order_by(PaymentMethod.id)))


def add_card_in_process(client, tenant, number="4242424242424242", **form):
    """Start a setup, type the card on the (in-process) hosted page, come back: the answer of the return page."""
    started = post_form(client, f"{METHODS}/add", form)
    assert started.status_code == 303
    back = started.headers["Location"]  # the in-process sandbox's "page" is the return address itself
    session_id = parse_qs(urlsplit(back).query)["session_id"][0]
    SandboxPayments(tenant.id).complete_setup(session_id, number)
    return client.get(back)


@pytest.fixture
def shopper(client, customer, auth):
    complete_profile(customer, card=False)
    auth.login(customer.email)
    return customer


def test_the_page_lists_cards_with_the_default_first(client, tenant, shopper):
    factories.payment_method(tenant, shopper, default=False, brand="mastercard", last4="4444")
    factories.payment_method(tenant, shopper, default=True, last4="4242", exp_month=3, exp_year=2031)
    page = client.get(METHODS).get_data(as_text=True)
    assert page.index("Visa ending in <strong>4242</strong>") < page.index("Mastercard ending in <strong>4444</strong>")
    assert "03/2031" in page and page.count(">Default</span>") == 1 and "Make default" in page


def test_a_card_is_added_on_the_hosted_page_and_becomes_the_default(client, tenant, shopper):
    answer = add_card_in_process(client, tenant, next="/order/1?quantity=2")
    assert answer.status_code == 303 and answer.headers["Location"] == "/order/1?quantity=2"
    [card] = live_cards(shopper)
    assert (card.last4, card.is_default) == ("4242", True)
    page = client.get(METHODS).get_data(as_text=True)
    assert "Visa ending in 4242 saved as your default card." in page


def test_a_refused_card_saves_nothing_and_says_so(client, tenant, shopper):
    answer = add_card_in_process(client, tenant, "4000000000000002")
    assert answer.headers["Location"] == METHODS
    assert live_cards(shopper) == []
    assert "The card was not saved" in client.get(METHODS).get_data(as_text=True)


def test_leaving_the_hosted_page_goes_back_where_the_customer_was(client, tenant, shopper):
    post_form(client, f"{METHODS}/add", {"next": "/order/5"})
    answer = client.get(f"{METHODS}/added?cancelled=1")
    assert answer.headers["Location"] == "/order/5" and live_cards(shopper) == []


def test_next_outside_the_portal_is_dropped(client, tenant, shopper):
    answer = add_card_in_process(client, tenant, next="https://evil.example/")
    assert answer.headers["Location"] == METHODS


def test_make_default_and_remove(client, tenant, shopper):
    first = factories.payment_method(tenant, shopper, default=True)
    second = factories.payment_method(tenant, shopper, default=False, last4="4444")
    SandboxPayments(tenant.id)  # the in-process account exists; the cards are unknown to it (detach: not found)
    assert post_form(client, f"{METHODS}/{second.id}/default").status_code == 303
    assert [(c.id, c.is_default) for c in live_cards(shopper)] == [(first.id, False), (second.id, True)]
    assert post_form(client, f"{METHODS}/{second.id}/remove").status_code == 303
    assert [(c.id, c.is_default) for c in live_cards(shopper)] == [(first.id, True)]


def test_the_last_card_of_a_paying_customer_stays_with_the_reason_shown(client, tenant, shopper):
    card = factories.payment_method(tenant, shopper)
    factories.subscription(tenant, shopper, factories.plan(tenant))
    page = client.get(METHODS).get_data(as_text=True)
    assert "This is your only card and you have paid subscriptions running" in page
    answer = post_form(client, f"{METHODS}/{card.id}/remove")
    assert answer.status_code == 303 and len(live_cards(shopper)) == 1


@pytest.mark.parametrize("action", ["default", "remove"])
def test_other_customers_and_tenants_cards_are_not_found(client, tenant, other_tenant, shopper, action):
    neighbour = factories.payment_method(tenant, factories.user(tenant))
    foreign = factories.payment_method(other_tenant, factories.user(other_tenant))
    for method in (neighbour, foreign):
        assert post_form(client, f"{METHODS}/{method.id}/{action}").status_code == 404
    assert post_form(client, f"{METHODS}/99999999999/{action}").status_code == 404
    assert count(PaymentMethod, PaymentMethod.removed_at.is_not(None)) == 0


def test_someone_elses_setup_is_not_found(client, tenant, shopper):
    db.session.add(PaymentSetup(tenant_id=tenant.id, user_id=factories.user(tenant).id, provider="sandbox",
                                external_id="cs_theirs", status="open", created_at=now()))
    db.session.commit()
    assert client.get(f"{METHODS}/added?session_id=cs_theirs").status_code == 404
    assert client.get(f"{METHODS}/added?session_id=").status_code == 404
    assert client.get(f"{METHODS}/added?session_id={'x' * 500}").status_code == 404


def test_posts_need_the_csrf_token(client, tenant, shopper):
    card = factories.payment_method(tenant, shopper)
    for path in (f"{METHODS}/add", f"{METHODS}/{card.id}/default", f"{METHODS}/{card.id}/remove"):
        assert client.post(path, data={}).status_code == 400
    assert count(PaymentSetup) == 0 and len(live_cards(shopper)) == 1


def test_support_impersonating_sees_the_cards_but_changes_nothing(client, auth, tenant, support, customer):
    card = factories.payment_method(tenant, customer)
    auth.login(support.email)
    assert impersonate(client, customer).status_code == 303
    page = client.get(METHODS).get_data(as_text=True)
    assert "Support staff cannot add, change or remove a customer's payment methods" in page
    for path in (f"{METHODS}/add", f"{METHODS}/{card.id}/default", f"{METHODS}/{card.id}/remove"):
        refused = post_form(client, path)
        assert refused.status_code == 403
        assert "Not while impersonating" in refused.get_data(as_text=True)
    assert client.get(f"{METHODS}/added?session_id=cs_x").status_code == 403
    assert count(PaymentSetup) == 0 and len(live_cards(customer)) == 1


def test_staff_have_no_payment_methods_page(client, auth, admin):
    auth.login(admin.email)
    assert client.get(METHODS).status_code == 403


# --- the order's card gate -------------------------------------------------------------------------------------


def test_a_paid_plan_sends_the_customer_to_add_a_card_and_back_to_the_order(client, tenant, shopper, clock):
    plan = factories.plan(tenant, allow_customer_location_selection=True)
    form = {"serverType": "cx32", "location": "hel1", "quantity": 1,
            "idempotency_key": "gate-1", "hostname": "gated"}
    gate = post_form(client, f"/order/{plan.id}", form)
    target = urlsplit(gate.headers["Location"])
    assert gate.status_code == 303 and target.path == METHODS
    back = parse_qs(target.query)["next"][0]
    assert parse_qs(urlsplit(back).query)["location"] == ["hel1"] and count(Subscription) == 0
    page = client.get(gate.headers["Location"]).get_data(as_text=True)
    assert "Add a card to continue with your order" in page
    answer = add_card_in_process(client, tenant, next=back)
    assert answer.headers["Location"] == back
    assert post_form(client, f"/order/{plan.id}", form).status_code == 303
    assert count(Subscription) == 1


def test_a_free_plan_never_asks_for_a_card(client, tenant, shopper, clock):
    plan = factories.plan(tenant, price_minor=0)
    form = {"serverType": "cx22", "location": "nbg1", "quantity": 1, "idempotency_key": "free-1", "hostname": "free"}
    answer = post_form(client, f"/order/{plan.id}", form)
    assert answer.status_code == 303 and answer.headers["Location"].startswith("/subscriptions/")


# --- webhooks, through the Stripe adapter and the fake Stripe ---------------------------------------------------


@pytest.fixture(scope="module")
def fake_stripe() -> Iterator[tuple[StripeFake, FakeServer]]:
    fake = StripeFake(webhook_secret=SECRET)
    server = serve(fake)
    yield fake, server
    server.shutdown()


@pytest.fixture
def stripe_fake(app, fake_stripe, monkeypatch) -> StripeFake:
    fake, server = fake_stripe
    fake.reset()
    monkeypatch.setitem(app.config, "SANDBOX_STRIPE_URL", server.url)
    monkeypatch.setitem(app.config, "SANDBOX_STRIPE_WEBHOOK_SECRET", SECRET)
    return fake


def deliver(client, event: dict, *, secret: str = SECRET, age: int = 0, slug: str = "default"):
    payload = json.dumps({k: v for k, v in event.items() if k != "account"}).encode()
    return client.post(f"/webhooks/stripe/{slug}", data=payload, content_type="application/json",
                       headers={"Stripe-Signature": sign(payload, secret, int(time.time()) - age)})


def save_on_fake_page(client, stripe_fake) -> dict:
    """Add a card on the fake Stripe's hosted page, without coming back: the webhook is all the portal gets."""
    started = post_form(client, f"{METHODS}/add")
    hosted = started.headers["Location"]
    assert hosted.startswith("http://127.0.0.1:")
    typed = requests.post(hosted, data={"number": "4242 4242 4242 4242", "expiry": "12/34", "cvc": "123"},
                          allow_redirects=False, timeout=5)
    assert typed.status_code == 303
    [completed] = [e for e in stripe_fake.events if e["type"] == "checkout.session.completed"]
    return completed


def test_the_completed_checkout_webhook_saves_the_card_once(client, tenant, shopper, stripe_fake):
    completed = save_on_fake_page(client, stripe_fake)
    answer = deliver(client, completed)
    assert answer.status_code == 200 and answer.json["duplicate"] is False
    [card] = live_cards(shopper)
    assert (card.provider, card.last4, card.is_default) == ("stripe-sandbox", "4242", True)
    again = deliver(client, completed)  # Stripe delivers an event more than once, at times
    assert again.status_code == 200 and again.json["duplicate"] is True
    session_id = completed["data"]["object"]["id"]
    back = client.get(f"{METHODS}/added?session_id={session_id}")  # the customer's return, after the webhook
    assert back.status_code == 303 and len(live_cards(shopper)) == 1
    assert count(WebhookEvent) == 1


def test_the_setup_intent_webhook_finishes_the_open_setup_too(client, tenant, shopper, stripe_fake):
    save_on_fake_page(client, stripe_fake)
    [succeeded] = [e for e in stripe_fake.events if e["type"] == "setup_intent.succeeded"]
    assert deliver(client, succeeded).status_code == 200
    assert len(live_cards(shopper)) == 1


@pytest.mark.parametrize(("secret", "age"), [("whsec_someone_else", 0), (SECRET, 3600)])
def test_a_bad_or_stale_signature_is_refused_and_changes_nothing(client, tenant, shopper, stripe_fake, secret, age):
    completed = save_on_fake_page(client, stripe_fake)
    assert deliver(client, completed, secret=secret, age=age).status_code == 400
    assert client.post("/webhooks/stripe/default", data=b"{}").status_code == 400  # no signature at all
    assert live_cards(shopper) == [] and count(WebhookEvent) == 0


def test_events_not_handled_are_recorded(client, tenant, stripe_fake):
    event = {"id": "evt_cus_1", "object": "event", "type": "customer.updated",
             "data": {"object": {"id": "cus_1", "object": "customer"}}}
    assert deliver(client, event).status_code == 200
    row = db.session.scalars(select(WebhookEvent)).one()
    assert (row.type, row.outcome, row.processed_at) == ("customer.updated", "not handled yet", None)


def test_a_payment_event_about_no_payment_of_ours_is_recorded_and_changes_nothing(client, tenant, stripe_fake):
    event = {"id": "evt_pi_1", "object": "event", "type": "payment_intent.succeeded",
             "data": {"object": {"id": "pi_1", "object": "payment_intent", "metadata": {"payment_id": "77"}}}}
    assert deliver(client, event).status_code == 200
    row = db.session.scalars(select(WebhookEvent)).one()
    assert (row.type, row.outcome) == ("payment_intent.succeeded", "ignored: no payment pi_1")


def test_an_unknown_tenant_is_not_found(client, tenant, stripe_fake):
    event = {"id": "evt_1", "object": "event", "type": "x", "data": {"object": {}}}
    assert deliver(client, event, slug="nobody").status_code == 404


# --- the admin's Stripe page -----------------------------------------------------------------------------------


def test_the_admin_sets_checked_keys_shown_by_their_last_four(client, auth, tenant, admin, stripe_fake, monkeypatch,
                                                              app, fake_stripe):
    monkeypatch.setitem(app.config, "STRIPE_API_URL", fake_stripe[1].url)  # "Stripe" is the fake here
    auth.login(admin.email)
    page = client.get("/admin/billing/stripe").get_data(as_text=True)
    assert "https://localhost/webhooks/stripe/default" in page and "Sandbox" in page
    refused = post_form(client, "/admin/billing/stripe", {"secret_key": "sk_live_not_a_test_key_1234"})
    assert refused.status_code == 400 and "Stripe refused this key" in refused.get_data(as_text=True)
    saved = post_form(client, "/admin/billing/stripe", {"secret_key": "sk_test_tenant_key_abcd",
                                                        "webhook_secret": "whsec_tenant_secret_wxyz"})
    assert saved.status_code == 303
    page = client.get("/admin/billing/stripe").get_data(as_text=True)
    assert "<code>abcd</code>" in page and "<code>wxyz</code>" in page and "sk_test_tenant_key" not in page
    assert post_form(client, "/admin/billing/stripe", {"action": "clear"}).status_code == 303
    assert "Sandbox" in client.get("/admin/billing/stripe").get_data(as_text=True)


def test_customers_have_no_stripe_page(client, shopper):
    assert client.get("/admin/billing/stripe").status_code == 403
