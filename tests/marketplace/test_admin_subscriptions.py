"""The tenant admin's marketplace subscriptions (list, filters, pages, detail) and the operations log."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from app.clock import now
from app.domain.marketplaces import ExternalState, Marketplace
from app.extensions import db
from tests import factories
from tests.marketplace.admin_helpers import external, operation
from tests.querycount import count_queries

LIST = "/admin/marketplaces/subscriptions"
LOG = "/admin/marketplaces/operations"


def shown_ids(page: str) -> list[str]:
    return re.findall(r"<code>(ext-\d+|sub-[a-z0-9-]+)</code></a>", page)


@pytest.fixture
def as_admin(client, auth, admin, clock):  # type: ignore[no-untyped-def]
    auth.login(admin.email)
    return admin


def test_the_list_shows_each_purchase_with_its_state_and_the_subscription_it_runs_on(client, tenant, customer,
                                                                                   other_tenant, as_admin):
    plan = factories.plan(tenant, name="Cloud S")
    running = factories.subscription(tenant, customer, plan, marketplace=Marketplace.MICROSOFT)
    claimed = external(tenant, subscription=running, external_id="ext-0001", offer_id="portal-saas",
                       external_plan_id="basic")
    external(tenant, Marketplace.STACKIT, state=ExternalState.PENDING, external_id="ext-0002",
             purchaser_email="newbie@example.com")
    replacement = external(tenant, Marketplace.STACKIT, external_id="ext-0004", subscription=running)
    external(tenant, Marketplace.STACKIT, external_id="ext-0003", retired_at=now(), replaced_by_id=replacement.id,
             state=ExternalState.CANCELLED)
    external(other_tenant, external_id="ext-9999")
    page = client.get(LIST).get_data(as_text=True)
    assert shown_ids(page) == ["ext-0003", "ext-0004", "ext-0002", "ext-0001"]  # newest first; theirs not
    assert f'href="/admin/subscriptions/{running.id}">#{running.id}</a>' in page and "Casey Customer" in page
    assert "Subscribed" in page and "Not set up yet" in page and "Bought by newbie@example.com" in page
    assert "replaced by <code>ext-0004</code>" in page
    assert f'href="{LIST}/{claimed.id}"' in page


def test_the_list_filters_by_marketplace_and_state_and_pages(client, tenant, as_admin):
    for n in range(27):
        external(tenant, Marketplace.STACKIT if n % 3 else Marketplace.MICROSOFT, external_id=f"ext-{n:04d}",
                 state=ExternalState.SUSPENDED if n == 4 else ExternalState.ACTIVE)
    first = client.get(LIST).get_data(as_text=True)
    assert len(shown_ids(first)) == 25 and "page=2" in first
    second = client.get(f"{LIST}?page=2").get_data(as_text=True)
    assert shown_ids(second) == ["ext-0001", "ext-0000"]
    microsoft = client.get(f"{LIST}?marketplace=microsoft").get_data(as_text=True)
    assert shown_ids(microsoft) == [f"ext-{n:04d}" for n in (24, 21, 18, 15, 12, 9, 6, 3, 0)]
    suspended = client.get(f"{LIST}?marketplace=stackit&state=suspended").get_data(as_text=True)
    assert shown_ids(suspended) == ["ext-0004"]
    assert "No marketplace subscription matches these filters." in client.get(
        f"{LIST}?marketplace=microsoft&state=suspended").get_data(as_text=True)
    assert len(shown_ids(client.get(f"{LIST}?marketplace=ebay&state=x&page=-3").get_data(as_text=True))) == 25
    fragment = client.get(f"{LIST}?state=suspended", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert fragment.startswith('\n<div id="results"') or fragment.lstrip().startswith('<div id="results"')


def test_the_list_reads_a_fixed_number_of_statements(app, client, tenant, customer, as_admin):
    plan = factories.plan(tenant)
    for _ in range(3):
        external(tenant, subscription=factories.subscription(tenant, customer, plan, marketplace=Marketplace.STACKIT))
    client.get(LIST)
    with count_queries(app) as few:
        client.get(LIST)
    for _ in range(20):
        external(tenant, subscription=factories.subscription(tenant, customer, plan, marketplace=Marketplace.STACKIT))
    with count_queries(app) as many:
        client.get(LIST)
    assert few.count == many.count <= 3, many.statements  # the session's user, the warning, the page


def test_the_detail_shows_the_purchase_its_subscription_and_its_operations(client, tenant, customer, other_tenant,
                                                                          as_admin):
    plan = factories.plan(tenant, name="Cloud S")
    running = factories.subscription(tenant, customer, plan, marketplace=Marketplace.MICROSOFT)
    ext = external(tenant, subscription=running, external_id="ext-0100", offer_id="portal-saas",
                   external_plan_id="basic", quantity=3, activated_at=now() - timedelta(days=2),
                   pending_change={"operation_id": "op-1", "plan_id": plan.id, "asked_at": "2026-03-15T09:00:00Z"})
    operation(tenant, external_id="ext-0100", action="ChangePlan", outcome="accepted", http_status=200,
              duration_ms=180)
    operation(tenant, external_id="ext-0100", action="Suspend", ok=False, outcome="refused: bad token",
              http_status=401)
    operation(tenant, external_id="ext-other", action="Renew", outcome="elsewhere")
    page = client.get(f"{LIST}/{ext.id}").get_data(as_text=True)
    assert "<code>portal-saas</code>" in page and "<code>basic</code> \u00d7 3" in page
    assert f"Subscription #{running.id}</a> to Cloud S" in page and "Billed by the Microsoft commercial marketplace" in page
    assert "waits for its confirmation" in page
    assert "accepted" in page and "refused: bad token" in page and "180 ms" in page and "elsewhere" not in page
    theirs = external(other_tenant)
    assert client.get(f"{LIST}/{theirs.id}").status_code == 404
    assert client.get(f"{LIST}/999999").status_code == 404


def test_a_retired_purchase_names_its_replacement_and_the_replacement_what_it_replaced(client, tenant, customer,
                                                                                      as_admin):
    running = factories.subscription(tenant, customer, factories.plan(tenant), marketplace=Marketplace.STACKIT)
    new = external(tenant, Marketplace.STACKIT, subscription=running, external_id="sub-new")
    old = external(tenant, Marketplace.STACKIT, subscription=running, external_id="sub-old", retired_at=now(),
                   replaced_by_id=new.id)
    page = client.get(f"{LIST}/{old.id}").get_data(as_text=True)
    assert "Retired on" in page and f'href="{LIST}/{new.id}"><code>sub-new</code>' in page
    page = client.get(f"{LIST}/{new.id}").get_data(as_text=True)
    assert f'Replaces <a href="{LIST}/{old.id}"><code>sub-old</code></a>' in page


def test_the_operations_log_is_newest_first_filtered_and_paged(client, tenant, other_tenant, as_admin):
    for n in range(30):
        operation(tenant, Marketplace.STACKIT if n % 2 else Marketplace.MICROSOFT, ok=n % 5 != 0,
                  outcome=f"outcome-{n:02d}", source="poll" if n % 2 else "webhook", http_status=200 if n % 5 else 503)
    operation(other_tenant, outcome="outcome-theirs")

    def outcomes(query: str = "") -> list[str]:
        return re.findall(r"outcome-\w+", client.get(f"{LOG}{query}").get_data(as_text=True))

    assert outcomes() == [f"outcome-{n:02d}" for n in range(29, 4, -1)]
    assert outcomes("?page=2") == ["outcome-04", "outcome-03", "outcome-02", "outcome-01", "outcome-00"]
    assert outcomes("?outcome=failed") == [f"outcome-{n:02d}" for n in (25, 20, 15, 10, 5, 0)]
    assert outcomes("?marketplace=stackit&outcome=failed") == ["outcome-25", "outcome-15", "outcome-05"]
    assert outcomes("?marketplace=stackit&outcome=ok")[:2] == ["outcome-29", "outcome-27"]
    page = client.get(f"{LOG}?outcome=failed").get_data(as_text=True)
    assert "503" in page and "Failed" in page and "42 ms" in page
    assert "Nothing logged yet" not in page
    assert "No operation matches these filters." in client.get(
        f"{LOG}?marketplace=microsoft&outcome=failed&page=9").get_data(as_text=True)


def test_customers_and_support_see_none_of_it(client, auth, tenant, customer, support):
    for user in (customer, support):
        auth.login(user.email)
        for path in (LIST, LOG, "/admin/marketplaces/mappings", "/admin/marketplaces"):
            assert client.get(path).status_code == 403
        auth.logout()
    db.session.rollback()
