"""The portal in a real browser: a customer's journey, the staff areas, CSP and styling on every page."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import Locator, Page, expect

from app.domain.accounts import Role
from app.services.demo import DEMO_PASSWORDS
from tests.browser.conftest import confirmed, emailed_link

if TYPE_CHECKING:
    from tests.browser.conftest import BrowserWatch, LiveServer

# The demo tenant's published plans, in catalogue order (drafts and deprecated plans are not shown).
DEMO_PLANS = ["trial", "standard-monthly", "standard-yearly", "team-monthly", "basic-monthly", "basic-yearly",
              "basic-metered", "general-monthly"]
DEMO_EMAILS = {
    Role.CUSTOMER: "customer@example.com",
    Role.TENANT_ADMIN: "admin@example.com",
    Role.SUPPORT: "support@example.com",
}
SUPPORT_SEARCH_CUSTOMERS = [("Quentin Quarry", "quentin"), ("Quincy Quartz", "quincy"), ("Zelda Zephyr", "zelda")]


def nav(page: Page) -> Locator:
    return page.get_by_role("navigation", name="Main")


def log_in(page: Page, email: str, password: str) -> None:
    page.goto("/login")
    expect(page.get_by_role("heading", name="Log in", level=1)).to_be_visible()
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(nav(page).get_by_role("button", name="Log out")).to_be_visible()


def log_in_as(page: Page, role: Role) -> None:
    log_in(page, DEMO_EMAILS[role], DEMO_PASSWORDS[role])


def log_out(page: Page) -> None:
    nav(page).get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/login$"))
    expect(page.get_by_role("status")).to_contain_text("You have been logged out.")
    expect(nav(page).get_by_role("link", name="Log in")).to_be_visible()
    expect(nav(page).get_by_role("button", name="Log out")).to_have_count(0)


def expect_catalogue(page: Page) -> None:
    expect(page.get_by_role("heading", name="Cloud servers, ready in minutes", level=1)).to_be_visible()
    expect(page.get_by_role("heading", name="Cloud Servers", level=2)).to_be_visible()
    expect(page.get_by_role("heading", name="Droplets", level=2)).to_be_visible()
    cards = page.locator(".plan-card")
    expect(cards).to_have_count(len(DEMO_PLANS))
    assert [cards.nth(i).get_attribute("data-plan") for i in range(len(DEMO_PLANS))] == DEMO_PLANS
    trial = page.locator('.plan-card[data-plan="trial"]')
    expect(trial.locator(".badge-free")).to_have_text("Free")
    expect(trial.locator(".price-amount")).to_have_text("€0.00")
    standard = page.locator('.plan-card[data-plan="standard-monthly"]')
    expect(standard.get_by_role("heading", name="Standard", exact=True)).to_be_visible()
    expect(standard.locator(".badge-paid")).to_have_text("Paid")
    expect(standard.locator(".price-amount")).to_have_text("€9.90")
    expect(standard.locator(".price-interval")).to_have_text("per month")
    for amount in page.locator(".price-amount").all_inner_texts():
        assert re.fullmatch(r"€\d+\.\d\d", amount), amount
    expect(page.get_by_text("Performance (coming soon)")).to_have_count(0)  # a draft
    expect(page.locator('.plan-card[data-plan="legacy"]')).to_have_count(0)  # deprecated


# --- journeys ------------------------------------------------------------------------------------------

def test_new_customer_registers_browses_and_logs_in_again(page: Page, watch: BrowserWatch,
                                                          live_server: LiveServer) -> None:
    email = f"journey-{uuid.uuid4().hex[:12]}@example.com"
    password = "a long journey password"

    page.goto("/")
    expect_catalogue(page)
    expect(page.locator('.plan-card[data-plan="trial"]').get_by_role("link", name="Sign up to order")).to_be_visible()
    nav(page).get_by_role("link", name="Sign up").click()

    expect(page.get_by_role("heading", name="Create an account", level=1)).to_be_visible()
    page.get_by_label("Your name").fill("Jordan Journey")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_label("Repeat the password").fill(password)
    page.get_by_role("button", name="Create account").click()

    # Not logged in yet: the address is confirmed first, through the link emailed to it.
    expect(page.get_by_role("heading", name="Check your inbox", level=1)).to_be_visible()
    expect(page.get_by_text(email)).to_be_visible()
    expect(nav(page).get_by_role("link", name="Log in")).to_be_visible()
    page.goto(emailed_link(live_server, email))
    expect(page.get_by_role("heading", name="Confirm your email address", level=1)).to_be_visible()
    page.get_by_role("button", name="Confirm and log in").click()

    # Lands logged in, on the catalogue.
    expect(page).to_have_url(re.compile(r"/$"))
    expect(nav(page).get_by_role("button", name="Log out")).to_be_visible()
    expect(nav(page)).to_contain_text("Jordan Journey")
    expect(nav(page)).to_contain_text("Customer")
    expect_catalogue(page)
    expect(page.get_by_role("link", name="Sign up to order")).to_have_count(0)
    expect(nav(page).get_by_role("link", name="Admin")).to_have_count(0)

    log_out(page)

    log_in(page, email, password)
    expect(page).to_have_url(re.compile(r"/$"))
    expect(nav(page)).to_contain_text("Jordan Journey")
    expect_catalogue(page)
    nav(page).get_by_role("link", name="Plans").click()
    expect(nav(page).get_by_role("link", name="Plans")).to_have_attribute("aria-current", "page")
    expect_catalogue(page)

    log_out(page)
    page.goto("/")
    expect(nav(page).get_by_role("link", name="Sign up")).to_be_visible()
    assert watch.problems() == []


def test_new_customer_is_welcomed(page: Page, live_server: LiveServer) -> None:
    email = f"welcome-{uuid.uuid4().hex[:12]}@example.com"
    page.goto("/register")
    page.get_by_label("Your name").fill("Wendy Welcome")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password", exact=True).fill("a long welcome password")
    page.get_by_label("Repeat the password").fill("a long welcome password")
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_role("heading", name="Check your inbox", level=1)).to_be_visible()
    page.goto(emailed_link(live_server, email))
    page.get_by_role("button", name="Confirm and log in").click()
    expect(nav(page).get_by_role("button", name="Log out")).to_be_visible()
    expect(page.get_by_role("status")).to_contain_text("Your address is confirmed. Welcome!", timeout=2000)


def test_a_forgotten_password_is_set_again_through_the_emailed_link(page: Page, live_server: LiveServer) -> None:
    from sqlalchemy import select

    from app.extensions import db
    from app.models import Tenant
    from app.services.accounts import register_customer

    email, new_password = f"forgetful-{uuid.uuid4().hex[:12]}@example.com", "a remembered passphrase"
    with live_server.app.app_context():
        tenant = db.session.scalar(select(Tenant).where(Tenant.slug == "default"))
        user = register_customer(tenant=tenant, name="Fran Forgetful", email=email, password="a forgotten password")
        confirmed(user)
        db.session.remove()

    page.goto("/login")
    page.get_by_role("link", name="Forgot your password?").click()
    page.get_by_label("Email").fill(email)
    page.get_by_role("button", name="Email me a link").click()
    expect(page.get_by_role("heading", name="Check your inbox", level=1)).to_be_visible()
    page.goto(emailed_link(live_server, email))
    expect(page.get_by_text(email)).to_be_visible()
    page.get_by_label("New password", exact=True).fill(new_password)
    page.get_by_label("Repeat the new password").fill(new_password)
    page.get_by_role("button", name="Set password and log in").click()
    expect(nav(page)).to_contain_text("Fran Forgetful")
    expect(page.get_by_role("status")).to_contain_text("Your new password is set.", timeout=2000)
    log_out(page)
    log_in(page, email, new_password)


def test_wrong_password_is_refused(page: Page) -> None:
    page.goto("/login")
    page.get_by_label("Email").fill(DEMO_EMAILS[Role.CUSTOMER])
    page.get_by_label("Password").fill("not the password at all")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_contain_text("Email or password is not right.")
    expect(nav(page).get_by_role("link", name="Log in")).to_be_visible()


# --- roles ---------------------------------------------------------------------------------------------

def test_tenant_admin_sees_the_admin_area(page: Page, watch: BrowserWatch) -> None:
    log_in_as(page, Role.TENANT_ADMIN)
    expect(page).to_have_url(re.compile(r"/admin/$"))
    expect(page.get_by_role("heading", name="Catalogue", level=1)).to_be_visible()
    expect(nav(page).get_by_role("link", name="Admin")).to_have_attribute("aria-current", "page")
    expect(nav(page)).to_contain_text("Alex Admin")
    expect(nav(page)).to_contain_text("Tenant admin")
    # The admin sees every state, drafts and deprecated plans included.
    expect(page.get_by_role("cell", name="Performance (coming soon)")).to_be_visible()
    expect(page.get_by_role("cell", name="Legacy", exact=True)).to_be_visible()
    expect(page.get_by_role("heading", name="Service types")).to_be_visible()
    log_out(page)
    assert watch.problems() == []


@pytest.fixture(scope="module")
def support_search_customers(live_server: LiveServer) -> list[str]:
    """A few customers with telling names on the demo tenant, added once."""
    from sqlalchemy import select

    from app.extensions import db
    from app.models import Tenant, User
    from app.services.accounts import register_customer

    with live_server.app.app_context():
        tenant = db.session.scalar(select(Tenant).where(Tenant.slug == "default"))
        assert tenant is not None
        for name, local in SUPPORT_SEARCH_CUSTOMERS:
            email = f"{local}@example.com"
            if db.session.scalar(select(User).where(User.tenant_id == tenant.id, User.email == email)) is None:
                confirmed(register_customer(tenant=tenant, name=name, email=email, password="a customer's password"))
        db.session.remove()
    return [name for name, _ in SUPPORT_SEARCH_CUSTOMERS]


def test_support_finds_customers_with_live_search(page: Page, watch: BrowserWatch,
                                                  support_search_customers: list[str]) -> None:
    log_in_as(page, Role.SUPPORT)
    expect(page).to_have_url(re.compile(r"/support/$"))
    expect(page.get_by_role("heading", name="Customers", level=1)).to_be_visible()
    expect(nav(page).get_by_role("link", name="Support")).to_have_attribute("aria-current", "page")
    names = page.locator("#results tbody tr td:first-child")
    for name in [*support_search_customers, "Casey Customer"]:
        expect(names.filter(has_text=name)).to_have_count(1)

    page.evaluate("() => { window.__sameDocument = true; }")  # gone if the page reloads
    search = page.get_by_role("searchbox", name="Search customers")
    search.press_sequentially("qu", delay=50)
    expect(names).to_have_text(["Quentin Quarry", "Quincy Quartz"])
    search.press_sequentially("in", delay=50)
    expect(names).to_have_text(["Quincy Quartz"])
    expect(page).to_have_url(re.compile(r"/support/\?q=quin$"))  # hx-push-url
    search.press_sequentially("xyz", delay=50)
    expect(page.locator("#results")).to_contain_text("No customer matches “quinxyz”.")
    search.fill("")
    for name in support_search_customers:
        expect(names.filter(has_text=name)).to_have_count(1)

    assert page.evaluate("() => window.__sameDocument") is True, "the search reloaded the page, not htmx"
    expect(page.get_by_role("heading", name="Customers", level=1)).to_have_count(1)  # swapped, not nested
    log_out(page)
    assert watch.problems() == []


def test_customer_is_refused_the_admin_area(page: Page) -> None:
    log_in_as(page, Role.CUSTOMER)
    expect(page).to_have_url(re.compile(r"/$"))
    expect(nav(page).get_by_role("link", name="Admin")).to_have_count(0)
    response = page.goto("/admin/")
    assert response is not None and response.status == 403
    expect(page.get_by_role("heading", name="Not allowed", level=1)).to_be_visible()
    expect(page.get_by_text("Your account does not have access to this page.")).to_be_visible()
    expect(page.locator(".error-code")).to_have_text("403")
    expect(page.get_by_role("heading", name="Catalogue")).to_have_count(0)
    page.get_by_role("link", name="Back to the start page").click()
    expect_catalogue(page)


def test_anonymous_visitor_is_sent_to_log_in(page: Page) -> None:
    page.goto("/support/")
    expect(page).to_have_url(re.compile(r"/login\?next=/support/$"))
    expect(page.get_by_role("heading", name="Log in", level=1)).to_be_visible()


# --- every page: CSP, console, htmx --------------------------------------------------------------------

def check_clean(page: Page, watch: BrowserWatch, path: str, status: int = 200,
                before: Callable[[Page], None] | None = None) -> list[str]:
    """Open `path` (after `before`), and list what is wrong with the page: CSP, console, htmx."""
    if before:
        before(page)
    watch.clear()
    response = page.goto(path)
    page.wait_for_load_state("load")
    problems = []
    if response is None or response.status != status:
        problems.append(f"{path}: status {response.status if response else None}, expected {status}")
    if page.evaluate("() => typeof window.htmx") != "object":
        problems.append(f"{path}: htmx did not load")
    elif not str(page.evaluate("() => window.htmx.version")).startswith("2."):
        problems.append(f"{path}: unexpected htmx version")
    problems += [f"{path}: {p}" for p in watch.problems(expected_statuses=(status,) if status >= 400 else ())]
    return problems


def test_every_page_is_clean_under_the_csp(page: Page, watch: BrowserWatch,
                                           support_search_customers: list[str]) -> None:
    problems: list[str] = []
    problems += check_clean(page, watch, "/")
    problems += check_clean(page, watch, "/login")
    problems += check_clean(page, watch, "/register")
    problems += check_clean(page, watch, "/forgot-password")
    problems += check_clean(page, watch, "/forgot-password/sent")
    problems += check_clean(page, watch, "/register/check-your-inbox")
    problems += check_clean(page, watch, "/reset-password/not-a-link", status=404)
    problems += check_clean(page, watch, "/no-such-page", status=404)
    expect(page.get_by_role("heading", name="Not found", level=1)).to_be_visible()

    problems += check_clean(page, watch, "/admin/", before=lambda p: log_in_as(p, Role.TENANT_ADMIN))
    expect(page.get_by_role("heading", name="Catalogue", level=1)).to_be_visible()
    problems += check_clean(page, watch, "/", before=log_out)

    problems += check_clean(page, watch, "/support/", before=lambda p: log_in_as(p, Role.SUPPORT))
    expect(page.get_by_role("heading", name="Customers", level=1)).to_be_visible()
    page.get_by_role("searchbox", name="Search customers").press_sequentially("zel", delay=50)
    expect(page.locator("#results tbody tr td:first-child")).to_have_text(["Zelda Zephyr"])  # htmx swap
    problems += [f"/support/ live search: {p}" for p in watch.problems()]
    log_out(page)

    problems += check_clean(page, watch, "/", before=lambda p: log_in_as(p, Role.CUSTOMER))
    expect(nav(page)).to_contain_text("Casey Customer")
    problems += check_clean(page, watch, "/admin/", status=403)
    expect(page.get_by_role("heading", name="Not allowed", level=1)).to_be_visible()
    problems += check_clean(page, watch, "/account/security")
    problems += check_clean(page, watch, "/account/delete")
    log_out(page)
    assert problems == []


def test_csp_violations_are_caught(page: Page, watch: BrowserWatch,
                                   csp_violations: Callable[[], list[str]]) -> None:
    """The collector itself works: an inline script and an inline style are blocked and reported."""
    page.goto("/")
    assert csp_violations() == []
    page.evaluate("""() => {
        const script = document.createElement("script");
        script.textContent = "window.__inlineRan = true;";
        document.body.append(script);
        document.body.setAttribute("style", "outline: 1px solid red");
    }""")
    assert page.evaluate("() => window.__inlineRan") is None  # blocked by script-src 'self'
    directives = {v["directive"] for v in watch.in_page_csp(page)}
    assert directives == {"script-src-elem", "style-src-attr"}
    page.goto("/login")  # reports survive navigation
    assert len(watch.reported_csp) == 2
    assert len(watch.console_csp) == 2
    assert len(csp_violations()) == 4
    watch.clear()


# --- styling -------------------------------------------------------------------------------------------

def test_catalogue_is_styled(page: Page, tmp_path: Path) -> None:
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto("/")
    page.wait_for_load_state("load")
    card = page.locator(".plan-card").first
    expect(card).to_be_visible()
    # Unstyled, a card is a transparent block without corners and the body keeps its 8px margin.
    style = card.evaluate("""(el) => {
        const s = getComputedStyle(el);
        return {background: s.backgroundColor, radius: s.borderTopLeftRadius, display: s.display};
    }""")
    assert style["background"] not in {"rgba(0, 0, 0, 0)", "transparent"}, style
    assert style["radius"] not in {"", "0px"}, style
    assert style["display"] != "block", style
    body = page.evaluate("() => { const s = getComputedStyle(document.body); return [s.margin, s.backgroundColor]; }")
    assert body[0] == "0px" and body[1] != "rgba(0, 0, 0, 0)", body

    directory = Path(os.environ.get("SCREENSHOT_DIR") or tmp_path)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "catalogue.png"
    page.screenshot(path=path, full_page=True)
    assert path.stat().st_size > 10_000
