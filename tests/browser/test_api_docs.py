"""The API reference page in a real browser: Swagger UI renders the portal's OpenAPI document under the
portal's Content-Security-Policy, with no CSP violation, no console error and no request off the machine."""

from __future__ import annotations

from typing import TYPE_CHECKING

from playwright.sync_api import Page, expect

if TYPE_CHECKING:
    from tests.browser.conftest import BrowserWatch


def test_api_reference_renders_the_document_without_csp_violations(page: Page, watch: BrowserWatch) -> None:
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto("/api/docs")
    expect(page.get_by_role("heading", name="Cloud portal API")).to_be_visible()
    operation = page.locator(".opblock-summary-path", has_text="/api/v1/subscriptions/{subscription_id}").first
    expect(operation).to_be_visible()
    page.locator(".opblock-tag", has_text="subscriptions").first.click()  # fold a section: the UI runs
    expect(page.get_by_role("button", name="Authorize")).to_be_visible()
    watch.flush()
    assert watch.problems() == []
    assert requested and all(url.startswith(page.url.split("/api/docs")[0]) for url in requested), requested
