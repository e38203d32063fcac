"""The catalogue shows published plans, their prices and features, escaped (RELIABILITY row 12)."""

from __future__ import annotations

import pytest

from app.domain.catalogue import CatalogueState, Interval
from tests import factories


def test_published_plans_show_product_price_interval_and_features(client, tenant):
    product = factories.product(tenant, name="Cloud Servers")
    factories.plan(tenant, product_=product, name="Standard", price_minor=990, interval=Interval.MONTH,
                   features=["Daily backups", "Email support"])
    factories.plan(tenant, product_=product, name="Yearly", price_minor=123456, interval=Interval.YEAR)
    factories.plan(tenant, product_=product, name="Trial", price_minor=0)
    page = client.get("/").get_data(as_text=True)
    assert "Cloud Servers" in page
    assert "€9.90" in page and "per month" in page
    assert "€1,234.56" in page and "per year" in page
    assert "Daily backups" in page and "Email support" in page
    assert page.count("badge-free") == 1 and page.count("badge-paid") == 2


@pytest.mark.parametrize(
    ("plan_state", "product_state"),
    [
        (CatalogueState.DRAFT, CatalogueState.PUBLISHED),
        (CatalogueState.DEPRECATED, CatalogueState.PUBLISHED),
        (CatalogueState.RETIRED, CatalogueState.PUBLISHED),
        (CatalogueState.PUBLISHED, CatalogueState.DRAFT),
        (CatalogueState.PUBLISHED, CatalogueState.RETIRED),
    ],
)
def test_only_published_plans_of_published_products_show(client, tenant, plan_state, product_state):
    product = factories.product(tenant, state=product_state)
    factories.plan(tenant, product_=product, name="Hidden Plan", state=plan_state)
    assert "Hidden Plan" not in client.get("/").get_data(as_text=True)


def test_an_empty_catalogue_says_so(client, tenant):
    assert "No plans yet" in client.get("/").get_data(as_text=True)


def test_hostile_names_are_escaped(client, tenant):
    product = factories.product(tenant, name='<script>alert("p")</script>')
    factories.plan(tenant, product_=product, name='<img src=x onerror=alert(1)>',
                   features=['<b hx-get="/logout" hx-trigger="load">x</b>'])
    page = client.get("/").get_data(as_text=True)
    assert "<script>alert" not in page and "<img src=x" not in page and '<b hx-get="/logout"' not in page
    assert "&lt;script&gt;" in page and "&lt;img src=x" in page and "&lt;b hx-get=" in page


def test_the_catalogue_runs_a_fixed_number_of_queries(client, tenant, app):
    from tests.querycount import count_queries

    factories.plan(tenant)
    client.get("/")
    with count_queries(app) as few:
        client.get("/")
    for _ in range(10):
        factories.plan(tenant)
    with count_queries(app) as many:
        client.get("/")
    assert few.count == many.count <= 2  # the plans with their products in one statement; the session check
