"""Money in a real browser: a card saved on the fake Stripe's hosted page, a paid order, its first invoice and its
PDF; and a card that fails every charge walked through dunning with `flask jobs run billing --as-of` until the
subscription is suspended (its server powered off at the fake cloud), then paid with a good card and reinstated.

The live server collects through the fake Stripe API beside the fake clouds, through the real Stripe adapter.
"""

from __future__ import annotations

import re
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from playwright.sync_api import Page, expect

from tests.browser.conftest import type_card
from tests.browser.test_cards import log_in, new_customer
from tests.browser.test_journey import (
    HELSINKI,
    PROVISIONING_TIMEOUT,
    choose,
    order_form,
    summary_badge,
)

if TYPE_CHECKING:
    from tests.browser.conftest import BrowserWatch, LiveServer

GOOD = "4242 4242 4242 4242"
FAILS_EVERY_CHARGE = "4000 0000 0000 0341"


def order_standard(page: Page, card: str) -> str:
    """Order Standard in Helsinki, adding `card` at the card gate; wait until it runs. Returns its page's path."""
    page.goto("/")
    page.locator('.plan-card[data-plan="standard-monthly"]').get_by_role(
        "link", name="Order Standard", exact=True).click()
    choose(page, "Location", HELSINKI)
    order_form(page).get_by_label("Server name").fill(f"bill-{uuid.uuid4().hex[:8]}")
    order_form(page).get_by_role("button", name="Place order").click()
    expect(page.get_by_role("heading", name="Payment methods", level=1)).to_be_visible()
    page.get_by_role("button", name="Add a card").click()
    type_card(page, card)
    expect(page).to_have_url(re.compile(r"/order/\d+"))
    order_form(page).get_by_role("button", name="Place order").click()
    expect(page).to_have_url(re.compile(r"/subscriptions/\d+$"))
    expect(summary_badge(page)).to_have_text("Active", timeout=PROVISIONING_TIMEOUT)
    return re.sub(r"^https?://[^/]+", "", page.url)


def first_invoice_row(page: Page):  # type: ignore[no-untyped-def]
    page.goto("/billing")
    row = page.locator("table.invoices tbody tr").first
    expect(row).to_be_visible(timeout=15_000)
    return row


def power_after_reloads(page: Page, wanted: str, *, seconds: float = 20) -> bool:
    """Reload the subscription page until its server shows power `wanted` (the worker acts a moment after the
    page first loads, and a server that is neither starting nor stopping is not polled)."""
    deadline = time.monotonic() + seconds
    while True:
        power = page.locator(".server-live .power")
        expect(power).to_be_visible()
        if power.get_attribute("data-power") == wanted or time.monotonic() > deadline:
            return power.get_attribute("data-power") == wanted
        page.wait_for_timeout(1000)
        page.reload()


def run_billing(live_server: LiveServer, *, days: int) -> str:
    """`flask jobs run billing --as-of <now + days>`, as an operator catching up would run it."""
    from app.clock import now

    with live_server.app.app_context():
        moment = now() + timedelta(days=days)
    result = live_server.app.test_cli_runner().invoke(
        args=["jobs", "run", "billing", "--as-of", moment.strftime("%Y-%m-%dT%H:%M:%SZ")])
    assert result.exit_code == 0, result.output
    return result.output


def test_a_paid_order_is_invoiced_and_its_pdf_downloads(page: Page, watch: BrowserWatch,
                                                       live_server: LiveServer) -> None:
    log_in(page, new_customer(live_server, profile=True))
    order_standard(page, GOOD)

    row = first_invoice_row(page)
    expect(row).to_contain_text("Paid", timeout=15_000)
    expect(row).to_contain_text("€11.78")  # €9.90 and 19 % VAT: the demo seller and this customer are in Germany
    number = row.locator("a").first.inner_text().strip()
    assert re.fullmatch(r"NIM-\d{4}-\d{6}", number), number  # the demo tenant's invoice prefix

    row.get_by_role("link", name=number).click()
    expect(page.get_by_role("heading", name=re.compile(number))).to_be_visible()
    expect(page.locator(".invoice-document")).to_contain_text("Standard")
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download PDF").click()
    download = download_info.value
    assert download.suggested_filename == f"{number}.pdf"
    body = Path(download.path()).read_bytes()
    assert body.startswith(b"%PDF") and number.encode() in body
    assert watch.problems() == []


def test_a_failing_card_is_suspended_after_the_as_of_runs_and_reinstated_after_paying(
        page: Page, watch: BrowserWatch, live_server: LiveServer) -> None:
    log_in(page, new_customer(live_server, profile=True))
    subscription_path = order_standard(page, FAILS_EVERY_CHARGE)

    row = first_invoice_row(page)
    expect(row).to_contain_text("Open", timeout=15_000)  # the first try at delivery was declined
    expect(row.get_by_role("button", name="Pay now")).to_be_visible()

    assert "dunning: 0 suspended" in run_billing(live_server, days=4)  # the retry of day 3, declined again
    # 14 days overdue: suspended. The run bills every customer of the server's data, so another one may be
    # suspended with ours (the demo customer's metered usage, billed without a card whenever the worker's
    # hourly run came first); the page below shows that ours is.
    result = run_billing(live_server, days=15)
    assert re.search(r"dunning: [1-9]\d* suspended for non-payment", result), result

    page.goto(subscription_path)
    expect(summary_badge(page)).to_have_text("Suspended")
    assert power_after_reloads(page, "off")  # the worker powers the server off at the fake cloud

    # Pay with another card: added on the hosted page, the invoice is charged at once, the subscription is back.
    row = first_invoice_row(page)
    row.locator("a").first.click()
    page.get_by_role("link", name="Pay with another card").click()
    expect(page.get_by_role("note")).to_contain_text("Add a card to pay the open invoice with")
    page.get_by_role("button", name="Add a card").click()
    type_card(page, GOOD)
    expect(page.get_by_role("status")).to_contain_text("The invoice is paid with the new card")

    page.goto(subscription_path)
    expect(summary_badge(page)).to_have_text("Active")
    assert power_after_reloads(page, "running")  # and on again
    expect(first_invoice_row(page)).to_contain_text("Paid")
    # The hosted page's refusals and the portal's own pages: nothing blocked, nothing off the machine.
    assert watch.problems() == []
