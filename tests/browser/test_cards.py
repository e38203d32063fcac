"""Saving a card in a real browser: the portal's payment methods page, the fake Stripe's hosted page, and back.

The live server collects through the fake Stripe API that `start_sandbox_clouds` serves beside the fake
clouds (as `flask up` does), through the real Stripe adapter and SDK.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from playwright.sync_api import Page, expect

from tests.browser.conftest import confirmed, type_card
from tests.browser.test_journey import HELSINKI, add_card_for_the_order, choose, nav, order_form

if TYPE_CHECKING:
    from tests.browser.conftest import BrowserWatch, LiveServer

PASSWORD = "a card-carrying password"


def new_customer(live_server: LiveServer, *, profile: bool = False) -> str:
    from sqlalchemy import select

    from app.extensions import db
    from app.models import Tenant
    from app.services.accounts import register_customer

    email = f"cards-{uuid.uuid4().hex[:12]}@example.com"
    with live_server.app.app_context():
        tenant = db.session.scalar(select(Tenant).where(Tenant.slug == "default"))
        user = register_customer(tenant=tenant, name="Carla Card", email=email, password=PASSWORD)
        confirmed(user)
        if profile:
            from app.services.actors import Actor
            from app.services.profiles import save_profile

            save_profile(actor=Actor(user), full_name="Carla Card", billing_email=email, company="",
                         address="Main St 1", postal_code="10115", city="Berlin", country="DE")
        db.session.remove()
    return email


def log_in(page: Page, email: str) -> None:
    page.goto("/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(nav(page).get_by_role("button", name="Log out")).to_be_visible()


def test_a_card_is_saved_on_the_hosted_page_and_listed_as_default(page: Page, watch: BrowserWatch,
                                                                   live_server: LiveServer) -> None:
    log_in(page, new_customer(live_server))
    page.goto("/billing/payment-methods")
    expect(page.get_by_role("heading", name="Payment methods", level=1)).to_be_visible()
    expect(page.locator("#cards")).to_contain_text("No card saved yet.")

    page.get_by_role("button", name="Add a card").click()
    expect(page).not_to_have_url(live_server.url_for("/billing/payment-methods"))  # the provider's page
    type_card(page, "4242 4242 4242 4242")

    expect(page.get_by_role("heading", name="Payment methods", level=1)).to_be_visible()
    expect(page.get_by_role("status")).to_contain_text("Visa ending in 4242 saved as your default card.")
    row = page.locator("table.cards tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("Visa ending in 4242")
    expect(row).to_contain_text("12/2034")
    expect(row.locator(".badge")).to_have_text("Default")
    assert watch.problems() == []


def test_a_declined_card_shows_the_error_on_the_hosted_page(page: Page, watch: BrowserWatch,
                                                            live_server: LiveServer) -> None:
    log_in(page, new_customer(live_server))
    page.goto("/billing/payment-methods")
    page.get_by_role("button", name="Add a card").click()
    type_card(page, "4000 0000 0000 0002")
    expect(page.get_by_role("alert")).to_have_text("Your card was declined.")
    type_card(page, "4000 0000 0000 9995")
    expect(page.get_by_role("alert")).to_have_text("Your card has insufficient funds.")

    page.get_by_role("link", name="Cancel and go back").click()
    expect(page.get_by_role("heading", name="Payment methods", level=1)).to_be_visible()
    expect(page.get_by_role("status")).to_contain_text("No card was added.")
    expect(page.locator("#cards")).to_contain_text("No card saved yet.")
    # The hosted page answers a refused card with 402, as Stripe's API does; the browser logs that load.
    assert watch.problems(expected_statuses=(402,)) == []


def test_a_paid_order_waits_for_a_card_and_keeps_its_choices(page: Page, watch: BrowserWatch,
                                                             live_server: LiveServer) -> None:
    log_in(page, new_customer(live_server, profile=True))
    page.locator('.plan-card[data-plan="standard-monthly"]').get_by_role(
        "link", name="Order Standard", exact=True).click()
    choose(page, "Location", HELSINKI)
    order_form(page).get_by_label("Server name").fill(f"card-{uuid.uuid4().hex[:8]}")
    order_form(page).get_by_role("button", name="Place order").click()

    add_card_for_the_order(page)
    expect(order_form(page).get_by_label("Location")).to_have_value("hel1")  # the choice is kept
    order_form(page).get_by_role("button", name="Place order").click()
    expect(page.get_by_role("status")).to_contain_text("Your order is placed")
    assert watch.problems() == []


def test_the_fake_stripe_webhook_saves_the_card_when_the_customer_never_comes_back(live_server: LiveServer) -> None:
    """No browser: the hosted page is filled in over HTTP, and the customer never returns to the portal. The
    fake Stripe's signed webhooks (each sent twice) reach the live portal, which saves the card once."""
    import time

    import requests
    from sqlalchemy import func, select

    from app.extensions import db
    from app.models import PaymentMethod, Tenant, User, WebhookEvent
    from app.services.actors import Actor
    from app.services.payment_methods import start_setup

    def control(path: str, payload: dict[str, object]) -> None:
        requests.post(f"{stripe_url}/_control/{path}", json=payload, timeout=5).raise_for_status()

    email = new_customer(live_server)
    stripe_url = str(live_server.app.config["SANDBOX_STRIPE_URL"])
    control("webhook", {"url": live_server.url_for("/webhooks/stripe/{account}")})
    control("duplicates", {"on": True})
    try:
        with live_server.app.app_context():
            tenant = db.session.scalar(select(Tenant).where(Tenant.slug == "default"))
            user = db.session.scalar(select(User).where(User.email == email))
            url = start_setup(tenant=tenant, actor=Actor(user),
                              return_url=live_server.url_for("/billing/payment-methods/added"))
            user_id = user.id
            db.session.remove()
        typed = requests.post(url, data={"number": "5555 5555 5555 4444", "expiry": "01/33", "cvc": "321"},
                              allow_redirects=False, timeout=10)
        assert typed.status_code == 303
        deadline = time.monotonic() + 15
        while True:
            with live_server.app.app_context():
                cards = db.session.scalars(select(PaymentMethod).where(PaymentMethod.user_id == user_id)).all()
                events = db.session.scalar(select(func.count()).select_from(WebhookEvent)
                                           .where(WebhookEvent.type == "checkout.session.completed"))
                db.session.remove()
            # setup_intent.succeeded may save the card first; checkout.session.completed then finds it saved.
            if (cards and events) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert [(c.brand, c.last4, c.exp_month, c.exp_year, c.is_default) for c in cards] == [
            ("mastercard", "4444", 1, 2033, True)]
        assert events == 1  # each event was delivered twice, and recorded once
    finally:
        control("duplicates", {"on": False})
        control("webhook", {"url": None})
