"""The demo's clouds as a newcomer meets them: the fake Hetzner and DigitalOcean APIs, driven by the real SDKs."""

from __future__ import annotations

import json
import urllib.request
from typing import TYPE_CHECKING

from playwright.sync_api import Page, expect

from tests.browser.test_journey import HELSINKI, PROVISIONING_TIMEOUT, choose, nav, order_form, summary_badge

if TYPE_CHECKING:
    from tests.browser.conftest import BrowserWatch, LiveServer



def log_in(page: Page, email: str, password: str) -> None:
    page.goto("/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(nav(page).get_by_role("button", name="Log out")).to_be_visible()


def control(live_server: LiveServer, cloud: str, path: str, payload: dict[str, object]) -> None:
    """The fake cloud's control interface, as an operator would use it."""
    root = live_server.app.config[f"SANDBOX_{cloud.upper()}_URL"].rsplit("/v", 1)[0]
    request = urllib.request.Request(f"{root}/_control/{path}", data=json.dumps(payload).encode(),  # noqa: S310
                                     headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=5) as answer:  # noqa: S310 (loopback: our own fake)
        assert answer.status == 200


def test_a_droplet_is_ordered_on_digitalocean_in_a_chosen_region(page: Page, watch: BrowserWatch,
                                                                  ready_customer: tuple[str, str]) -> None:
    log_in(page, *ready_customer)
    page.locator('.plan-card[data-plan="basic-monthly"]').get_by_role("link", name="Order Basic droplet").click()
    choose(page, "Region", "Amsterdam, Netherlands (ams3)")
    expect(page.locator("#availability")).to_contain_text("Available now")
    order_form(page).get_by_role("button", name="Place order").click()
    expect(summary_badge(page)).to_have_text("Setting up")
    expect(summary_badge(page)).to_have_text("Active", timeout=PROVISIONING_TIMEOUT)
    card = page.locator(".item-card")
    expect(card).to_contain_text("Amsterdam, Netherlands (ams3)")
    expect(card.locator(".server-live .power")).to_have_attribute("data-power", "running", timeout=10_000)
    assert watch.problems() == []


def test_a_backorder_turns_active_when_capacity_is_freed(page: Page, watch: BrowserWatch, live_server: LiveServer,
                                                          ready_customer: tuple[str, str]) -> None:
    from app.models import JobTrigger
    from app.tasks.schedule import run_job

    log_in(page, *ready_customer)
    page.locator('.plan-card[data-plan="standard-monthly"]').get_by_role("link", name="Order Standard").click()
    choose(page, "Server type", "cx42")
    choose(page, "Location", HELSINKI)
    expect(page.locator("#availability")).to_contain_text("sold out")
    order_form(page).get_by_label("If it is sold out, put my order on the backorder list instead").check()
    order_form(page).get_by_role("button", name="Place order").click()
    expect(summary_badge(page)).to_have_text("On backorder")
    expect(page.locator("#summary")).to_contain_text("in the queue for cx42 in Helsinki")

    control(live_server, "hetzner", "capacity", {"server_type": "cx42", "location": "hel1", "count": None})
    try:
        # The backorders job now, as `flask jobs run backorders` runs it (the live worker may have taken this
        # minute's scheduled run already).
        run_job("backorders", trigger=JobTrigger.COMMAND)
        expect(summary_badge(page)).to_have_text("Active", timeout=PROVISIONING_TIMEOUT + 10_000)
        expect(page.locator(".item-card [data-item-status]")).to_have_attribute("data-item-status", "active")
    finally:  # sold out again for the tests that follow
        control(live_server, "hetzner", "capacity", {"server_type": "cx42", "location": "hel1", "count": 0})
    assert watch.problems() == []
