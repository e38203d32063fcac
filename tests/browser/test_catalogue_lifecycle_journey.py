"""The catalogue's lifecycle in a real browser, from the admin's pages to the customer's: a product's next version
made, edited, published and put in place of the old one, whose customer then migrates (preview, proration, the
resize note, confirmation); and a plan retired, its subscriptions canceled and their servers shut down at the
fake cloud.

Each test makes its own product (on the demo's Hetzner service type) and its customer orders it in the browser,
so the demo catalogue the other browser tests rely on is left as it was; the products are retired at the end.
"""

from __future__ import annotations

import contextlib
import re
import time
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import Locator, Page, expect

from app.domain.accounts import Role
from app.services.demo import DEMO_PASSWORDS
from tests.browser.test_foundation import DEMO_EMAILS, log_in, log_out
from tests.browser.test_journey import PROVISIONING_TIMEOUT, order_form, summary_badge

if TYPE_CHECKING:
    from tests.browser.conftest import BrowserWatch, LiveServer

SHUTDOWN_SECONDS = 30  # the worker shuts the server down gracefully (about 3 s at the fake cloud) after the cancel


@pytest.fixture
def made_products(live_server: LiveServer) -> Iterator[list[str]]:
    """The slugs of the products a test makes; every version of them is retired afterwards (its subscriptions
    canceled by the live worker), so the public catalogue is the demo's again."""
    slugs: list[str] = []
    yield slugs
    from sqlalchemy import select

    from app.domain.catalogue import CatalogueState
    from app.extensions import db
    from app.models import Product
    from app.services import catalogue_lifecycle
    from app.services.actors import Actor
    from app.services.errors import ServiceError

    with live_server.app.app_context():
        tenant, admin = _tenant_and_admin()
        products = db.session.scalars(select(Product).where(
            Product.tenant_id == tenant.id, Product.slug.in_(slugs),
            Product.state.in_([CatalogueState.PUBLISHED, CatalogueState.DEPRECATED]))).all()
        for product_id in [product.id for product in products]:
            with contextlib.suppress(ServiceError):  # a product none of whose plans is published or deprecated
                catalogue_lifecycle.start_retire(tenant=tenant, actor=Actor(admin), plan_ids=[],
                                                 product_id=product_id)
        db.session.remove()


def _tenant_and_admin():  # type: ignore[no-untyped-def]
    from sqlalchemy import select

    from app.extensions import db
    from app.models import Tenant, User

    tenant = db.session.scalar(select(Tenant).where(Tenant.slug == "default"))
    admin = db.session.scalar(select(User).where(User.tenant_id == tenant.id,
                                                 User.email == DEMO_EMAILS[Role.TENANT_ADMIN]))
    assert tenant is not None and admin is not None
    return tenant, admin


def make_product(live_server: LiveServer, slugs: list[str], plan_name: str, price_minor: int) -> str:
    """A published product with one published plan `plan_name` offering cx22 in Nuremberg only, as an admin's
    editing would leave it. Returns the product's name."""
    from sqlalchemy import select

    from app.domain.catalogue import CatalogueState, Interval
    from app.extensions import db
    from app.models import Plan, PlanLocation, PlanPrice, Product, ServiceType

    token = uuid.uuid4().hex[:8]
    name = f"Lifecycle servers {token}"
    with live_server.app.app_context():
        tenant, _ = _tenant_and_admin()
        service_type = db.session.scalar(select(ServiceType).where(ServiceType.tenant_id == tenant.id,
                                                                   ServiceType.slug == "hetzner-server"))
        assert service_type is not None
        product = Product(tenant_id=tenant.id, slug=f"lifecycle-{token}", name=name, state=CatalogueState.PUBLISHED)
        db.session.add(product)
        db.session.flush()
        db.session.add(Plan(
            tenant_id=tenant.id, product_id=product.id, service_type_id=service_type.id, slug=f"plan-{token}",
            name=plan_name, price_minor=price_minor, currency="EUR", interval=Interval.MONTH,
            config_defaults={"serverType": "cx22", "location": "nbg1", "image": "ubuntu-24.04"},
            images=["ubuntu-24.04"], state=CatalogueState.PUBLISHED, sort_order=50,
            prices=[PlanPrice(server_type="cx22", price_minor=price_minor, is_default=True)],
            locations=[PlanLocation(location="nbg1", is_default=True)]))
        db.session.commit()
        slugs.append(product.slug)
        db.session.remove()
    return name


def order_and_wait(page: Page, plan_name: str) -> str:
    """Order `plan_name` from the catalogue (the customer has a card, a profile and a key); wait until its server
    runs. Returns the subscription page's path."""
    page.goto("/")
    page.locator(".plan-card", has_text=plan_name).get_by_role("link", name=f"Order {plan_name}").click()
    expect(order_form(page)).to_be_visible()
    page.wait_for_load_state("networkidle")  # the availability panel is swapped in before the form is used
    order_form(page).get_by_label("Server name").fill(f"life-{uuid.uuid4().hex[:8]}")
    order_form(page).get_by_role("button", name="Place order").click()
    expect(page).to_have_url(re.compile(r"/subscriptions/\d+$"))
    expect(summary_badge(page)).to_have_text("Active", timeout=PROVISIONING_TIMEOUT)
    expect(page.locator(".server-live .power")).to_have_attribute("data-power", "running", timeout=10_000)
    return re.sub(r"^https?://[^/]+", "", page.url)


def product_heading(page: Page, name: str, version: int) -> Locator:
    return page.locator("h3.table-title").filter(has_text=name).filter(has_text=f"v{version}")


def product_table(page: Page, name: str, version: int) -> Locator:
    return product_heading(page, name, version).locator("xpath=following-sibling::div[1]")


def confirm(page: Page, action: str) -> None:
    page.get_by_role("button", name=f"Confirm: {action}").click()


def subscription_row(live_server: LiveServer, path: str):  # type: ignore[no-untyped-def]
    """The subscription at `path` as the live server has it now: its plan and status, and its server."""
    from app.extensions import db
    from app.models import Subscription

    with live_server.app.app_context():
        subscription = db.session.get(Subscription, int(path.rsplit("/", 1)[1]))
        assert subscription is not None
        item = subscription.items[0]
        found = (subscription.plan.name, subscription.plan.product.version, subscription.status.value,
                 subscription.price_minor, item.server_id, dict(item.config))
        db.session.remove()
    return found


def test_an_admin_supersedes_a_product_with_its_next_version_and_the_customer_migrates(
        page: Page, watch: BrowserWatch, live_server: LiveServer, ready_customer: tuple[str, str],
        made_products: list[str]) -> None:
    old_name, new_name = "Compact", f"Compact plus {uuid.uuid4().hex[:4]}"
    product = make_product(live_server, made_products, old_name, 500)
    log_in(page, *ready_customer)
    subscription_path = order_and_wait(page, old_name)
    log_out(page)

    # The admin makes version 2, gives its plan a bigger server type at a new price, and publishes it.
    log_in(page, DEMO_EMAILS[Role.TENANT_ADMIN], DEMO_PASSWORDS[Role.TENANT_ADMIN])
    page.goto("/admin")
    product_heading(page, product, 1).get_by_role("link", name="Next version").click()
    confirm(page, "make the next version")
    expect(page.get_by_role("status")).to_contain_text(f"Version 2 of {product} was made as a draft")
    product_table(page, product, 2).get_by_role("link", name=old_name, exact=True).click()
    page.get_by_label("Name", exact=True).fill(new_name)
    page.get_by_label("Server types and prices").fill("cx32 900")
    page.get_by_label("Default server type").fill("cx32")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("heading", name=new_name, level=1)).to_be_visible()
    prices = page.locator("section.panel", has=page.get_by_role("heading", name="Prices", level=2))
    expect(prices).to_contain_text("cx32")
    page.goto("/admin")  # publishing the product publishes its draft plans
    product_heading(page, product, 2).get_by_role("link", name=product).click()
    page.get_by_role("button", name="Publish", exact=True).click()
    expect(page.get_by_role("status")).to_contain_text("The product is published, with 1 draft plan")
    page.goto("/admin")
    expect(product_heading(page, product, 2).locator(".badge")).to_have_text("Published")
    expect(product_table(page, product, 2).get_by_role("row", name=new_name)).to_contain_text("Published")

    # Version 1 is superseded: its plan is deprecated with the new plan as its migration target.
    product_heading(page, product, 1).get_by_role("link", name="Supersede").click()
    target = page.get_by_label(f"Target for {old_name}")
    value = target.locator("option", has_text=f"{product} v2: {new_name}").get_attribute("value")
    assert value
    target.select_option(value)
    confirm(page, "supersede")
    expect(page.get_by_role("status")).to_contain_text(f"{product}: supersede done")
    expect(product_heading(page, product, 1).locator(".badge")).to_have_text("Deprecated")
    log_out(page)

    # The customer sees the offer, previews the migration and confirms it.
    log_in(page, *ready_customer)
    page.goto(subscription_path)
    page.get_by_role("link", name="Migrate this subscription").click()
    expect(page.get_by_role("heading", name="Migrate this subscription", level=1)).to_be_visible()
    facts = page.locator("dl.facts")
    expect(facts).to_contain_text("€5.00")  # the price now
    expect(facts).to_contain_text("€9.00")  # the new plan's price for cx32
    expect(facts).to_contain_text("cx32")
    lines = page.locator("table.lines")
    expect(lines).to_contain_text(f"Credit for unused time on {old_name}")
    expect(lines).to_contain_text(f"Rest of the period on {new_name}")
    expect(page.get_by_role("note")).to_contain_text("Your server will be resized to cx32")
    page.get_by_role("button", name="Confirm the change").click()

    expect(page).to_have_url(re.compile(re.escape(subscription_path) + "$"))
    expect(page.get_by_role("status")).to_contain_text(f"Your subscription is now on {new_name}.")
    expect(page.locator("#summary")).to_contain_text(new_name)
    plan, version, status, price, _, config = subscription_row(live_server, subscription_path)
    assert (plan, version, status, price) == (new_name, 2, "active", 900)
    assert config["server_type"] == "cx32"  # the resize is queued for the worker
    assert watch.problems() == []


def test_an_admin_retires_a_plan_and_its_subscriptions_end_with_their_servers_shut_down(
        page: Page, watch: BrowserWatch, live_server: LiveServer, ready_customer: tuple[str, str],
        made_products: list[str]) -> None:
    from app.domain.catalogue import Provider
    from app.providers.base import PowerState
    from app.services.clouds import provider_for

    plan_name = f"Sunset {uuid.uuid4().hex[:4]}"
    make_product(live_server, made_products, plan_name, 700)
    log_in(page, *ready_customer)
    subscription_path = order_and_wait(page, plan_name)
    log_out(page)

    log_in(page, DEMO_EMAILS[Role.TENANT_ADMIN], DEMO_PASSWORDS[Role.TENANT_ADMIN])
    page.goto("/admin")
    page.locator("tr", has=page.get_by_role("link", name=plan_name, exact=True)).get_by_role(
        "link", name="Retire").click()
    expect(page.get_by_role("heading", name=f"Retire: {plan_name}", level=1)).to_be_visible()
    expect(page.locator("#preview-title + ul")).to_contain_text("1 subscription canceled now.")
    confirm(page, "retire")
    expect(page.get_by_role("status")).to_contain_text("started for 1 subscriptions")
    progress = page.locator("#operation-progress")
    expect(progress.locator(".badge")).to_have_text("Finished", timeout=20_000)  # the page polls while it runs
    expect(progress).to_contain_text("1 of 1 subscriptions done (100%)")
    expect(progress).to_contain_text("1 canceled")
    log_out(page)

    log_in(page, *ready_customer)
    page.goto(subscription_path)
    expect(summary_badge(page)).to_have_text("Canceled")
    _, _, status, _, server_id, _ = subscription_row(live_server, subscription_path)
    assert status == "canceled" and server_id
    # At the fake cloud, through the portal's own adapter: the server is shut down and kept (not deleted) for the
    # retention period. The worker shuts it down gracefully a moment after the cancel; poll the cloud for it.
    with live_server.app.app_context():
        tenant, _ = _tenant_and_admin()
        cloud = provider_for(tenant, Provider.HETZNER)
        deadline = time.monotonic() + SHUTDOWN_SECONDS
        while (power := cloud.server_info(server_id).power) is not PowerState.OFF and time.monotonic() < deadline:
            page.wait_for_timeout(500)
    assert power is PowerState.OFF
    assert watch.problems() == []
