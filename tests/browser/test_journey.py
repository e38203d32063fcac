"""A customer's whole journey in a real browser: sign up, order a server, watch it come up, run it, cancel.

The live server runs a real Huey consumer (see `live_worker` in conftest.py): the order is provisioned in
the sandbox cloud in about 8 real seconds, the pages follow it with htmx polling, as a customer sees it.
Every assertion is on what is visible; every page must stay clean under the CSP.
"""

from __future__ import annotations

import re
import uuid
from typing import TYPE_CHECKING

from playwright.sync_api import Locator, Page, expect

from tests.browser.conftest import emailed_link, type_card

if TYPE_CHECKING:
    from tests.browser.conftest import BrowserWatch, LiveServer

PROVISIONING_TIMEOUT = 30_000  # ms: the sandbox boots in ~8 s, the card polls every 2 s, the summary every 3 s
POWER_TIMEOUT = 10_000  # ms: a power action takes ~3 s, the live info polls every 1 s
HELSINKI = "Helsinki, Finland (hel1)"


def nav(page: Page) -> Locator:
    return page.get_by_role("navigation", name="Main")


def sign_up(page: Page, live_server: LiveServer, name: str) -> None:
    """Register, then confirm the address through the emailed link, which logs in."""
    email = f"journey-{uuid.uuid4().hex[:12]}@example.com"
    page.goto("/")
    nav(page).get_by_role("link", name="Sign up").click()
    expect(page.get_by_role("heading", name="Create an account", level=1)).to_be_visible()
    page.get_by_label("Your name").fill(name)
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password", exact=True).fill("a long journey password")
    page.get_by_label("Repeat the password").fill("a long journey password")
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_role("heading", name="Check your inbox", level=1)).to_be_visible()
    page.goto(emailed_link(live_server, email))
    page.get_by_role("button", name="Confirm and log in").click()
    expect(nav(page)).to_contain_text(name)


def fill_profile(page: Page) -> None:
    page.get_by_label("Company").fill("Journey Ltd")
    page.get_by_label("Street address").fill("Mannerheimintie 1")
    page.get_by_label("Postal code").fill("00100")
    page.get_by_label("City").fill("Helsinki")
    page.get_by_label("Country").select_option(label="Finland")


def add_card_for_the_order(page: Page) -> None:
    """At the card gate of a paid order: add a card on the (fake) Stripe page and come back to the order form."""
    expect(page.get_by_role("heading", name="Payment methods", level=1)).to_be_visible()
    expect(page.get_by_role("note")).to_have_text("Add a card to continue with your order: paid plans are charged "
                                                  "to it.")
    page.get_by_role("button", name="Add a card").click()
    type_card(page, "4242 4242 4242 4242")
    expect(page.get_by_role("status")).to_contain_text("Visa ending in 4242 saved as your default card.")
    expect(page).to_have_url(re.compile(r"/order/\d+"))


def order_form(page: Page) -> Locator:
    return page.locator("#order-form")


def choose(page: Page, label: str, option: str) -> None:
    """Pick `option` (its visible text) in the order form's select `label`; htmx refreshes the side panel."""
    order_form(page).get_by_label(label).select_option(label=option)


def summary_badge(page: Page) -> Locator:
    return page.locator("#summary .summary-head .badge")


def power_button(page: Page, name: str) -> Locator:
    return page.locator(".power-controls").get_by_role("button", name=name, exact=True)


def expect_power(page: Page, state: str, text: str) -> None:
    power = page.locator(".server-live .power")
    expect(power).to_have_attribute("data-power", state, timeout=POWER_TIMEOUT)
    expect(power).to_contain_text(text)


def test_customer_orders_runs_and_cancels_a_server(page: Page, watch: BrowserWatch, live_server: LiveServer) -> None:
    page.set_viewport_size({"width": 1280, "height": 900})
    sign_up(page, live_server, "Jordan Journey")

    # The catalogue: order the Standard plan.
    standard = page.locator('.plan-card[data-plan="standard-monthly"]')
    standard.get_by_role("link", name="Order Standard", exact=True).click()
    order_heading = page.get_by_role("heading", name="Order Standard", level=1)
    profile_heading = page.get_by_role("heading", name="Billing profile", level=1)
    expect(order_heading.or_(profile_heading)).to_be_visible()
    if order_heading.is_visible():
        # The order form comes first; the profile is asked for when the order is placed.
        choose(page, "Location", HELSINKI)
        expect(page.locator("#availability")).to_contain_text("Available now")
        order_form(page).get_by_role("button", name="Place order").click()

    # Sent to the billing profile, with a word on why; the order waits.
    expect(profile_heading).to_be_visible()
    expect(page.get_by_role("note")).to_have_text("Complete your billing profile to continue with your order.")
    expect(page.get_by_label("Full name")).to_have_value("Jordan Journey")  # from the account
    fill_profile(page)
    page.get_by_role("button", name="Save and continue").click()

    # Back on the order form.
    expect(page.get_by_role("status")).to_contain_text("Your profile is saved.")
    expect(order_heading).to_be_visible()
    expect(page).to_have_url(re.compile(r"/order/\d+"))
    preview = page.locator("#preview")
    expect(preview.locator("[data-recurring]")).to_contain_text("€9.90")
    expect(preview).to_contain_text("per month")
    page.evaluate("() => { document.querySelector('#preview').dataset.stale = 'yes'; }")
    choose(page, "Location", "Nuremberg, Germany (nbg1)")
    choose(page, "Location", HELSINKI)
    expect(page.locator("#preview[data-stale]")).to_have_count(0)  # htmx replaced the price preview
    expect(preview.locator("[data-recurring]")).to_contain_text("€9.90")
    expect(preview.locator("[data-due-now]")).to_contain_text("€9.90")
    expect(page.locator("#availability")).to_contain_text("Available now")
    expect(order_form(page).get_by_label("Location")).to_have_value("hel1")
    order_form(page).get_by_role("button", name="Place order").click()

    # A paid plan needs a card: sent to add one on the payment provider's page, then back to the order.
    add_card_for_the_order(page)
    expect(order_heading).to_be_visible()
    expect(order_form(page).get_by_label("Location")).to_have_value("hel1")
    order_form(page).get_by_role("button", name="Place order").click()

    # The subscription page: setting up, then active, the card and summary following by themselves.
    expect(page).to_have_url(re.compile(r"/subscriptions/\d+$"))
    expect(page.get_by_role("status")).to_contain_text("Your order is placed")
    expect(page.get_by_role("heading", name="Standard", level=1)).to_be_visible()
    expect(summary_badge(page)).to_have_text("Setting up")
    card = page.locator(".item-card")
    expect(card).to_have_count(1)
    expect(card).to_contain_text(HELSINKI)
    expect(card).to_contain_text("cx22")
    expect(card.locator("[data-item-status]")).to_have_text("Active", timeout=PROVISIONING_TIMEOUT)
    expect(card.locator(".progress-note")).to_have_count(0)
    expect(card).to_contain_text("203.0.113.")  # the IPv4 address
    expect_power(page, "running", "Running")
    expect(summary_badge(page)).to_have_text("Active", timeout=PROVISIONING_TIMEOUT)
    expect(page.locator("#summary")).to_contain_text("Active since")

    # Stop: every control is off while the server stops, then it is off and can be started.
    expect(power_button(page, "Start")).to_be_disabled()
    power_button(page, "Stop").click()
    expect_power(page, "stopping", "Stopping")
    for name in ("Start", "Stop", "Restart"):
        expect(power_button(page, name)).to_be_disabled()
    expect_power(page, "off", "Off")
    expect(power_button(page, "Start")).to_be_enabled()
    expect(power_button(page, "Stop")).to_be_disabled()
    expect(power_button(page, "Restart")).to_be_disabled()

    # Start again.
    power_button(page, "Start").click()
    expect_power(page, "starting", "Starting")
    expect(power_button(page, "Start")).to_be_disabled()
    expect_power(page, "running", "Running")
    expect(power_button(page, "Stop")).to_be_enabled()
    expect(power_button(page, "Start")).to_be_disabled()

    # Cancel at the end of the period, after a confirmation, then change one's mind.
    page.get_by_role("link", name="Cancel subscription").click()
    expect(page.get_by_role("heading", name="Cancel Standard?", level=1)).to_be_visible()
    expect(page.get_by_text("Your subscription stays active until")).to_be_visible()
    page.get_by_label("Why are you leaving? (optional)").fill("Just trying the portal.")
    page.get_by_role("button", name="Cancel subscription").click()
    expect(page.get_by_role("status")).to_contain_text("Your cancellation is scheduled.")
    expect(summary_badge(page)).to_have_text("Pending cancellation")
    expect(page.locator("#summary .actions")).to_contain_text(re.compile(r"Ends \S.* unless you resume\."))
    expect(page.get_by_role("link", name="Cancel subscription")).to_have_count(0)
    expect(page.locator(".timeline")).to_contain_text("Just trying the portal.")
    page.get_by_role("button", name="Resume subscription").click()
    expect(page.get_by_role("status")).to_contain_text("Welcome back! Your subscription continues.")
    expect(summary_badge(page)).to_have_text("Active")
    expect(page.get_by_role("button", name="Resume subscription")).to_have_count(0)
    expect(page.get_by_role("link", name="Cancel subscription")).to_be_visible()
    expect_power(page, "running", "Running")

    # The dashboard lists it.
    nav(page).get_by_role("link", name="My subscriptions").click()
    row = page.locator("table.subscriptions tbody tr").filter(has_text="Standard")
    expect(row).to_have_count(1)
    expect(row.locator(".badge")).to_have_text("Active")
    expect(row).to_contain_text("1 of 1 ready")
    assert watch.problems() == []


def test_sold_out_choice_offers_alternatives(page: Page, watch: BrowserWatch, ready_customer: tuple[str, str]
                                             ) -> None:
    email, password = ready_customer
    page.goto("/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(nav(page).get_by_role("button", name="Log out")).to_be_visible()

    page.locator('.plan-card[data-plan="standard-monthly"]').get_by_role("link", name="Order Standard").click()
    availability = page.locator("#availability")
    expect(availability).to_contain_text("Available now")  # the defaults: cx22 in Nuremberg
    choose(page, "Server type", "cx42")
    choose(page, "Location", HELSINKI)
    expect(availability).to_contain_text("cx42 is sold out in Helsinki, Finland (hel1) for now.")
    expect(availability.locator(".availability-no")).to_be_visible()
    expect(availability.locator(".alternatives-compact li")).to_contain_text(
        ["cx42 in Falkenstein, Germany (fsn1)", "cx42 in Nuremberg, Germany (nbg1)"])

    # Ordering anyway: refused, with the alternatives to pick from.
    order_form(page).get_by_role("button", name="Place order").click()
    alert = page.locator("#unavailable")
    expect(alert).to_contain_text("cx42 is sold out in Helsinki, Finland (hel1) for now.")
    expect(order_form(page).get_by_label("Location")).to_have_value("hel1")  # the choice is kept
    alternative = alert.get_by_role("link", name="cx42 in Falkenstein, Germany (fsn1)")
    expect(alternative).to_be_visible()
    expect(alert.get_by_role("link", name="cx42 in Nuremberg, Germany (nbg1)")).to_be_visible()
    alternative.click()

    # The alternative is filled in, and available.
    expect(page.locator("#unavailable")).to_have_count(0)
    expect(order_form(page).get_by_label("Server type")).to_have_value("cx42")
    expect(order_form(page).get_by_label("Location")).to_have_value("fsn1")
    expect(availability).to_contain_text("Available now")
    # Chromium logs the refused order's own 409 as a failed resource load; that one line is expected.
    assert watch.problems(expected_statuses=(409,)) == []
