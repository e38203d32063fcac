"""A new customer's way in and out, in a real browser: register and confirm the address from the emails the
portal sent, add an SSH key, order a named server, read the "server ready" email, rebuild, delete the account.

Emails are read as a newcomer without a mail server reads them: the development outbox (`/outbox`) and the
account's Emails tab, both pages of the email log.
"""

from __future__ import annotations

import re
import uuid
from typing import TYPE_CHECKING

from playwright.sync_api import Locator, Page, expect

from tests.browser.conftest import type_card
from tests.browser.test_journey import PROVISIONING_TIMEOUT, choose, fill_profile, nav, order_form
from tests.sshkeys import ed25519_key

if TYPE_CHECKING:
    from tests.browser.conftest import BrowserWatch, LiveServer

PASSWORD = "a long access password"
DNS_BASE_DOMAIN = "cloud.example.test"


def outbox_email(page: Page, address: str, subject: str) -> Locator:
    """The newest email of the development outbox to `address` with `subject`, opened."""
    page.goto("/outbox")
    expect(page.get_by_role("heading", name="Development outbox", level=1)).to_be_visible()
    email = page.locator("details.outbox-email").filter(has_text=address).filter(has_text=subject).first
    expect(email).to_be_visible()
    if email.get_attribute("open") is None:
        email.locator("summary").click()
    return email


def test_register_confirm_add_a_key_order_a_named_server_rebuild_and_leave(
        page: Page, watch: BrowserWatch, live_server: LiveServer) -> None:
    page.set_viewport_size({"width": 1280, "height": 900})
    tag = uuid.uuid4().hex[:8]
    email, name, server = f"access-{tag}@example.com", "Alex Access", f"web-{tag}"
    fqdn = f"{server}.default.{DNS_BASE_DOMAIN}"

    # Register: the portal asks to confirm the address; the link is in the emails it sent.
    page.goto("/register")
    page.get_by_label("Your name").fill(name)
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Repeat the password").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_role("heading", name="Check your inbox", level=1)).to_be_visible()
    confirmation = outbox_email(page, email, "Confirm")
    confirmation.locator("a[href*=\"/confirm-email/\"]").click()
    page.get_by_role("button", name="Confirm and log in").click()
    expect(nav(page)).to_contain_text(name)

    # The billing profile, then an SSH key on the account.
    page.goto("/account/profile")
    fill_profile(page)
    page.get_by_role("button", name=re.compile("Save")).click()
    page.goto("/account/keys")
    expect(page.get_by_role("heading", name="SSH keys", level=1)).to_be_visible()
    page.get_by_label("Public key").fill(ed25519_key(f"alex@{tag}"))
    page.get_by_label("Name").first.fill("Laptop")
    page.get_by_role("button", name="Add key").click()
    keys = page.locator("table.keys")
    expect(keys).to_contain_text("SHA256:")
    fingerprint = keys.locator("code.fingerprint").first.inner_text()

    # A card, for the paid plan: typed on the (fake) Stripe page.
    page.goto("/billing/payment-methods")
    page.get_by_role("button", name="Add a card").click()
    type_card(page, "4242 4242 4242 4242")
    expect(page.locator("table.cards")).to_contain_text("Visa ending in 4242")

    # Order Standard on Hetzner with a chosen name; the key is ticked already.
    page.goto("/")
    page.locator('.plan-card[data-plan="standard-monthly"]').get_by_role(
        "link", name="Order Standard", exact=True).click()
    expect(page.get_by_role("heading", name="Order Standard", level=1)).to_be_visible()
    choose(page, "Location", "Helsinki, Finland (hel1)")
    expect(order_form(page).get_by_label(re.compile("Laptop"))).to_be_checked()
    order_form(page).get_by_label("Server name").fill(server)
    order_form(page).get_by_role("button", name="Place order").click()
    expect(page).to_have_url(re.compile(r"/subscriptions/\d+$"))
    card = page.locator(".item-card")
    expect(card).to_contain_text(fqdn)
    expect(card.locator("[data-item-status]")).to_have_text("Active", timeout=PROVISIONING_TIMEOUT)
    access = card.locator(".access-box")
    expect(access).to_contain_text(f"ssh root@{fqdn}")
    expect(access).to_contain_text(fingerprint)
    expect(access.get_by_role("button", name="Show the root password once")).to_have_count(0)  # a key: none
    subscription_url = page.url

    # The "server ready" email, in the account's Emails tab: the FQDN and how to log in, never a password.
    page.goto("/account/emails")
    expect(page.get_by_role("heading", name="Emails", level=1)).to_be_visible()
    page.get_by_role("link", name=re.compile("ready", re.IGNORECASE)).first.click()
    text = page.locator(".email-text")
    expect(text).to_contain_text(fqdn)
    expect(text).to_contain_text(f"ssh root@{fqdn}")
    expect(text).to_contain_text(fingerprint)
    expect(text).not_to_contain_text("password:")

    # Rebuild: a wrong name changes nothing; the right one reinstalls the server, which comes back.
    page.goto(subscription_url)
    access.get_by_role("link", name="Rebuild…").click()
    expect(page.get_by_role("heading", name=f"Rebuild {server}?", level=1)).to_be_visible()
    page.get_by_label("Type the server's name to confirm").fill("not-the-name")
    page.get_by_role("button", name="Rebuild and erase the disk").click()
    expect(page.locator(".error, .alert-error").first).to_be_visible()
    expect(page.get_by_role("heading", name=f"Rebuild {server}?", level=1)).to_be_visible()
    page.get_by_label("Type the server's name to confirm").fill(server)
    page.get_by_role("button", name="Rebuild and erase the disk").click()
    expect(page).to_have_url(re.compile(r"/subscriptions/\d+$"))
    expect(page.locator(".timeline")).to_contain_text(re.compile("rebuil", re.IGNORECASE), timeout=PROVISIONING_TIMEOUT)
    expect(page.locator(".item-card [data-item-status]")).to_have_text("Active", timeout=PROVISIONING_TIMEOUT)

    # Delete the account: a wrong password changes nothing; the right one cancels, logs out, confirms by email.
    page.goto("/account/delete")
    expect(page.get_by_role("heading", name="Delete your account", level=1)).to_be_visible()
    expect(page.get_by_text("cancels your 1 subscription at once")).to_be_visible()
    page.get_by_label("Your password").fill("not my password at all")
    page.get_by_role("button", name="Delete my account").click()
    expect(page.get_by_role("heading", name="Delete your account", level=1)).to_be_visible()
    page.get_by_label("Your password").fill(PASSWORD)
    page.get_by_role("button", name="Delete my account").click()
    expect(nav(page).get_by_role("link", name="Log in")).to_be_visible()
    page.goto(subscription_url)
    expect(page).to_have_url(re.compile(r"/login"))
    outbox_email(page, email, "deleted")
    page.goto("/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_text("Email or password is not right.")).to_be_visible()
