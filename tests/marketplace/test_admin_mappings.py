"""Plan mappings: an external plan orders one of the tenant's plans; unique; never a retired plan or another
tenant's; a change applies to purchases from now on."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.domain.catalogue import CatalogueState
from app.domain.marketplaces import Marketplace
from app.extensions import db
from app.models import MarketplacePlanMapping
from app.services import marketplace_mappings as service
from app.services.actors import Actor
from app.services.errors import Conflict, Forbidden, InvalidInput, NotFound
from tests import factories
from tests.helpers import post_form
from tests.marketplace.admin_helpers import external

PAGE = "/admin/marketplaces/mappings"


def mappings() -> list[tuple[str, str, str, int]]:
    db.session.expire_all()
    return [(m.marketplace.value, m.offer_id, m.external_plan_id, m.plan_id) for m in db.session.scalars(
        select(MarketplacePlanMapping).order_by(MarketplacePlanMapping.id))]


@pytest.fixture
def as_admin(client, auth, admin, clock):  # type: ignore[no-untyped-def]
    auth.login(admin.email)
    return admin


def test_the_admin_maps_an_external_plan_to_one_of_the_tenants_plans(client, tenant, as_admin):
    plan = factories.plan(tenant, name="Cloud S")
    page = client.get(PAGE).get_data(as_text=True)
    assert "No mappings yet" in page and "Cloud S" in page
    answer = post_form(client, PAGE, {"marketplace": "microsoft", "offer_id": "portal-saas",
                                      "external_plan_id": "basic", "plan_id": str(plan.id)})
    assert answer.status_code == 303
    assert mappings() == [("microsoft", "portal-saas", "basic", plan.id)]
    page = client.get(PAGE).get_data(as_text=True)
    assert "<code>portal-saas</code>" in page and "<code>basic</code>" in page


@pytest.mark.parametrize(("values", "message"), [
    ({"offer_id": ""}, "Enter the product id."),
    ({"external_plan_id": "two words"}, "The plan id has letters, digits"),
    ({"plan_id": ""}, "Choose one of your plans."),
    ({"plan_id": "999999"}, "Choose one of your plans."),
    ({"plan_id": "abc"}, "Choose one of your plans."),
    ({"marketplace": "amazon"}, "Not a valid choice"),
])
def test_bad_mappings_are_refused_with_a_clear_message(client, tenant, as_admin, values, message):
    plan = factories.plan(tenant)
    answer = post_form(client, PAGE, {"marketplace": "stackit", "offer_id": "product-1", "external_plan_id": "plan-1",
                                      "plan_id": str(plan.id), **values})
    assert answer.status_code == 400 and message in answer.get_data(as_text=True)
    assert mappings() == []


def test_a_retired_plan_or_another_tenants_plan_cannot_be_mapped(client, tenant, other_tenant, as_admin, admin):
    retired = factories.plan(tenant, name="Old S", state=CatalogueState.RETIRED)
    theirs = factories.plan(other_tenant, name="Elsewhere")
    assert "Old S" not in client.get(PAGE).get_data(as_text=True)  # not offered
    answer = post_form(client, PAGE, {"marketplace": "microsoft", "offer_id": "o", "external_plan_id": "p",
                                      "plan_id": str(retired.id)})
    assert answer.status_code == 400 and "Old S is retired" in answer.get_data(as_text=True)
    with pytest.raises(InvalidInput, match="Choose one of your plans"):
        service.add_mapping(tenant=tenant, actor=Actor(admin), marketplace="microsoft", offer_id="o",
                            external_plan_id="p", plan_id=theirs.id)
    assert mappings() == []


def test_each_external_plan_maps_once(client, tenant, as_admin, admin):
    first, second = factories.plan(tenant), factories.plan(tenant)
    values = {"marketplace": "microsoft", "offer_id": "portal-saas", "external_plan_id": "basic"}
    post_form(client, PAGE, {**values, "plan_id": str(first.id)})
    answer = post_form(client, PAGE, {**values, "plan_id": str(second.id)})
    assert answer.status_code == 409 and "is mapped already: change that mapping instead" in answer.get_data(
        as_text=True)
    # The same plan id under another offer, or at the other marketplace, is another external plan.
    service.add_mapping(tenant=tenant, actor=Actor(admin), marketplace=Marketplace.MICROSOFT, offer_id="other-offer",
                        external_plan_id="basic", plan_id=second.id)
    service.add_mapping(tenant=tenant, actor=Actor(admin), marketplace=Marketplace.STACKIT, offer_id="portal-saas",
                        external_plan_id="basic", plan_id=second.id)
    with pytest.raises(Conflict):
        service.add_mapping(tenant=tenant, actor=Actor(admin), marketplace=Marketplace.STACKIT,
                            offer_id="portal-saas", external_plan_id="basic", plan_id=first.id)
    assert len(mappings()) == 3


def test_a_mapping_in_use_changes_for_future_purchases_only_and_says_so(client, tenant, customer, as_admin, admin):
    small, large = factories.plan(tenant, name="Cloud S"), factories.plan(tenant, name="Cloud L")
    mapping = service.add_mapping(tenant=tenant, actor=Actor(admin), marketplace="microsoft", offer_id="portal-saas",
                                  external_plan_id="basic", plan_id=small.id)
    running = factories.subscription(tenant, customer, small, marketplace=Marketplace.MICROSOFT)
    external(tenant, subscription=running, offer_id="portal-saas", external_plan_id="basic")
    external(tenant, offer_id="portal-saas", external_plan_id="basic")  # not set up yet: not counted
    page = client.get(PAGE).get_data(as_text=True)
    assert "1 set up already keeps its plan: a change applies to purchases from now on." in page
    answer = post_form(client, f"{PAGE}/{mapping.id}", {"plan_id": str(large.id)}, follow_redirects=True)
    assert "now orders Cloud L for purchases from now on; subscriptions set up already keep their plan" in \
        answer.get_data(as_text=True)
    assert mappings() == [("microsoft", "portal-saas", "basic", large.id)]
    db.session.refresh(running)
    assert running.plan_id == small.id


def test_a_mapping_cannot_move_to_a_retired_plan(client, tenant, as_admin, admin):
    plan = factories.plan(tenant)
    retired = factories.plan(tenant, name="Gone", state=CatalogueState.RETIRED)
    mapping = service.add_mapping(tenant=tenant, actor=Actor(admin), marketplace="stackit", offer_id="prod",
                                  external_plan_id="p1", plan_id=plan.id)
    answer = post_form(client, f"{PAGE}/{mapping.id}", {"plan_id": str(retired.id)})
    assert answer.status_code == 400 and "Gone is retired" in answer.get_data(as_text=True)
    assert mappings()[0][3] == plan.id


def test_removing_a_mapping(client, tenant, other_tenant, as_admin, admin):
    plan = factories.plan(tenant)
    mapping = service.add_mapping(tenant=tenant, actor=Actor(admin), marketplace="stackit", offer_id="prod",
                                  external_plan_id="p1", plan_id=plan.id)
    theirs = MarketplacePlanMapping(tenant_id=other_tenant.id, marketplace=Marketplace.STACKIT, offer_id="prod",
                                    external_plan_id="p1", plan_id=factories.plan(other_tenant).id)
    db.session.add(theirs)
    db.session.commit()
    answer = post_form(client, f"{PAGE}/{theirs.id}/remove", follow_redirects=True)
    assert "There is no such plan mapping" in answer.get_data(as_text=True)
    mapping_id, their_plan_id = mapping.id, theirs.plan_id
    answer = post_form(client, f"{PAGE}/{mapping_id}/remove", follow_redirects=True)
    assert "The mapping is removed" in answer.get_data(as_text=True)
    assert mappings() == [("stackit", "prod", "p1", their_plan_id)]
    with pytest.raises(NotFound):
        service.remove_mapping(tenant=tenant, actor=Actor(admin), mapping_id=mapping_id)


def test_only_admins_change_mappings(client, auth, tenant, customer, support):
    plan = factories.plan(tenant)
    with pytest.raises(Forbidden):
        service.add_mapping(tenant=tenant, actor=Actor(support), marketplace="stackit", offer_id="prod",
                            external_plan_id="p1", plan_id=plan.id)
    auth.login(customer.email)
    assert client.get(PAGE).status_code == 403
    assert mappings() == []
