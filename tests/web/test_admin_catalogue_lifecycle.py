"""The admin's catalogue lifecycle pages: a preview before each action, the operations with their progress and
outcomes, pause and resume; bad input changes nothing and never answers 500."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.clock import now
from app.domain.catalogue import CatalogueState
from app.extensions import db
from app.models import CatalogueOperation, OperationStatus, Plan, PlanPrice, Product, Subscription
from app.services import catalogue_lifecycle
from tests import factories
from tests.helpers import post_form


def only_cx32(plan: Plan) -> Plan:
    """A target that offers cx32 alone: its subscribers on another type are resized to it."""
    plan.prices = [PlanPrice(server_type="cx32", price_minor=plan.price_minor, is_default=True)]
    db.session.commit()
    return plan


@pytest.fixture
def setup(tenant, admin, auth, clock):  # type: ignore[no-untyped-def]
    old = factories.product(tenant, name="Web", slug="web")
    source = factories.plan(tenant, product_=old, name="Old S", price_minor=1000)
    target = only_cx32(factories.plan(tenant, name="New S", price_minor=2000, config_defaults={"serverType": "cx32"}))
    start = now() - timedelta(days=15)
    for _ in range(3):
        factories.subscription(tenant, factories.user(tenant), source, price_minor=1000, current_period_start=start,
                               current_period_end=start + timedelta(days=30))
    auth.login(admin.email)
    return old, source, target


def test_the_catalogue_links_each_plans_allowed_actions(client, setup):
    old, source, _ = setup
    page = client.get("/admin/").get_data(as_text=True)
    for action in ("deprecate", "set_target", "replace", "retire"):
        assert f"/admin/catalogue/plans/{source.id}/{action}" in page
    assert f"/admin/catalogue/plans/{source.id}/publish" not in page
    assert f"/admin/catalogue/products/{old.id}/next_version" in page


def test_replace_shows_its_preview_then_runs_as_an_operation_with_outcomes(client, setup):
    _, source, target = setup
    url = f"/admin/catalogue/plans/{source.id}/replace"
    page = client.get(url, query_string={f"target-{source.id}": target.id}).get_data(as_text=True)
    assert "3 subscriptions moved" in page and "3 \u00d7 €10.00 &rarr; €20.00" in page.replace("\xa0", " ")
    assert "3 servers need a resize" in page and "Proration for the rest of the current periods: €15.00" in page
    assert db.session.scalar(select(func.count()).select_from(CatalogueOperation)) == 0  # the preview wrote nothing
    response = post_form(client, url, {f"target-{source.id}": target.id})
    assert response.status_code == 302
    operation = db.session.scalars(select(CatalogueOperation)).one()
    assert operation.status is OperationStatus.FINISHED and operation.moved == 3
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "3 of 3 subscriptions done (100%)" in page and page.count("Needed") == 3
    assert "hx-trigger" not in page  # finished: the progress bar no longer polls
    assert "Replace</td>" in client.get("/admin/catalogue/operations").get_data(as_text=True)


def test_bad_input_changes_nothing_and_says_why(client, tenant, setup):
    _, source, target = setup
    free = factories.plan(tenant, name="Free", price_minor=0)
    url = f"/admin/catalogue/plans/{source.id}/replace"
    for value, message in (("abc", "Choose a plan from the list"), ("99999", "Choose a plan of this catalogue"),
                           ("", "Choose a target for every plan"), (str(source.id), "cannot receive")):
        response = post_form(client, url, {f"target-{source.id}": value})
        assert response.status_code == 400, value
        assert message in response.get_data(as_text=True) and "Nothing was changed" in response.get_data(as_text=True)
    free_url = f"/admin/catalogue/plans/{free.id}/replace"
    response = post_form(client, free_url, {f"target-{free.id}": target.id})
    assert response.status_code == 400 and "Free plans cannot be moved to a paid plan" in response.get_data(
        as_text=True)
    assert client.get(f"/admin/catalogue/plans/{source.id}/nonsense").status_code == 404
    assert client.get("/admin/catalogue/plans/999999/retire").status_code == 404
    assert client.get("/admin/catalogue/operations/999999").status_code == 404
    response = client.post(url, data={f"target-{source.id}": target.id})  # no CSRF token
    assert response.status_code == 400
    db.session.expire_all()
    assert db.session.get(Plan, source.id).state is CatalogueState.PUBLISHED
    assert db.session.scalar(select(func.count()).select_from(CatalogueOperation)) == 0


def test_a_running_operation_polls_and_can_be_paused_and_resumed(client, tenant, admin, setup, monkeypatch):
    _, source, _ = setup
    monkeypatch.setattr(catalogue_lifecycle.work, "later", lambda *args: None)  # no worker yet
    response = post_form(client, f"/admin/catalogue/plans/{source.id}/retire")
    operation = db.session.scalars(select(CatalogueOperation)).one()
    assert response.headers["Location"].endswith(f"/admin/catalogue/operations/{operation.id}")
    progress = f"/admin/catalogue/operations/{operation.id}/progress"
    fragment = client.get(progress).get_data(as_text=True)
    assert 'hx-trigger="every 2s"' in fragment and "0 of 3 subscriptions done" in fragment
    post_form(client, f"/admin/catalogue/operations/{operation.id}/pause")
    db.session.expire_all()
    assert db.session.get(CatalogueOperation, operation.id).status is OperationStatus.PAUSED
    assert "Resume" in client.get(progress).get_data(as_text=True)
    monkeypatch.undo()
    post_form(client, f"/admin/catalogue/operations/{operation.id}/resume")  # the queue runs it at commit
    db.session.expire_all()
    assert db.session.get(CatalogueOperation, operation.id).status is OperationStatus.FINISHED
    assert db.session.scalar(select(func.count()).select_from(Subscription)
                             .where(Subscription.status == "canceled")) == 3


def test_customers_cannot_see_the_lifecycle_pages(client, auth, tenant, setup, customer):
    _, source, _ = setup
    auth.logout()
    auth.login(customer.email)
    assert client.get(f"/admin/catalogue/plans/{source.id}/retire").status_code in (403, 404)
    assert client.get("/admin/catalogue/operations").status_code in (403, 404)


def test_every_product_and_plan_page_previews_and_next_version_makes_a_draft(client, tenant, setup):
    old, source, target = setup
    for action in ("publish", "next_version", "supersede", "replace", "retire"):
        assert client.get(f"/admin/catalogue/products/{old.id}/{action}").status_code == 200, action
    for action in ("publish", "deprecate", "set_target", "clear_target", "replace", "retire"):
        assert client.get(f"/admin/catalogue/plans/{source.id}/{action}").status_code == 200, action
    page = client.get(f"/admin/catalogue/products/{old.id}/retire").get_data(as_text=True)
    assert "3 subscriptions canceled now" in page
    response = post_form(client, f"/admin/catalogue/products/{old.id}/next_version")
    assert response.status_code == 302
    copy = db.session.scalars(select(Product).where(Product.slug == "web",
                                                              Product.version == 2)).one()
    assert copy.state is CatalogueState.DRAFT and [p.name for p in copy.plans] == ["Old S"]
    response = post_form(client, f"/admin/catalogue/plans/{source.id}/set_target",
                         {f"target-{source.id}": target.id, "deprecate": "y"})
    assert response.status_code == 302
    db.session.expire_all()
    plan = db.session.get(Plan, source.id)
    assert plan.state is CatalogueState.DEPRECATED and plan.migration_target_id == target.id
