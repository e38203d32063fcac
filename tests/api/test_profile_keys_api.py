"""GET/PUT /profile (the billing profile form's service and checks) and GET/POST/DELETE /ssh-keys (the account
page's keys)."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select

from app.blueprints.api.ids import encode
from app.domain.api_tokens import Scope
from app.extensions import db
from app.models import CustomerProfile, SshKey
from app.services import api_tokens, ssh_keys
from app.services.actors import Actor
from tests import factories
from tests.sshkeys import ed25519_key, rsa_key

PROFILE = {"fullName": "Casey Customer", "billingEmail": "billing@example.com", "company": "Casey GmbH",
           "vatId": "DE123456789", "address": "Hauptstrasse 1", "postalCode": "10115", "city": "Berlin",
           "country": "DE"}


def _token(tenant, user, *scopes: Scope) -> str:  # type: ignore[no-untyped-def]
    return api_tokens.create(tenant=tenant, actor=Actor(user), name="ci", scopes=frozenset(scopes or (Scope.WRITE,)),
                             expires_in_days=30).secret


def _auth(secret: str, key: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}", **({"Idempotency-Key": key} if key else {})}


def _count(model: type) -> int:
    return db.session.scalar(select(func.count()).select_from(model)) or 0


# --- profile ---------------------------------------------------------------------------------------------------

def test_profile_is_blank_then_saved_and_read_back(client, tenant, customer) -> None:  # type: ignore[no-untyped-def]
    secret = _token(tenant, customer)
    blank = client.get("/api/v1/profile", headers=_auth(secret))
    assert blank.status_code == 200
    assert blank.json == {**dict.fromkeys(PROFILE, ""), "complete": False}
    saved = client.put("/api/v1/profile", json={**PROFILE, "vatId": "de 123 456 789", "country": "de",
                                                "favouriteColour": "blue"}, headers=_auth(secret))
    assert saved.status_code == 200, saved.json
    assert saved.json == {**PROFILE, "complete": True}  # normalised as the form saves it
    assert client.get("/api/v1/profile", headers=_auth(secret)).json == saved.json
    row = db.session.scalar(select(CustomerProfile))
    assert (row.user_id, row.updated_by_id) == (customer.id, customer.id)


def test_profile_refusals_name_the_field_and_save_nothing(client, tenant, customer) -> None:  # type: ignore[no-untyped-def]
    secret = _token(tenant, customer)
    cases = [({"vatId": "FR12345678901"}, "vatId"), ({"vatId": "DE12"}, "vatId"),
             ({"country": "US", "vatId": "DE123456789"}, "vatId"), ({"billingEmail": "nope"}, "billingEmail"),
             ({"fullName": ""}, "fullName"), ({"postalCode": "1" * 21}, "postalCode"), ({"country": "XX"}, "country"),
             ({"city": 7}, "city")]
    for values, field in cases:
        response = client.put("/api/v1/profile", json={**PROFILE, **values}, headers=_auth(secret))
        assert response.status_code == 422, values
        assert response.mimetype == "application/problem+json"
        assert field in response.json["errors"], (values, response.json)
    assert _count(CustomerProfile) == 0


def test_profile_is_the_tokens_users_own_and_needs_write(client, tenant, customer) -> None:  # type: ignore[no-untyped-def]
    neighbour = factories.user(tenant, email="n@example.com")
    client.put("/api/v1/profile", json=PROFILE, headers=_auth(_token(tenant, neighbour)))
    mine = client.get("/api/v1/profile", headers=_auth(_token(tenant, customer, Scope.READ)))
    assert mine.json["fullName"] == ""  # the neighbour's profile is not shown to anyone else
    refused = client.put("/api/v1/profile", json=PROFILE, headers=_auth(_token(tenant, customer, Scope.READ)))
    assert refused.status_code == 403 and refused.json["requiredScope"] == "write"
    assert _count(CustomerProfile) == 1


# --- SSH keys --------------------------------------------------------------------------------------------------

def test_keys_are_added_listed_and_removed(client, tenant, customer) -> None:  # type: ignore[no-untyped-def]
    secret = _token(tenant, customer)
    text = ed25519_key("casey@laptop")
    added = client.post("/api/v1/ssh-keys", json={"publicKey": text, "color": "red"},
                        headers=_auth(secret, str(uuid.uuid4())))
    assert added.status_code == 201, added.json
    assert added.json["id"].startswith("key_")
    assert (added.json["name"], added.json["type"], added.json["default"]) == ("casey@laptop", "ssh-ed25519", True)
    listed = client.get("/api/v1/ssh-keys", headers=_auth(secret)).json["data"]
    assert [row["id"] for row in listed] == [added.json["id"]] and listed[0]["publicKey"] == text
    removed = client.delete(f"/api/v1/ssh-keys/{added.json['id']}", headers=_auth(secret))
    assert removed.status_code == 204
    assert client.get("/api/v1/ssh-keys", headers=_auth(secret)).json == {"data": []}
    assert client.delete(f"/api/v1/ssh-keys/{added.json['id']}", headers=_auth(secret)).status_code == 404


def test_adding_a_key_is_idempotent(client, tenant, customer) -> None:  # type: ignore[no-untyped-def]
    secret = _token(tenant, customer)
    body = {"publicKey": ed25519_key(), "name": "laptop"}
    assert client.post("/api/v1/ssh-keys", json=body, headers=_auth(secret)).status_code == 428
    key = str(uuid.uuid4())
    first = client.post("/api/v1/ssh-keys", json=body, headers=_auth(secret, key))
    again = client.post("/api/v1/ssh-keys", json=body, headers=_auth(secret, key))
    assert first.status_code == again.status_code == 201
    assert again.json == first.json and again.headers["Idempotent-Replayed"] == "true"
    other = client.post("/api/v1/ssh-keys", json={**body, "name": "desk"}, headers=_auth(secret, key))
    assert other.status_code == 422 and other.json["type"].endswith("/idempotency-key-reused")
    refused_key = str(uuid.uuid4())
    duplicate = client.post("/api/v1/ssh-keys", json=body, headers=_auth(secret, refused_key))
    assert duplicate.status_code == 422 and "already" in duplicate.json["errors"]["publicKey"][0]
    replayed = client.post("/api/v1/ssh-keys", json=body, headers=_auth(secret, refused_key))
    assert replayed.headers["Idempotent-Replayed"] == "true" and replayed.json == duplicate.json
    assert replayed.content_type == duplicate.content_type == "application/problem+json"  # a refusal, again
    assert _count(SshKey) == 1


def test_bad_keys_are_refused_naming_the_field(client, tenant, customer) -> None:  # type: ignore[no-untyped-def]
    secret = _token(tenant, customer)
    cases = [({"publicKey": "garbage"}, "publicKey"), ({"publicKey": rsa_key(1024)}, "publicKey"), ({}, "publicKey"),
             ({"publicKey": ed25519_key(), "name": "x" * 101}, "name"), ({"publicKey": 5}, "publicKey")]
    for body, field in cases:
        response = client.post("/api/v1/ssh-keys", json=body, headers=_auth(secret, str(uuid.uuid4())))
        assert response.status_code == 422, body
        assert field in response.json["errors"], (body, response.json)
    assert _count(SshKey) == 0


def test_other_customers_and_tenants_keys_are_not_found(client, tenant, other_tenant, customer) -> None:  # type: ignore[no-untyped-def]
    neighbour = factories.user(tenant, email="n@example.com")
    stranger = factories.user(other_tenant, email="s@example.com")
    theirs = [ssh_keys.add_key(tenant=tenant, actor=Actor(neighbour), public_key=ed25519_key()),
              ssh_keys.add_key(tenant=other_tenant, actor=Actor(stranger), public_key=ed25519_key())]
    secret = _token(tenant, customer)
    assert client.get("/api/v1/ssh-keys", headers=_auth(secret)).json == {"data": []}
    for key in theirs:
        response = client.delete(f"/api/v1/ssh-keys/{encode('ssh_key', key.id)}", headers=_auth(secret))
        assert response.status_code == 404 and response.json["type"].endswith("/not-found")
    assert _count(SshKey) == 2


def test_keys_need_the_write_scope_to_change(client, tenant, customer) -> None:  # type: ignore[no-untyped-def]
    key = ssh_keys.add_key(tenant=tenant, actor=Actor(customer), public_key=ed25519_key())
    reader = _token(tenant, customer, Scope.READ)
    assert client.get("/api/v1/ssh-keys", headers=_auth(reader)).status_code == 200
    assert client.post("/api/v1/ssh-keys", json={"publicKey": ed25519_key()},
                       headers=_auth(reader, "k1")).status_code == 403
    assert client.delete(f"/api/v1/ssh-keys/{encode('ssh_key', key.id)}", headers=_auth(reader)).status_code == 403
    assert _count(SshKey) == 1
