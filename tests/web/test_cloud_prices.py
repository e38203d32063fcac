"""The plan's "Import cloud prices" page: a preview that changes nothing, apply (with the confirmation a
published plan needs), bad input and cloud errors answered with a message, CSRF, admins only."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from app.clock import now
from app.domain.catalogue import CatalogueState
from app.domain.plan_offers import LocationOffer, TypePrice
from app.extensions import db
from app.models import Plan, PlanPriceChange
from app.providers.base import ErrorKind
from app.sandbox.cloud import sandbox_for
from app.services import catalogue_editing as editing
from app.services.actors import Actor
from tests import factories
from tests.helpers import post_form
from tests.services.test_catalogue_editing import plan_input


@pytest.fixture
def as_admin(auth, admin):  # type: ignore[no-untyped-def]
    auth.login(admin.email)
    return admin


@pytest.fixture
def plan(tenant, admin) -> Plan:  # type: ignore[no-untyped-def]
    values = plan_input(prices=(TypePrice("cx22", 450, None, None, True), TypePrice("cx32", 890)),
                        locations=(LocationOffer("nbg1", 0, True),))
    return editing.create_plan(tenant=tenant, actor=Actor(admin), product_id=factories.product(tenant).id,
                               service_type_id=factories.service_type(tenant).id, values=values)


def prices(plan: Plan) -> list[tuple[str, int, int | None, int | None]]:
    db.session.expire_all()
    return [(p.server_type, p.price_minor, p.cost_minor, p.markup_bp) for p in plan.prices]


def fingerprint(page: str) -> str:
    match = re.search(r'name="fingerprint"[^>]*value="([0-9a-f]+)"|value="([0-9a-f]+)"[^>]*name="fingerprint"', page)
    assert match, "the preview has an apply form"
    return match.group(1) or match.group(2)


def test_the_plan_page_links_to_the_import_and_shows_margins(client, plan, as_admin, clock):
    page = client.get(f"/admin/catalogue/plans/{plan.id}").get_data(as_text=True)
    assert f"/admin/catalogue/plans/{plan.id}/cloud-prices" in page
    page = client.get(f"/admin/catalogue/plans/{plan.id}/cloud-prices").get_data(as_text=True)
    assert 'value="20"' in page and "Preview" in page


def test_preview_then_apply(client, plan, as_admin, clock):
    response = post_form(client, f"/admin/catalogue/plans/{plan.id}/cloud-prices",
                         {"markup": "20", "server_types": ["cx22", "cx32"]})
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "€5.51" in page and "€9.59" in page and "16.68 %" in page  # new prices, cx32's margin
    assert prices(plan) == [("cx22", 450, None, None), ("cx32", 890, None, None)]  # a preview changes nothing
    response = post_form(client, f"/admin/catalogue/plans/{plan.id}/cloud-prices/apply",
                         {"markup": "20", "server_types": ["cx22", "cx32"], "fingerprint": fingerprint(page)})
    assert response.status_code == 303
    assert prices(plan) == [("cx22", 551, 459, 2000), ("cx32", 959, 799, 2000)]
    page = client.get(f"/admin/catalogue/plans/{plan.id}").get_data(as_text=True)
    assert "20 %" in page and "16.68 %" in page and "Prices imported" in page
    page = client.get(f"/admin/catalogue/plans/{plan.id}/cloud-prices").get_data(as_text=True)
    assert 'value="20"' in page  # the last import's markup


def test_a_published_plan_asks_for_the_confirmation(client, plan, as_admin, clock):
    plan.state = CatalogueState.PUBLISHED
    db.session.commit()
    page = post_form(client, f"/admin/catalogue/plans/{plan.id}/cloud-prices",
                     {"markup": "20"}).get_data(as_text=True)
    assert "for existing subscribers from" in page
    data = {"markup": "20", "server_types": ["cx22", "cx32"], "fingerprint": fingerprint(page)}
    response = post_form(client, f"/admin/catalogue/plans/{plan.id}/cloud-prices/apply", data)
    assert response.status_code == 400 and "Please confirm" in response.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(PlanPriceChange)) == 0
    response = post_form(client, f"/admin/catalogue/plans/{plan.id}/cloud-prices/apply",
                         {**data, "confirm_price_change": "y"})
    assert response.status_code == 303
    assert db.session.scalar(select(func.count()).select_from(PlanPriceChange)) == 2


@pytest.mark.parametrize("data, message", [
    ({"markup": "abc"}, "Give the markup in percent"),
    ({"markup": "5000"}, "The markup is 0 to 1000 %"),
    ({"markup": ""}, "This field is required"),
    ({"markup": "10", "server_types": ["cx99"]}, "is not a valid choice"),
])
def test_bad_input_is_a_message_and_changes_nothing(client, plan, as_admin, clock, data, message):
    response = post_form(client, f"/admin/catalogue/plans/{plan.id}/cloud-prices", data)
    assert response.status_code == 400 and message in response.get_data(as_text=True)
    response = post_form(client, f"/admin/catalogue/plans/{plan.id}/cloud-prices/apply",
                         {**data, "fingerprint": "0" * 20})
    assert response.status_code == 400
    assert prices(plan) == [("cx22", 450, None, None), ("cx32", 890, None, None)]


def test_a_stale_preview_is_not_applied(client, tenant, plan, as_admin, clock):
    page = post_form(client, f"/admin/catalogue/plans/{plan.id}/cloud-prices", {"markup": "20"}).get_data(as_text=True)
    sandbox_for(tenant.id, "hetzner", now).set_price("cx22", "nbg1", 499)
    response = post_form(client, f"/admin/catalogue/plans/{plan.id}/cloud-prices/apply",
                         {"markup": "20", "fingerprint": fingerprint(page)})
    page = response.get_data(as_text=True)
    assert response.status_code == 400 and "changed since the preview" in page
    assert "€4.99" in page  # the new preview is shown
    assert prices(plan)[0] == ("cx22", 450, None, None)


def test_a_cloud_error_is_a_message_and_changes_nothing(client, tenant, plan, as_admin, clock):
    sandbox_for(tenant.id, "hetzner", now).fail_next("offers", ErrorKind.TRANSIENT)
    response = post_form(client, f"/admin/catalogue/plans/{plan.id}/cloud-prices", {"markup": "20"})
    assert response.status_code == 503
    assert "could not be read, so nothing changed" in response.get_data(as_text=True)
    assert prices(plan)[0] == ("cx22", 450, None, None)


def test_every_form_needs_its_csrf_token(client, plan, as_admin, clock):
    for path in ("cloud-prices", "cloud-prices/apply"):
        response = client.post(f"/admin/catalogue/plans/{plan.id}/{path}", data={"markup": "20",
                                                                                 "fingerprint": "0" * 20})
        assert response.status_code == 400
    assert prices(plan)[0] == ("cx22", 450, None, None)


def test_non_admins_are_forbidden_and_other_tenants_plans_not_found(client, auth, tenant, other_tenant, plan,
                                                                    customer, support, admin, clock):
    for user in (customer, support):
        auth.login(user.email)
        assert client.get(f"/admin/catalogue/plans/{plan.id}/cloud-prices").status_code in (302, 403)
        assert post_form(client, f"/admin/catalogue/plans/{plan.id}/cloud-prices",
                         {"markup": "20"}).status_code in (302, 403)
        auth.logout()
    auth.login(admin.email)
    foreign = factories.plan(other_tenant, state=CatalogueState.DRAFT)
    assert client.get(f"/admin/catalogue/plans/{foreign.id}/cloud-prices").status_code == 404
    assert post_form(client, f"/admin/catalogue/plans/{foreign.id}/cloud-prices/apply",
                     {"markup": "20", "fingerprint": "0" * 20}).status_code == 404
    assert sandbox_for(tenant.id, "hetzner", now).calls == []
