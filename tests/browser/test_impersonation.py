"""Support impersonation in a real browser: find, impersonate with a reason, banner, refusal, stop."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from playwright.sync_api import Locator, Page, expect

if TYPE_CHECKING:
    from tests.browser.conftest import BrowserWatch

SUPPORT = ("support@example.com", "demo-support-pass")
REASON = "Ticket #4711: cannot find the invoice"


def nav(page: Page) -> Locator:
    return page.get_by_role("navigation", name="Main")


def banner(page: Page) -> Locator:
    return page.get_by_role("complementary", name="Impersonation")


def log_in(page: Page, email: str, password: str) -> None:
    page.goto("/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(nav(page).get_by_role("button", name="Log out")).to_be_visible()


def test_support_impersonates_a_customer_and_stops(page: Page, watch: BrowserWatch, tmp_path: Path) -> None:
    page.set_viewport_size({"width": 1280, "height": 900})
    log_in(page, *SUPPORT)
    expect(page).to_have_url(re.compile(r"/support/$"))

    # Find the customer with the live search, open their page.
    page.get_by_role("searchbox", name="Search customers").press_sequentially("casey", delay=30)
    results = page.locator("#results tbody tr td:first-child")
    expect(results).to_have_text(["Casey Customer"])
    results.get_by_role("link", name="Casey Customer").click()
    expect(page.get_by_role("heading", name="Casey Customer", level=1)).to_be_visible()
    expect(page.get_by_role("heading", name="Subscriptions")).to_be_visible()
    expect(banner(page)).to_have_count(0)

    # A reason is required.
    start = page.get_by_role("button", name="Impersonate Casey Customer")
    start.click()
    expect(page.get_by_text("Give a reason, for example a ticket reference.")).to_be_visible()
    expect(banner(page)).to_have_count(0)

    page.get_by_label("Reason").fill(REASON)
    page.get_by_role("button", name="Impersonate Casey Customer").click()
    expect(page).to_have_url(re.compile(r"/subscriptions/$"))
    expect(page.get_by_role("status")).to_contain_text("You are now acting as Casey Customer.")
    expect(banner(page)).to_contain_text("Sam Support (support) is acting as Casey Customer")
    expect(banner(page)).to_contain_text(REASON)
    expect(banner(page)).to_contain_text(re.compile(r"\b(60|59) min left"))
    expect(nav(page)).to_contain_text("Casey Customer")

    directory = Path(os.environ.get("SCREENSHOT_DIR") or tmp_path)
    directory.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=directory / "impersonation.png", full_page=True)

    # Every htmx swap brings a fresh banner out of band (here the price preview, swapped into the page).
    page.goto("/")
    expect(banner(page)).to_be_visible()
    order_link = page.get_by_role("link", name=re.compile(r"^Order ")).first
    plan_path = re.sub(r"^https?://[^/]+", "", order_link.get_attribute("href") or "")
    page.evaluate("() => { document.getElementById('impersonation-banner').dataset.before = 'yes'; }")
    with page.expect_response(lambda r: "/preview" in r.url) as swapped:
        page.evaluate("""(path) => {
            const target = document.createElement("div");
            target.id = "swap-target";
            document.querySelector("main").append(target);
            return htmx.ajax("GET", path + "/preview?quantity=1", {target: "#swap-target", swap: "innerHTML"});
        }""", plan_path)
    assert swapped.value.status == 200
    expect(page.locator("#swap-target")).not_to_be_empty()
    expect(page.locator("#impersonation-banner")).to_have_count(1)
    expect(page.locator("#impersonation-banner")).not_to_have_attribute("data-before", "yes")  # replaced
    expect(banner(page)).to_contain_text(REASON)

    # Changing the password is refused, with a clear message.
    nav(page).get_by_role("link", name="Profile").click()
    page.get_by_role("link", name="Password and email").click()
    expect(page.get_by_role("heading", name="Not allowed", level=1)).to_be_visible()
    expect(page.get_by_text("Not while impersonating: the password and the login email can only be changed by "
                            "the customer")).to_be_visible()
    expect(banner(page)).to_be_visible()

    # Stop: back in the support area, on the customer's page, as support.
    banner(page).get_by_role("button", name="Stop impersonating").click()
    expect(page).to_have_url(re.compile(r"/support/customers/\d+$"))
    expect(page.get_by_role("status")).to_contain_text("You stopped acting as Casey Customer.")
    expect(banner(page)).to_have_count(0)
    expect(nav(page).get_by_role("link", name="Support")).to_have_attribute("aria-current", "page")
    expect(page.get_by_role("heading", name="Past impersonations")).to_be_visible()
    expect(page.get_by_text(REASON)).to_be_visible()
    expect(page.get_by_text("Stopped by support")).to_be_visible()

    nav(page).get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/login$"))
    assert watch.problems(expected_statuses=(400, 403)) == []  # the reason left blank; the refusal
