"""Buying through the sandbox marketplaces, as a newcomer to the demo would: the fake marketplace's purchase page,
the portal's landing or sign-up page, signing in, setting the subscription up, and a running server that the
marketplace bills (its activation or approval seen at the fake)."""

from __future__ import annotations

import json
import urllib.request
from typing import TYPE_CHECKING
from urllib.parse import urlsplit
from uuid import NAMESPACE_URL, uuid4, uuid5

from playwright.sync_api import Page, expect

from tests.browser.test_journey import PROVISIONING_TIMEOUT, summary_badge

if TYPE_CHECKING:
    from tests.browser.conftest import LiveServer


def fake_state(url: str) -> dict[str, object]:
    with urllib.request.urlopen(f"{url}/_control/state", timeout=5) as answer:  # noqa: S310 (loopback: our fake)
        return json.loads(answer.read())


def sign_in_from_the_purchase(page: Page, email: str, password: str) -> None:
    """On the portal's purchase page: sign in, and come back to it."""
    expect(page.get_by_role("heading", name="Sign in to set it up")).to_be_visible()
    page.get_by_role("link", name="Sign in").click()
    page.get_by_label("Password").fill(password)
    if not page.get_by_label("Email").input_value():
        page.get_by_label("Email").fill(email)
    page.get_by_role("button", name="Log in").click()


def set_up_and_wait_for_the_server(page: Page, label: str) -> None:
    expect(page.locator("#purchase-summary")).to_contain_text(f"Billed by{label}")
    page.get_by_role("button", name="Set up my subscription").click()
    expect(page.get_by_text("Your subscription is being set up.")).to_be_visible()
    expect(summary_badge(page)).to_have_text("Active", timeout=PROVISIONING_TIMEOUT)
    expect(page.locator("main")).to_contain_text(label)


def test_a_customer_buys_through_stackit_and_gets_a_running_server(page: Page, live_server: LiveServer,
                                                                   ready_customer: tuple[str, str]) -> None:
    from app.sandbox.stackit_api import purchase_url

    stackit = str(live_server.app.config["SANDBOX_STACKIT_URL"])
    project = str(uuid5(NAMESPACE_URL, "sandbox-stackit:default"))
    page.goto(purchase_url(stackit, project, live_server.url_for("/marketplace/stackit/signup")))
    page.get_by_role("button", name="Subscribe").click()

    sign_in_from_the_purchase(page, *ready_customer)
    set_up_and_wait_for_the_server(page, "STACKIT Marketplace")

    subscriptions = fake_state(stackit)["subscriptions"]
    assert isinstance(subscriptions, list)
    [bought] = [s for s in subscriptions if s["vendor"] == project]
    assert bought["lifecycleState"] == "SUBSCRIPTION_ACTIVE"  # approved: STACKIT bills it from now
    assert urlsplit(str(bought["instanceTarget"])).path == urlsplit(page.url).path  # where the customer finds it


def control(url: str, path: str, payload: dict[str, object]) -> None:
    request = urllib.request.Request(f"{url}/_control/{path}", data=json.dumps(payload).encode(),  # noqa: S310
                                     headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=5) as answer:  # noqa: S310 (loopback: our own fake)
        assert answer.status == 200


def test_a_newcomer_buys_through_microsoft_registers_and_gets_a_running_server(page: Page,
                                                                               live_server: LiveServer) -> None:
    from tests.browser.conftest import emailed_link

    microsoft = str(live_server.app.config["SANDBOX_MICROSOFT_URL"])
    control(microsoft, "publisher", {"publisher": "default",
                                     "landing_url": live_server.url_for("/marketplace/microsoft/landing"),
                                     "webhook_url": live_server.url_for("/webhooks/microsoft/default")})
    email = f"buyer-{uuid4().hex[:10]}@example.com"
    page.goto(f"{microsoft}/purchase?publisher=default")
    page.get_by_label("Your email").fill(email)
    page.get_by_role("button", name="Subscribe and configure account").click()

    expect(page.get_by_role("heading", name="Sign in to set it up")).to_be_visible()
    page.get_by_role("link", name="Create an account").click()
    expect(page.get_by_label("Email")).to_have_value(email)  # the purchaser's address, prefilled
    page.get_by_label("Your name").fill("Bea Buyer")
    page.get_by_label("Password", exact=True).fill("a marketplace password")
    page.get_by_label("Repeat the password").fill("a marketplace password")
    page.get_by_role("button", name="Create account").click()
    page.goto(emailed_link(live_server, email))
    page.get_by_role("button", name="Confirm and log in").click()  # confirmed and signed in: back to the purchase

    set_up_and_wait_for_the_server(page, "Microsoft commercial marketplace")
    [bought] = [s for s in fake_state(microsoft)["subscriptions"]  # type: ignore[union-attr]
                if s["purchaser"]["emailId"] == email]
    assert bought["saasSubscriptionStatus"] == "Subscribed"  # activated: Microsoft bills it from now
