from __future__ import annotations

from app.extensions import db
from app.models import CustomerProfile
from tests import factories
from tests.querycount import count_queries


def test_scratch(app, client, tenant, customer, auth):
    db.session.add(CustomerProfile(user_id=customer.id, full_name="C", billing_email="c@example.com",
                                   address="A 1", city="Berlin", country="DE"))
    db.session.commit()
    plan = factories.plan(tenant, allow_customer_location_selection=True, quantity_allowed=True)
    auth.login(customer.email)
    r = client.get(f"/order/{plan.id}?serverType=cx32&location=hel1&quantity=2")
    print(r.status_code, r.get_data(as_text=True))
    for path in [f"/order/{plan.id}/preview?quantity=2", f"/order/{plan.id + 999}/preview?quantity=2", "/account/profile", f"/order/{plan.id}/preview?quantity=abc"]:
        client.get(path, headers={"HX-Request": "true"})
        with count_queries(app) as log:
            r = client.get(path, headers={"HX-Request": "true"})
        print(path, r.status_code, log.count)
        for s in log.statements:
            print("   ", s.replace("\n", " ")[:200])
        print(r.get_data(as_text=True))
    r = client.get(f"/order/{plan.id}/availability?serverType=cx32&location=hel1", headers={"HX-Request": "true"})
    print(r.get_data(as_text=True))
    assert 0
