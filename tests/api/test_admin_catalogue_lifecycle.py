"""/api/v1/admin: the catalogue's lifecycle through the API: plan and product transitions, replace and retire
previewed then started (idempotently) as operations, their progress, outcomes, pause and resume. Refusals
change nothing; other tenants' ids are not found; only admin-scoped tenant admins' tokens get in."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.clock import now
from app.domain.accounts import Role
from app.domain.api_tokens import Scope
from app.domain.catalogue import CatalogueState
from app.domain.subscriptions import SubscriptionStatus
from app.extensions import db
from app.models import CatalogueOperation, Plan, Product, Subscription
from app.services import api_tokens
from app.services import catalogue_lifecycle as service
from app.services.actors import Actor
from tests import factories

API = "/api/v1/admin"


def _token(tenant, user, *scopes: Scope) -> dict[str, str]:  # type: ignore[no-untyped-def]
    secret = api_tokens.create(tenant=tenant, actor=Actor(user), name="ops",
                               scopes=frozenset(scopes or (Scope.ADMIN,)), expires_in_days=30).secret
    return {"Authorization": f"Bearer {secret}"}


def _key() -> dict[str, str]:
    return {"Idempotency-Key": str(uuid.uuid4())}


@pytest.fixture
def headers(tenant, admin) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return _token(tenant, admin)


@pytest.fixture
def old(tenant) -> Product:  # type: ignore[no-untyped-def]
    return factories.product(tenant, slug="web", name="Web")


def _ids(client, headers, *plans: Plan) -> list[str]:  # type: ignore[no-untyped-def]
    """The plans' opaque ids, as a client reads them off an answer (the lifecycle answers carry them)."""
    from app.blueprints.api.ids import encode

    with client.application.test_request_context():
        return [encode("plan", plan.id) for plan in plans]


def _subscribers(tenant, plan: Plan, n: int) -> list[Subscription]:  # type: ignore[no-untyped-def]
    user = factories.user(tenant)
    start = now() - timedelta(days=15)
    return [factories.subscription(tenant, user, plan, current_period_start=start,
                                   current_period_end=start + timedelta(days=30)) for _ in range(n)]


def _get(model, row_id: int):  # type: ignore[no-untyped-def]
    """The row as the database has it now (the requests ran in sessions of their own)."""
    db.session.expire_all()
    return db.session.get(model, row_id)


def _operations() -> int:
    return db.session.scalar(select(func.count()).select_from(CatalogueOperation)) or 0


def test_plan_transitions_deprecate_target_and_clear(client, tenant, headers, old) -> None:  # type: ignore[no-untyped-def]
    plan, target = factories.plan(tenant, product_=old), factories.plan(tenant)
    pid, tid = _ids(client, headers, plan, target)
    set_ = client.post(f"{API}/plans/{pid}/set-target", headers=headers, json={"targetPlanId": tid, "extra": 1})
    assert set_.status_code == 200, set_.json
    assert set_.json["migrationTargetId"] == tid and set_.json["state"] == "published"
    cleared = client.post(f"{API}/plans/{pid}/clear-target", headers=headers)
    assert cleared.status_code == 200 and cleared.json["migrationTargetId"] is None
    gone = client.post(f"{API}/plans/{pid}/deprecate", headers=headers, json={"targetPlanId": tid})
    assert gone.status_code == 200 and gone.json["state"] == "deprecated" and gone.json["migrationTargetId"] == tid
    again = client.post(f"{API}/plans/{pid}/publish", headers=headers)  # deprecated -> published: not allowed
    assert again.status_code == 422 and again.json["type"].endswith("/rule-refused")
    assert _get(Plan, plan.id).state is CatalogueState.DEPRECATED


def test_publish_a_draft_product_then_its_next_version_and_supersede(client, tenant, headers) -> None:  # type: ignore[no-untyped-def]
    draft = factories.product(tenant, slug="db", name="DB", state=CatalogueState.DRAFT)
    plan = factories.plan(tenant, product_=draft, state=CatalogueState.DRAFT)
    from app.blueprints.api.ids import encode

    with client.application.test_request_context():
        prd = encode("product", draft.id)
    published = client.post(f"{API}/products/{prd}/publish", headers=headers)
    assert published.status_code == 200, published.json
    assert published.json["state"] == "published" and published.json["plans"][0]["state"] == "published"
    key = _key()
    copy = client.post(f"{API}/products/{prd}/next-version", headers={**headers, **key})
    assert copy.status_code == 201 and copy.json["version"] == 2 and copy.json["state"] == "draft"
    replay = client.post(f"{API}/products/{prd}/next-version", headers={**headers, **key})
    assert replay.headers["Idempotent-Replayed"] == "true" and replay.json["id"] == copy.json["id"]
    assert db.session.scalar(select(func.count()).select_from(Product).where(Product.slug == "db")) == 2
    new_plan = copy.json["plans"][0]["id"]
    client.post(f"{API}/products/{copy.json['id']}/publish", headers=headers)
    missing = client.post(f"{API}/products/{prd}/supersede", headers=headers, json={"targets": []})
    assert missing.status_code == 422 and "targets" in missing.json["errors"]
    (pid,) = _ids(client, headers, plan)
    done = client.post(f"{API}/products/{prd}/supersede", headers=headers,
                       json={"targets": [{"planId": pid, "targetPlanId": new_plan}]})
    assert done.status_code == 200, done.json
    assert done.json["state"] == "deprecated" and done.json["plans"][0]["migrationTargetId"] == new_plan


def test_replace_is_previewed_then_started_once_and_followed(client, tenant, headers, old, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    source = factories.plan(tenant, product_=old, price_minor=1000)
    target = factories.plan(tenant, price_minor=2000)
    _subscribers(tenant, source, 3)
    sid, tid = _ids(client, headers, source, target)
    body = {"targets": [{"planId": sid, "targetPlanId": tid}]}
    preview = client.post(f"{API}/operations/replace/preview", headers=headers, json=body)
    assert preview.status_code == 200, preview.json
    assert preview.json["subscriptions"] == 3 and preview.json["byPlan"][0]["subscriptions"] == 3
    assert preview.json["priceChanges"] == [{"old": {"amount": 990, "currency": "EUR"},
                                             "new": {"amount": 2000, "currency": "EUR"}, "subscriptions": 3}]
    assert preview.json["proration"]["currency"] == "EUR"
    assert _operations() == 0 and _get(Plan, source.id).state is CatalogueState.PUBLISHED
    monkeypatch.setattr(service.work, "later", lambda *args: None)  # the worker does not run: we drive it
    key = _key()
    started = client.post(f"{API}/operations/replace", headers={**headers, **key}, json=body)
    assert started.status_code == 201, started.json
    assert started.json["status"] == "running" and started.json["total"] == 3 and started.json["percent"] == 0
    replay = client.post(f"{API}/operations/replace", headers={**headers, **key}, json=body)
    assert replay.headers["Idempotent-Replayed"] == "true" and replay.json["id"] == started.json["id"]
    assert _operations() == 1
    op = started.json["id"]
    operation = db.session.scalar(select(CatalogueOperation))
    service.advance(operation.id, chunk=2)
    paused = client.post(f"{API}/operations/{op}/pause", headers=headers)
    assert paused.status_code == 200 and paused.json["status"] == "paused"
    read = client.get(f"{API}/operations/{op}", headers=headers).json
    assert read["moved"] == 2 and read["percent"] == 66
    first = client.get(f"{API}/operations/{op}/outcomes?limit=1", headers=headers).json
    assert first["data"][0]["outcome"] == "moved" and first["data"][0]["newPrice"] == {"amount": 2000,
                                                                                      "currency": "EUR"}
    second = client.get(f"{API}/operations/{op}/outcomes?limit=1&cursor={first['nextCursor']}", headers=headers)
    assert second.json["data"][0]["id"] != first["data"][0]["id"]
    resumed = client.post(f"{API}/operations/{op}/resume", headers=headers)
    assert resumed.status_code == 200 and resumed.json["status"] == "running"
    service.apply_now(operation.id)
    finished = client.get(f"{API}/operations/{op}", headers=headers).json
    assert finished["status"] == "finished" and finished["percent"] == 100 and finished["moved"] == 3
    assert client.post(f"{API}/operations/{op}/resume", headers=headers).status_code == 422
    listed = client.get(f"{API}/operations", headers=headers).json["data"]
    assert listed[0]["id"] == op and listed[0]["targets"] == [{"planId": sid, "targetPlanId": tid}]


def test_retire_is_previewed_then_started(client, tenant, headers, old, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    plan = factories.plan(tenant, product_=old)
    subs = _subscribers(tenant, plan, 2)
    (pid,) = _ids(client, headers, plan)
    preview = client.post(f"{API}/operations/retire/preview", headers=headers, json={"planIds": [pid]})
    assert preview.status_code == 200 and preview.json["subscriptions"] == 2 and preview.json["proration"] is None
    assert _operations() == 0
    started = client.post(f"{API}/operations/retire", headers={**headers, **_key()}, json={"planIds": [pid]})
    assert started.status_code == 201, started.json
    # The queue runs the operation inline in the tests, as a worker would right after the commit.
    assert {_get(Subscription, s.id).status for s in subs} == {SubscriptionStatus.CANCELED}
    assert client.get(f"{API}/operations/{started.json['id']}", headers=headers).json["canceled"] == 2
    none = client.post(f"{API}/operations/retire", headers={**headers, **_key()}, json={"planIds": []})
    assert none.status_code == 422


def test_bad_bodies_name_the_field_and_change_nothing(client, tenant, headers, old) -> None:  # type: ignore[no-untyped-def]
    source = factories.plan(tenant, product_=old)
    (sid,) = _ids(client, headers, source)
    for path, body, field in (
        (f"{API}/plans/{sid}/set-target", {}, "targetPlanId"),
        (f"{API}/plans/{sid}/set-target", {"targetPlanId": "sub_0000000"}, "targetPlanId"),
        (f"{API}/operations/replace/preview", {"targets": [{"planId": sid}]}, "targets"),
        (f"{API}/operations/retire/preview", {"planIds": "all"}, "planIds"),
    ):
        response = client.post(path, headers=headers, json=body)
        assert response.status_code == 422, (path, response.json)
        assert field in response.json["errors"], response.json
    free = factories.plan(tenant, price_minor=0)
    (fid,) = _ids(client, headers, free)
    refused = client.post(f"{API}/operations/replace", headers={**headers, **_key()},
                          json={"targets": [{"planId": fid, "targetPlanId": sid}]})
    assert refused.status_code in (409, 422) and refused.mimetype == "application/problem+json"
    assert _operations() == 0 and _get(Plan, source.id).migration_target_id is None


def test_scopes_customers_and_other_tenants(client, tenant, other_tenant, admin, customer, old) -> None:  # type: ignore[no-untyped-def]
    mine = factories.plan(tenant, product_=old)
    theirs = factories.plan(other_tenant)
    mid, tid = _ids(client, {}, mine, theirs)
    for headers in (_token(tenant, customer, Scope.WRITE), _token(tenant, admin, Scope.WRITE)):
        assert client.get(f"{API}/operations", headers=headers).status_code == 403
        assert client.post(f"{API}/plans/{mid}/deprecate", headers=headers, json={}).status_code == 403
    assert _get(Plan, mine.id).state is CatalogueState.PUBLISHED
    headers = _token(tenant, admin)
    for path, body in ((f"{API}/plans/{tid}/deprecate", {}), (f"{API}/plans/{tid}/publish", None),
                       (f"{API}/operations/retire/preview", {"planIds": [tid]}),
                       (f"{API}/operations/replace/preview", {"targets": [{"planId": tid, "targetPlanId": mid}]})):
        assert client.post(path, headers=headers, json=body).status_code == 404, path
    assert client.post(f"{API}/operations/retire", headers={**headers, **_key()},
                       json={"planIds": [tid]}).status_code == 404
    boss = factories.user(other_tenant, email="boss@other.test", role=Role.TENANT_ADMIN)
    service.deprecate_plan(tenant=other_tenant, actor=Actor(boss), plan_id=theirs.id)
    from app.blueprints.api.ids import encode

    with client.application.test_request_context():
        op = encode("operation", db.session.scalar(select(CatalogueOperation.id)))
    assert client.get(f"{API}/operations/{op}", headers=headers).status_code == 404
    assert client.post(f"{API}/operations/{op}/pause", headers=headers).status_code == 404
    assert client.get(f"{API}/operations", headers=headers).json["data"] == []
    assert _get(Plan, theirs.id).state is CatalogueState.DEPRECATED
