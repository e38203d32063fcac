"""The JSON API: tokens, problems, no cookies, ownership across customers and tenants, idempotency, ETags,
paging and the OpenAPI document."""

from __future__ import annotations

import re
import uuid

import pytest
from openapi_spec_validator import validate

from app.domain.accounts import Role
from app.domain.api_tokens import Scope, token_hash
from app.extensions import db
from app.models import ApiToken, Subscription
from app.services import api_tokens
from app.services.actors import Actor
from app.services.errors import Forbidden, InvalidInput
from tests import factories
from tests.helpers import complete_profile


def _token(tenant, user, *scopes: Scope) -> str:  # type: ignore[no-untyped-def]
    return api_tokens.create(tenant=tenant, actor=Actor(user), name="ci", scopes=frozenset(scopes or (Scope.WRITE,)),
                             expires_in_days=30).secret


def _auth(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


@pytest.fixture
def plan(tenant):  # type: ignore[no-untyped-def]
    return factories.plan(tenant)


@pytest.fixture
def sub(tenant, customer, plan):  # type: ignore[no-untyped-def]
    return factories.subscription(tenant, customer, plan)


def test_token_is_shown_once_and_only_its_hash_is_stored(tenant, customer) -> None:  # type: ignore[no-untyped-def]
    created = api_tokens.create(tenant=tenant, actor=Actor(customer), name="laptop",
                                scopes=frozenset({Scope.READ}), expires_in_days=7)
    row = db.session.get(ApiToken, created.token.id)
    assert created.secret.startswith("ptk_")
    assert row.secret_hash == token_hash(created.secret)
    assert created.secret not in {row.secret_hash, row.lookup, row.name, row.scopes}


def test_admin_scope_only_for_tenant_admins_and_not_while_impersonating(tenant, customer, support) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidInput) as refused:
        api_tokens.create(tenant=tenant, actor=Actor(customer), name="x", scopes=frozenset({Scope.ADMIN}),
                          expires_in_days=7)
    assert refused.value.field == "scopes"
    with pytest.raises(Forbidden):
        api_tokens.create(tenant=tenant, actor=Actor(customer, impersonator=support), name="x",
                          scopes=frozenset({Scope.READ}), expires_in_days=7)


def test_missing_typo_revoked_and_expired_tokens_answer_401_problems(client, tenant, customer, clock) -> None:  # type: ignore[no-untyped-def]
    secret = _token(tenant, customer)
    assert client.get("/api/v1/subscriptions", headers=_auth(secret)).status_code == 200
    typo = secret[:-1] + ("A" if secret[-1] != "A" else "B")
    for headers in ({}, _auth(typo), _auth("nonsense")):
        response = client.get("/api/v1/subscriptions", headers=headers)
        assert response.status_code == 401
        assert response.mimetype == "application/problem+json"
        assert response.json["type"].endswith("/api/problems/unauthorized")
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    row = db.session.scalar(db.select(ApiToken))
    api_tokens.revoke(tenant=tenant, actor=Actor(customer), token_id=row.id)
    assert client.get("/api/v1/subscriptions", headers=_auth(secret)).status_code == 401
    other = _token(tenant, customer)
    clock.advance(days=31)
    assert client.get("/api/v1/subscriptions", headers=_auth(other)).status_code == 401


def test_another_tenants_token_is_refused(client, tenant, other_tenant) -> None:  # type: ignore[no-untyped-def]
    stranger = factories.user(other_tenant, email="o@example.com")
    secret = _token(other_tenant, stranger)
    assert client.get("/api/v1/subscriptions", headers=_auth(secret)).status_code == 401
    assert client.get("/api/v1/subscriptions", headers=_auth(secret), base_url="http://other.test").status_code == 200


def test_scopes_are_enforced(client, tenant, customer, sub) -> None:  # type: ignore[no-untyped-def]
    reader = _token(tenant, customer, Scope.READ)
    sid = client.get("/api/v1/subscriptions", headers=_auth(reader)).json["data"][0]["id"]
    response = client.post(f"/api/v1/subscriptions/{sid}/cancel", headers=_auth(reader), json={})
    assert response.status_code == 403
    assert response.json["requiredScope"] == "write"
    assert db.session.get(Subscription, sub.id).status == sub.status


def test_no_cookie_no_session_calls_and_no_csrf_token_needed(client, auth, tenant, customer, sub) -> None:  # type: ignore[no-untyped-def]
    secret = _token(tenant, customer)
    response = client.get("/api/v1/subscriptions", headers=_auth(secret))
    assert "Set-Cookie" not in response.headers
    sid = response.json["data"][0]["id"]
    auth.login(customer.email)
    refused = client.post(f"/api/v1/subscriptions/{sid}/cancel", json={})
    assert refused.status_code == 401
    assert "Set-Cookie" not in refused.headers
    done = client.post(f"/api/v1/subscriptions/{sid}/cancel", json={}, headers=_auth(secret))  # no CSRF token
    assert done.status_code == 200, done.json
    assert "Set-Cookie" not in done.headers


def test_other_customers_and_garbage_ids_are_404_and_change_nothing(client, tenant, customer, plan) -> None:  # type: ignore[no-untyped-def]
    neighbour = factories.user(tenant, email="n@example.com")
    theirs = factories.subscription(tenant, neighbour, plan)
    status = theirs.status
    mine = client.get("/api/v1/subscriptions", headers=_auth(_token(tenant, neighbour))).json["data"][0]["id"]
    secret = _token(tenant, customer)
    for path in (f"/api/v1/subscriptions/{mine}", "/api/v1/subscriptions/sub_zzzzzzz",
                 "/api/v1/subscriptions/42", f"/api/v1/subscriptions/{mine}/items"):
        response = client.get(path, headers=_auth(secret))
        assert response.status_code == 404, path
        assert response.json["type"].endswith("/not-found")
    assert client.post(f"/api/v1/subscriptions/{mine}/cancel", headers=_auth(secret), json={}).status_code == 404
    assert db.session.get(Subscription, theirs.id).status == status


def test_etag_and_stale_if_match(client, tenant, customer, sub) -> None:  # type: ignore[no-untyped-def]
    secret = _token(tenant, customer)
    sid = client.get("/api/v1/subscriptions", headers=_auth(secret)).json["data"][0]["id"]
    read = client.get(f"/api/v1/subscriptions/{sid}", headers=_auth(secret))
    tag = read.headers["ETag"]
    assert tag == f'"v{read.json["version"]}"'
    stale = client.post(f"/api/v1/subscriptions/{sid}/cancel", json={"reason": "x", "unknownField": 1},
                        headers={**_auth(secret), "If-Match": '"v999"'})
    assert stale.status_code == 412
    assert stale.json["type"].endswith("/precondition-failed")
    done = client.post(f"/api/v1/subscriptions/{sid}/cancel", json={"reason": "x", "unknownField": 1},
                       headers={**_auth(secret), "If-Match": tag})
    assert done.status_code == 200
    assert done.headers["ETag"] != tag
    again = client.post(f"/api/v1/subscriptions/{sid}/resume", headers={**_auth(secret), "If-Match": tag})
    assert again.status_code == 412


def test_cursor_pagination(client, tenant, customer, plan) -> None:  # type: ignore[no-untyped-def]
    for _ in range(5):
        factories.subscription(tenant, customer, plan)
    secret = _token(tenant, customer)
    seen, cursor = [], None
    while True:
        page = client.get("/api/v1/subscriptions", query_string={"limit": 2, **({"cursor": cursor} if cursor else {})},
                          headers=_auth(secret)).json
        seen += [row["id"] for row in page["data"]]
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 5
    bad = client.get("/api/v1/subscriptions", query_string={"cursor": "forged.abc"}, headers=_auth(secret))
    assert bad.status_code == 422 and "cursor" in bad.json["errors"]
    assert client.get("/api/v1/subscriptions?limit=0", headers=_auth(secret)).json["errors"]["limit"]


def test_order_is_idempotent_and_a_reused_key_with_another_body_is_422(client, tenant, customer) -> None:  # type: ignore[no-untyped-def]
    plan = factories.plan(tenant, price_minor=0)
    complete_profile(customer, card=False)
    secret = _token(tenant, customer)
    from app.blueprints.api.ids import encode

    body = {"planId": encode("plan", plan.id), "autoBackorder": True}
    missing = client.post("/api/v1/subscriptions", json=body, headers=_auth(secret))
    assert missing.status_code == 428
    headers = {**_auth(secret), "Idempotency-Key": str(uuid.uuid4())}
    first = client.post("/api/v1/subscriptions", json=body, headers=headers)
    assert first.status_code == 201, first.json
    second = client.post("/api/v1/subscriptions", json=body, headers=headers)
    assert second.status_code == 201 and second.json == first.json
    assert second.headers["Idempotent-Replayed"] == "true"
    assert db.session.scalar(db.select(db.func.count()).select_from(Subscription)) == 1
    other = client.post("/api/v1/subscriptions", json={**body, "quantity": 2}, headers=headers)
    assert other.status_code == 422
    assert other.json["type"].endswith("/idempotency-key-reused")


def test_validation_problem_names_the_field(client, tenant, customer) -> None:  # type: ignore[no-untyped-def]
    secret = _token(tenant, customer)
    response = client.post("/api/v1/subscriptions", json={"planId": "nope", "quantity": "x"},
                           headers={**_auth(secret), "Idempotency-Key": "k1"})
    assert response.status_code == 422
    assert set(response.json["errors"]) >= {"planId", "quantity"}
    again = client.post("/api/v1/subscriptions", json={"planId": "nope", "quantity": "x"},
                        headers={**_auth(secret), "Idempotency-Key": "k1"})
    assert again.json["type"].endswith("/validation-failed")  # invalid fields do not use the key up
    assert client.post("/api/v1/subscriptions", data="x", content_type="text/plain",
                       headers={**_auth(secret), "Idempotency-Key": "k2"}).status_code == 415


def test_admin_tokens_are_not_customers(client, tenant, admin) -> None:  # type: ignore[no-untyped-def]
    secret = api_tokens.create(tenant=tenant, actor=Actor(admin), name="ops", scopes=frozenset({Scope.ADMIN}),
                               expires_in_days=7).secret
    assert client.get("/api/v1/subscriptions", headers=_auth(secret)).status_code == 403
    assert admin.role is Role.TENANT_ADMIN


def test_openapi_document_is_valid_and_covers_every_route(app, client, tenant) -> None:  # type: ignore[no-untyped-def]
    response = client.get("/api/v1/openapi.json")
    document = response.json
    validate(document)
    documented = {path for path in document["paths"]}
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1/") and rule.rule != "/api/v1/openapi.json":
            path = re.sub(r"<(?:[^:>]+:)?(\w+)>", r"{\1}", rule.rule)
            assert path in documented, (path, documented)


def test_plans_list_what_can_be_ordered_with_their_choices(client, tenant, customer, other_tenant) -> None:  # type: ignore[no-untyped-def]
    from app.domain.catalogue import CatalogueState

    plan = factories.plan(tenant)
    factories.plan(other_tenant)
    draft = factories.plan(tenant, state=CatalogueState.DRAFT)
    secret = _token(tenant, customer, Scope.READ)
    [listed] = client.get("/api/v1/plans", headers=_auth(secret)).json["data"]
    assert listed["name"] == plan.name and listed["price"]["currency"] == plan.currency
    assert "properties" in listed["configSchema"]
    assert client.get(f"/api/v1/plans/{listed['id']}", headers=_auth(secret)).json == listed
    from app.blueprints.api.ids import encode

    with client.application.test_request_context():
        hidden = encode("plan", draft.id)
    assert client.get(f"/api/v1/plans/{hidden}", headers=_auth(secret)).status_code in (404, 422)
