"""A failed htmx request is never silent: a message in a fixed region, and an ended session goes to login and back."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from playwright.sync_api import Page, Route, expect

from tests.browser.test_clouds import log_in
from tests.browser.test_journey import choose, nav

if TYPE_CHECKING:
    from tests.browser.conftest import BrowserWatch, LiveServer

ORDER_LINK = "Order Basic droplet"


def open_order_form(page: Page) -> str:
    page.locator('.plan-card[data-plan="basic-monthly"]').get_by_role("link", name=ORDER_LINK).click()
    expect(page.locator("#order-form")).to_be_visible()
    # The form's own first requests (the availability box loads at once) are answered and swapped in before a
    # test changes a field: a region chosen while a panel is being swapped could go unheard by the new panel.
    page.wait_for_load_state("networkidle")
    return page.url


def problem(page: Page):  # type: ignore[no-untyped-def]
    return page.locator("#request-problem")


def test_logging_out_in_another_tab_sends_the_next_htmx_request_to_login_and_back(
        page: Page, watch: BrowserWatch, ready_customer: tuple[str, str]) -> None:
    log_in(page, *ready_customer)
    order_url = open_order_form(page)
    other_tab = page.context.new_page()
    other_tab.goto("/")
    nav(other_tab).get_by_role("button", name="Log out").click()
    expect(nav(other_tab).get_by_role("link", name="Log in")).to_be_visible()
    other_tab.close()

    choose(page, "Region", "Amsterdam, Netherlands (ams3)")  # htmx asks for the price and availability
    expect(page).to_have_url(re.compile(r"/login\?next="))
    expect(page.get_by_text("Your session has ended. Please log in again.")).to_be_visible()
    page.get_by_label("Email").fill(ready_customer[0])
    page.get_by_label("Password").fill(ready_customer[1])
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(order_url)
    expect(page.locator("#order-form")).to_be_visible()


def test_an_unreachable_portal_is_reported(page: Page, watch: BrowserWatch, ready_customer: tuple[str, str]) -> None:
    log_in(page, *ready_customer)
    open_order_form(page)
    expect(problem(page)).to_be_hidden()
    page.route("**/availability*", lambda route: route.abort("connectionreset"))
    choose(page, "Region", "Amsterdam, Netherlands (ams3)")
    expect(problem(page)).to_be_visible()
    expect(problem(page)).to_contain_text("Could not reach the portal")
    problem(page).get_by_role("button", name="Dismiss").click()
    expect(problem(page)).to_be_hidden()


def test_an_error_answer_shows_the_portals_message_with_its_request_id(
        page: Page, watch: BrowserWatch, live_server: LiveServer, ready_customer: tuple[str, str]) -> None:
    log_in(page, *ready_customer)
    open_order_form(page)

    def to_a_missing_plan(route: Route) -> None:
        route.continue_(url=live_server.url_for("/order/2147483647/preview?quantity=1"))

    page.route("**/preview*", to_a_missing_plan)
    choose(page, "Region", "Amsterdam, Netherlands (ams3)")
    expect(problem(page)).to_contain_text("Not found.")
    expect(problem(page)).to_contain_text(re.compile(r"Request id: [0-9a-f]{16}"))


def test_a_failure_without_the_portals_message_still_says_something(
        page: Page, watch: BrowserWatch, ready_customer: tuple[str, str]) -> None:
    log_in(page, *ready_customer)
    open_order_form(page)
    page.route("**/preview*", lambda route: route.fulfill(status=502, body="Bad gateway", content_type="text/plain"))
    choose(page, "Region", "Amsterdam, Netherlands (ams3)")
    expect(problem(page)).to_contain_text("The portal answered with an error (502)")
