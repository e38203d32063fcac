"""Servers needing attention: what the admin sees of each failed server, read in one statement."""

from __future__ import annotations

from datetime import timedelta

from app.clock import now
from app.domain.catalogue import Interval
from app.domain.subscriptions import ItemStatus, SubscriptionStatus
from app.extensions import db
from app.models import Subscription, SubscriptionItem
from tests import factories
from tests.querycount import count_queries


def failed_server(tenant, customer, plan, n: int, config: dict[str, str]) -> SubscriptionItem:
    subscription = Subscription(tenant_id=tenant.id, user_id=customer.id, plan_id=plan.id,
                                status=SubscriptionStatus.ACTIVE, quantity=1, price_minor=990, currency="EUR",
                                interval=Interval.MONTH, current_period_end=now() + timedelta(days=30))
    db.session.add(subscription)
    db.session.flush()
    item = SubscriptionItem(tenant_id=tenant.id, subscription_id=subscription.id, status=ItemStatus.FAILED,
                            provider="hetzner", config=config, hostname=f"web-{n}", server_id=f"77{n}",
                            error_message=f"Server {n} was deleted outside the portal.")
    db.session.add(item)
    db.session.commit()
    return item


def test_the_admin_sees_each_failed_server_with_its_customer_plan_and_place(app, client, auth, tenant, admin,
                                                                             customer, other_tenant):
    plan = factories.plan(tenant, name="Cloud M")
    failed_server(tenant, customer, plan, 1, {"serverType": "cx32", "location": "fsn1"})
    failed_server(tenant, customer, plan, 2, {"serverType": "s-1vcpu-1gb", "region": "fra1"})
    outsider = factories.user(other_tenant)
    failed_server(other_tenant, outsider, factories.plan(other_tenant), 3, {"serverType": "cx22"})
    auth.login(admin.email)
    client.get("/admin/servers")
    with count_queries(app) as log:
        page = client.get("/admin/servers").get_data(as_text=True)
    assert log.count == 2, log.statements  # the session's user; the list with customer and plan
    assert page.count("Casey Customer") == 2 and customer.email in page and "Cloud M" in page
    assert "web-1" in page and "id 771" in page and "cx32" in page and "Falkenstein" in page
    assert "web-2" in page and "s-1vcpu-1gb" in page and "Server 2 was deleted outside the portal." in page
    assert "web-3" not in page and "Active" in page


def test_nothing_to_do_says_so(client, auth, admin):
    auth.login(admin.email)
    assert "Nothing needs attention." in client.get("/admin/servers").get_data(as_text=True)
