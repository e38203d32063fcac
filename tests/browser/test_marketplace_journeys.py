"""Buying through the sandbox marketplaces, as a newcomer to the demo would: the fake marketplace's purchase page,
the portal's landing or sign-up page, signing in, setting the subscription up, and a running server that the
marketplace bills (its activation or approval seen at the fake)."""

from __future__ import annotations

import json
import urllib.request
from typing import TYPE_CHECKING
from urllib.parse import urlsplit
from uuid import NAMESPACE_URL, uuid5

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
