"""The admin's catalogue overview: every plan with its subscriptions, the customers, in three statements."""

from __future__ import annotations

import re

from app.domain.accounts import Role
from tests import factories
from tests.helpers import complete_profile
from tests.querycount import count_queries
from tests.web.test_dashboard import place


def stat(page: str, label: str) -> str:
    found = re.search(rf'<span class="stat-value">(\d+)</span><span class="stat-label">{label}</span>', page)
    assert found, label
    return found.group(1)


def plan_count(page: str, name: str) -> str:
    found = re.search(rf"<td>(?:<a [^>]*>)?{name}(?:</a>)?.*?</tr>", page, re.S)
    assert found, name
    return re.findall(r'<td class="num">(\d+)</td>', found.group(0))[-1]


def test_each_plan_shows_how_many_subscriptions_were_ordered_on_it(app, client, auth, tenant, other_tenant, admin,
                                                                     customer, cloud, clock):
    complete_profile(customer)
    small = factories.plan(tenant, name="Cloud S")
    large = factories.plan(tenant, name="Cloud L")
    factories.plan(tenant, name="Cloud XL")
    for plan in (small, small, large):
        place(tenant, customer, plan)
    factories.user(tenant, email="second@example.com")
    factories.user(tenant, email="staff@example.com", role=Role.SUPPORT)  # staff are not customers
    outsider = factories.user(other_tenant)
    complete_profile(outsider)
    auth.login(admin.email)
    client.get("/admin/")
    with count_queries(app) as log:
        page = client.get("/admin/").get_data(as_text=True)
    assert (plan_count(page, "Cloud S"), plan_count(page, "Cloud L"), plan_count(page, "Cloud XL")) == ("2", "1", "0")
    assert stat(page, "Subscriptions") == "3" and stat(page, "Customers") == "2"
    # The session's user; the service types with the customer count; the products with plans and service types.
    assert log.count == 3, log.statements


def test_an_empty_catalogue_still_counts_the_customers(client, auth, tenant, admin, customer):
    auth.login(admin.email)
    page = client.get("/admin/").get_data(as_text=True)
    assert stat(page, "Customers") == "1" and stat(page, "Subscriptions") == "0" and stat(page, "Products") == "0"
