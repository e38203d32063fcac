"""/api/v1/admin/service-types, /products and /plans: the catalogue editing service through the API: creates
(idempotent), reads, PATCHes of the fields sent, a published plan's price change confirmed first, refusals
naming the API's field and changing nothing, scopes and other tenants' ids."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select

from app.domain.api_tokens import Scope
from app.domain.catalogue import CatalogueState
from app.extensions import db
from app.models import CatalogueChange, Plan, PlanPriceChange, Product, ServiceType
from app.services import api_tokens
from app.services.actors import Actor
from tests import factories

API = "/api/v1/admin"
SCHEMA = {"type": "object", "properties": {
    "serverType": {"type": "string", "enum": ["cx22", "cx32"]},
    "location": {"type": "string", "enum": ["nbg1", "fsn1"]},
    "image": {"type": "string", "enum": ["ubuntu-24.04", "debian-12"]}}}


def _token(tenant, user, *scopes: Scope) -> dict[str, str]:  # type: ignore[no-untyped-def]
    secret = api_tokens.create(tenant=tenant, actor=Actor(user), name="ops",
                               scopes=frozenset(scopes or (Scope.ADMIN,)), expires_in_days=30).secret
    return {"Authorization": f"Bearer {secret}"}


def _key() -> dict[str, str]:
    return {"Idempotency-Key": str(uuid.uuid4())}


def _get(model, row_id: int):  # type: ignore[no-untyped-def]
    db.session.expire_all()
    return db.session.get(model, row_id)


def _count(model) -> int:  # type: ignore[no-untyped-def]
    return db.session.scalar(select(func.count()).select_from(model)) or 0


@pytest.fixture
def headers(tenant, admin) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return _token(tenant, admin)


def test_a_service_type_product_and_plan_are_created_read_and_patched(client, tenant, headers) -> None:  # type: ignore[no-untyped-def]
    key = _key()
    body = {"slug": "vps", "name": "VPS", "provider": "hetzner", "configSchema": SCHEMA, "unknown": 1}
    made = client.post(f"{API}/service-types", headers={**headers, **key}, json=body)
    assert made.status_code == 201, made.json
    assert made.json["id"].startswith("sty_") and made.json["configSchema"] == SCHEMA
    replay = client.post(f"{API}/service-types", headers={**headers, **key}, json=body)
    assert replay.headers["Idempotent-Replayed"] == "true" and _count(ServiceType) == 1
    sty = made.json["id"]
    renamed = client.patch(f"{API}/service-types/{sty}", headers=headers, json={"name": "Cloud servers"})
    assert renamed.status_code == 200 and renamed.json["name"] == "Cloud servers" and renamed.json["slug"] == "vps"
    assert [row["id"] for row in client.get(f"{API}/service-types", headers=headers).json["data"]] == [sty]

    product = client.post(f"{API}/products", headers={**headers, **_key()}, json={"slug": "web", "name": "Web"})
    assert product.status_code == 201 and product.json["state"] == "draft" and product.json["version"] == 1
    prd = product.json["id"]
    assert client.patch(f"{API}/products/{prd}", headers=headers,
                        json={"description": "Fast"}).json["description"] == "Fast"

    plan = client.post(f"{API}/plans", headers={**headers, **_key()}, json={
        "productId": prd, "serviceTypeId": sty, "slug": "small", "name": "Small",
        "prices": [{"serverType": "cx22", "price": {"amount": 500}, "default": True},
                   {"serverType": "cx32", "price": {"amount": 900, "currency": "EUR"}}],
        "locations": [{"location": "nbg1", "default": True}, {"location": "fsn1", "surcharge": {"amount": 100}}],
        "images": ["ubuntu-24.04"], "defaultImage": "ubuntu-24.04", "features": ["2 vCPU"]})
    assert plan.status_code == 201, plan.json
    assert plan.json["price"] == {"amount": 500, "currency": "EUR"} and plan.json["state"] == "draft"
    assert plan.json["prices"][1]["price"] == {"amount": 900, "currency": "EUR"}
    assert plan.json["locations"][1]["surcharge"] == {"amount": 100, "currency": "EUR"}
    pln = plan.json["id"]
    assert client.get(f"{API}/plans/{pln}", headers=headers).json["defaultImage"] == "ubuntu-24.04"
    assert [row["id"] for row in client.get(f"{API}/plans", headers=headers).json["data"]] == [pln]
    assert client.get(f"{API}/products", headers=headers).json["data"][0]["plans"][0]["id"] == pln
    draft_price = client.patch(f"{API}/plans/{pln}", headers=headers, json={
        "prices": [{"serverType": "cx22", "price": {"amount": 600}, "default": True}]})
    assert draft_price.status_code == 200 and draft_price.json["price"]["amount"] == 600  # a draft: no notice
    assert _count(CatalogueChange) >= 5  # every change is in the catalogue's audit trail


def test_a_published_plans_price_change_needs_confirmation(client, tenant, headers) -> None:  # type: ignore[no-untyped-def]
    one_price = factories.service_type(tenant, config_schema={"type": "object", "properties": {}})
    plan = factories.plan(tenant, price_minor=1000, config_defaults={}, service_type_=one_price)
    from app.blueprints.api.ids import encode

    with client.application.test_request_context():
        pln = encode("plan", plan.id)
    asked = client.patch(f"{API}/plans/{pln}", headers=headers, json={"price": {"amount": 1200}})
    assert asked.status_code == 422, asked.json
    assert asked.json["type"].endswith("/price-change-unconfirmed") and "confirm" in asked.json["errors"]
    (change,) = asked.json["priceChanges"]
    assert change["old"] == {"amount": 1000, "currency": "EUR"} and change["new"]["amount"] == 1200
    assert change["effectiveAt"]
    assert _get(Plan, plan.id).price_minor == 1000 and _count(PlanPriceChange) == 0
    done = client.patch(f"{API}/plans/{pln}", headers=headers, json={"price": {"amount": 1200}, "confirm": True})
    assert done.status_code == 200 and done.json["price"]["amount"] == 1200
    assert _count(PlanPriceChange) == 1


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/service-types", {"slug": "Bad Slug", "name": "x", "provider": "hetzner", "configSchema": SCHEMA}, "slug"),
    ("/service-types", {"slug": "ok", "name": "x", "provider": "hetzner", "configSchema": {"type": 5}},
     "configSchema"),
    ("/service-types", {"slug": "ok", "name": "x", "provider": "aws", "configSchema": SCHEMA}, "provider"),
    ("/products", {"name": "No slug"}, "slug"),
    ("/products", {"slug": "web", "name": "Web", "version": 0}, "version"),
])
def test_bad_creates_name_the_field_and_change_nothing(client, tenant, headers, path, body, field) -> None:  # type: ignore[no-untyped-def]
    response = client.post(API + path, headers={**headers, **_key()}, json=body)
    assert response.status_code == 422, response.json
    assert field in response.json["errors"], response.json
    assert _count(ServiceType) == 0 and _count(Product) == 0 and _count(CatalogueChange) == 0


def test_a_plan_offering_what_the_schema_does_not_is_refused(client, tenant, headers) -> None:  # type: ignore[no-untyped-def]
    plan = factories.plan(tenant, state=CatalogueState.DRAFT)
    from app.blueprints.api.ids import encode

    with client.application.test_request_context():
        pln = encode("plan", plan.id)
    refused = client.patch(f"{API}/plans/{pln}", headers=headers,
                           json={"prices": [{"serverType": "gpu9000", "price": {"amount": 1}}]})
    assert refused.status_code == 422 and refused.json["errors"], refused.json
    wrong_currency = client.patch(f"{API}/plans/{pln}", headers=headers,
                                  json={"price": {"amount": 5, "currency": "USD"}})
    assert wrong_currency.status_code == 422 and "price" in wrong_currency.json["errors"]
    assert _get(Plan, plan.id).prices == [] and _count(CatalogueChange) == 0


def test_scopes_and_other_tenants(client, tenant, other_tenant, admin, customer) -> None:  # type: ignore[no-untyped-def]
    theirs = factories.plan(other_tenant)
    mine_product = factories.product(tenant)
    from app.blueprints.api.ids import encode

    with client.application.test_request_context():
        pln, prd, sty = (encode("plan", theirs.id), encode("product", theirs.product_id),
                         encode("service_type", theirs.service_type_id))
        my_prd = encode("product", mine_product.id)
    for headers in (_token(tenant, customer, Scope.WRITE), _token(tenant, admin, Scope.WRITE)):
        assert client.get(f"{API}/plans", headers=headers).status_code == 403
        assert client.post(f"{API}/products", headers={**headers, **_key()},
                           json={"slug": "x", "name": "X"}).status_code == 403
    headers = _token(tenant, admin)
    assert client.get(f"{API}/plans", headers=headers).json["data"] == []
    for path in (f"/plans/{pln}", f"/products/{prd}", f"/service-types/{sty}"):
        assert client.get(API + path, headers=headers).status_code == 404, path
        assert client.patch(API + path, headers=headers, json={"name": "Mine now"}).status_code == 404, path
    assert client.post(f"{API}/plans/{pln}/cloud-prices/preview", headers=headers,
                       json={"markupBp": 1000}).status_code == 404
    stolen = client.post(f"{API}/plans", headers={**headers, **_key()},
                         json={"productId": my_prd, "serviceTypeId": sty, "slug": "s", "name": "S"})
    assert stolen.status_code == 404
    assert _get(Plan, theirs.id).name != "Mine now" and _count(CatalogueChange) == 0


def _plan_with_offers(tenant, admin):  # type: ignore[no-untyped-def]
    from app.domain.plan_offers import LocationOffer, TypePrice
    from app.services import catalogue_editing as editing
    from tests.services.test_catalogue_editing import plan_input

    values = plan_input(prices=(TypePrice("cx22", 450, None, None, True), TypePrice("cx32", 890)),
                        locations=(LocationOffer("nbg1", 0, True),))
    return editing.create_plan(tenant=tenant, actor=Actor(admin), product_id=factories.product(tenant).id,
                               service_type_id=factories.service_type(tenant).id, values=values)


def test_cloud_prices_are_previewed_then_applied_by_fingerprint(client, tenant, admin, headers, clock) -> None:  # type: ignore[no-untyped-def]
    plan = _plan_with_offers(tenant, admin)
    from app.blueprints.api.ids import encode

    with client.application.test_request_context():
        pln = encode("plan", plan.id)
    before = _count(CatalogueChange)
    preview = client.post(f"{API}/plans/{pln}/cloud-prices/preview", headers=headers,
                          json={"markupBp": 2000, "serverTypes": ["cx32"]})
    assert preview.status_code == 200, preview.json
    (line,) = preview.json["lines"]
    assert line["cost"] == {"amount": 799, "currency": "EUR"} and line["price"]["amount"] == 959
    assert _count(CatalogueChange) == before
    bad = client.post(f"{API}/plans/{pln}/cloud-prices/preview", headers=headers,
                      json={"markupBp": 2000, "serverTypes": ["cx42"]})
    assert bad.status_code == 422 and "serverTypes" in bad.json["errors"]
    too_much = client.post(f"{API}/plans/{pln}/cloud-prices/preview", headers=headers, json={"markupBp": -1})
    assert too_much.status_code == 422 and "markupBp" in too_much.json["errors"]
    stale = client.post(f"{API}/plans/{pln}/cloud-prices/apply", headers=headers,
                        json={"markupBp": 2000, "serverTypes": ["cx32"], "fingerprint": "0" * 20})
    assert stale.status_code == 409 and _count(CatalogueChange) == before
    done = client.post(f"{API}/plans/{pln}/cloud-prices/apply", headers=headers,
                       json={"markupBp": 2000, "serverTypes": ["cx32"], "fingerprint": preview.json["fingerprint"]})
    assert done.status_code == 200, done.json
    assert done.json["prices"][1] == {"serverType": "cx32", "price": {"amount": 959, "currency": "EUR"},
                                      "cost": {"amount": 799, "currency": "EUR"}, "markupBp": 2000, "default": False}
