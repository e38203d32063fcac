"""The admin's catalogue editing pages: they render, bad input gives a message and changes nothing, only the
tenant's admins get in, every form needs its CSRF token."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from app.domain.catalogue import CatalogueState
from app.extensions import db
from app.models import CatalogueChange, CatalogueOperation, Plan, PlanPriceChange, Product, ServiceType
from tests import factories
from tests.helpers import post_form

SCHEMA = json.dumps(factories.HETZNER_SCHEMA)


def plan_form(plan: Plan, **changes: object) -> dict[str, object]:
    """The plan's edit form as the page fills it in, with `changes`."""
    values: dict[str, object] = {
        "slug": plan.slug, "name": plan.name, "description": "", "features": "", "interval": plan.interval.value,
        "prices": "cx22 450 379\ncx32 890", "default_server_type": "cx22", "price_minor": "0",
        "locations": "nbg1\nhel1 100", "default_location": "nbg1", "allow_customer_location_selection": "y",
        "images": "debian-12", "default_image": "debian-12", "max_quantity": "",
        "cancellation_rule": "period_end", "downgrade_rule": "period_end", "free_plan_limit": "1",
        "price_notice_days": "30",
    }
    values.update(changes)
    return {key: value for key, value in values.items() if value is not None}


@pytest.fixture
def as_admin(auth, admin):  # type: ignore[no-untyped-def]
    auth.login(admin.email)
    return admin


def test_the_overview_links_to_each_editing_page(client, tenant, as_admin):
    plan = factories.plan(tenant)
    page = client.get("/admin/").get_data(as_text=True)
    assert f"/admin/catalogue/plans/{plan.id}" in page
    assert f"/admin/catalogue/products/{plan.product_id}" in page
    assert f"/admin/catalogue/service-types/{plan.service_type_id}" in page
    for path in ("/admin/catalogue/service-types/new", "/admin/catalogue/products/new",
                 f"/admin/catalogue/plans/{plan.id}", f"/admin/catalogue/products/{plan.product_id}",
                 f"/admin/catalogue/service-types/{plan.service_type_id}",
                 f"/admin/catalogue/products/{plan.product_id}/plans/new?service_type_id={plan.service_type_id}"):
        assert client.get(path).status_code == 200, path


def test_a_service_type_with_a_broken_schema_is_refused_with_a_message(client, tenant, as_admin):
    response = post_form(client, "/admin/catalogue/service-types/new", {
        "slug": "vps", "name": "VPS", "provider": "hetzner", "config_schema": '{"type": "objekt"}',
        "cloud_init_template": "#cloud-config\n"})
    assert response.status_code == 400
    assert "not a valid JSON Schema" in response.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(ServiceType)) == 0


def test_a_template_that_does_not_render_is_refused(client, tenant, as_admin):
    response = post_form(client, "/admin/catalogue/service-types/new", {
        "slug": "vps", "name": "VPS", "provider": "hetzner", "config_schema": SCHEMA,
        "cloud_init_template": "{{ hostname "})
    assert response.status_code == 400
    assert "template is broken" in response.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(ServiceType)) == 0


def test_a_service_type_is_created_and_audited(client, tenant, as_admin):
    response = post_form(client, "/admin/catalogue/service-types/new", {
        "slug": "vps", "name": "VPS", "provider": "hetzner", "config_schema": SCHEMA,
        "cloud_init_template": "#cloud-config\nhostname: {{ hostname }}\n"})
    assert response.status_code == 303
    row = db.session.scalar(select(ServiceType))
    assert row.config_schema == factories.HETZNER_SCHEMA
    change = db.session.scalar(select(CatalogueChange))
    assert (change.entity, change.action, change.actor_id) == ("service_type", "created", as_admin.id)
    assert change.changes["name"] == [None, "VPS"]


def test_a_new_product_is_a_draft_until_published(client, tenant, as_admin):
    response = post_form(client, "/admin/catalogue/products/new",
                         {"slug": "vps", "name": "VPS", "description": "", "version": "1"})
    assert response.status_code == 303
    product = db.session.scalar(select(Product))
    assert product.state is CatalogueState.DRAFT
    assert "Publish" in client.get(f"/admin/catalogue/products/{product.id}").get_data(as_text=True)
    response = post_form(client, f"/admin/catalogue/products/{product.id}/publish")
    assert response.status_code == 303
    assert "no plan to offer" in client.get(response.location).get_data(as_text=True)
    db.session.expire_all()
    assert product.state is CatalogueState.DRAFT
    plan = factories.plan(tenant, product_=product, state=CatalogueState.DRAFT)
    assert post_form(client, f"/admin/catalogue/products/{product.id}/publish").status_code == 303
    db.session.expire_all()
    assert (product.state, plan.state) == (CatalogueState.PUBLISHED, CatalogueState.PUBLISHED)
    assert db.session.scalar(select(CatalogueOperation.kind)) == "publish"


def test_a_plan_is_created_as_a_draft_with_its_offers(client, tenant, as_admin):
    product = factories.product(tenant)
    service_type = factories.service_type(tenant)
    stub = Plan(slug="vps-s", name="VPS S", interval=factories.Interval.MONTH)
    response = post_form(client, f"/admin/catalogue/products/{product.id}/plans/new?service_type_id={service_type.id}",
                         plan_form(stub))
    assert response.status_code == 303, response.get_data(as_text=True)
    plan = db.session.scalar(select(Plan))
    assert plan.state is CatalogueState.DRAFT
    assert [(p.server_type, p.price_minor, p.cost_minor, p.is_default) for p in plan.prices] == [
        ("cx22", 450, 379, True), ("cx32", 890, None, False)]
    assert [(loc.location, loc.surcharge_minor) for loc in plan.locations] == [("nbg1", 0), ("hel1", 100)]
    assert plan.price_minor == 450 and plan.images == ["debian-12"]
    assert plan.config_defaults == {"serverType": "cx22", "location": "nbg1", "image": "debian-12"}
    page = client.get(f"/admin/catalogue/plans/{plan.id}").get_data(as_text=True)
    assert "€0.71" in page  # the margin of cx22: 4.50 - 3.79


@pytest.mark.parametrize(("changes", "message"), [
    ({"prices": "cx99 450"}, "Not in the service type&#39;s choices: cx99."),
    ({"prices": "cx22 4.50"}, "Line 1: the price must be a whole number of cents"),
    ({"prices": "cx22 0\ncx32 890"}, "A plan is free or paid"),
    ({"default_server_type": "cx32x"}, "Mark exactly one as the default."),
    ({"locations": "mars1"}, "Not in the service type&#39;s choices: mars1."),
    ({"images": "windows", "default_image": "windows"}, "Not in the service type&#39;s choices: windows."),
    ({"slug": "No Slug"}, "Use 1 to 63 lowercase letters"),
    ({"price_notice_days": "999"}, "Number must be between 0 and 366."),
])
def test_bad_plan_input_gives_a_message_and_changes_nothing(client, tenant, as_admin, changes, message):
    plan = factories.plan(tenant, state=CatalogueState.DRAFT)
    before = (plan.name, plan.price_minor, plan.slug)
    response = post_form(client, f"/admin/catalogue/plans/{plan.id}", plan_form(plan, name="Renamed", **changes))
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    db.session.expire_all()
    assert (plan.name, plan.price_minor, plan.slug) == before
    assert not plan.prices
    assert db.session.scalar(select(func.count()).select_from(CatalogueChange)) == 0


def test_a_published_plans_new_price_is_confirmed_with_the_date_subscribers_pay_it(client, tenant, as_admin,
                                                                                   clock, customer):
    plan = factories.plan(tenant, price_minor=450)
    factories.subscription(tenant, customer, plan, price_minor=450, requested_config={"serverType": "cx22"})
    first = post_form(client, f"/admin/catalogue/plans/{plan.id}", plan_form(plan, prices="cx22 450"))
    assert first.status_code == 303  # the one price becomes cx22's: nothing changes for anyone
    response = post_form(client, f"/admin/catalogue/plans/{plan.id}", plan_form(plan, prices="cx22 500\ncx32 890"))
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "existing subscribers pay the new price from" in page
    assert db.session.scalar(select(func.count()).select_from(PlanPriceChange)) == 0
    response = post_form(client, f"/admin/catalogue/plans/{plan.id}",
                         plan_form(plan, prices="cx22 500\ncx32 890", confirm_price_change="y"))
    assert response.status_code == 303
    change = db.session.scalar(select(PlanPriceChange))
    assert (change.server_type, change.old_price_minor, change.new_price_minor) == ("cx22", 450, 500)
    assert (change.effective_at - clock.now()).days == 30


def test_non_admins_are_forbidden(client, auth, tenant, customer, support):
    plan = factories.plan(tenant)
    for user in (customer, support):
        auth.login(user.email)
        for path in (f"/admin/catalogue/plans/{plan.id}", "/admin/catalogue/products/new"):
            assert client.get(path).status_code in (302, 403), (user.role, path)
        assert client.post(f"/admin/catalogue/plans/{plan.id}/publish").status_code in (302, 400, 403)
        auth.logout()


def test_another_tenants_plan_is_not_found(client, other_tenant, as_admin):
    plan = factories.plan(other_tenant, state=CatalogueState.DRAFT)
    assert client.get(f"/admin/catalogue/plans/{plan.id}").status_code == 404
    assert post_form(client, f"/admin/catalogue/plans/{plan.id}/publish").status_code == 404


def test_every_form_needs_its_csrf_token(client, tenant, as_admin):
    plan = factories.plan(tenant, state=CatalogueState.DRAFT)
    response = client.post(f"/admin/catalogue/plans/{plan.id}/publish")
    assert response.status_code == 400
    response = client.post(f"/admin/catalogue/plans/{plan.id}", data=plan_form(plan, name="Renamed"))
    assert response.status_code == 400
    db.session.expire_all()
    assert plan.state is CatalogueState.DRAFT and plan.name != "Renamed"


def test_the_plan_pages_publish_is_the_lifecycles_transition(client, tenant, as_admin):
    draft = factories.plan(tenant, state=CatalogueState.DRAFT)
    response = post_form(client, f"/admin/catalogue/plans/{draft.id}/publish")
    assert response.status_code == 303
    assert "customers can order it" in client.get(response.location).get_data(as_text=True)
    db.session.expire_all()
    assert draft.state is CatalogueState.PUBLISHED
    operation = db.session.scalar(select(CatalogueOperation))
    assert (operation.kind, operation.plan_ids, operation.actor_id) == ("publish", [draft.id], as_admin.id)
    response = post_form(client, f"/admin/catalogue/plans/{draft.id}/publish")  # again: the table refuses
    assert "published already" in client.get(response.location).get_data(as_text=True)
