"""/api/v1/ssh-keys: the customer's SSH public keys, which orders give their servers; added, listed and
removed through the account page's service (`ssh_keys`: the same key checks, duplicates refused, at most
the account's limit). Removing a key changes no server: servers keep the keys they were made with."""

from __future__ import annotations

from typing import Any

from flask import g
from marshmallow import EXCLUDE, Schema, fields, validate

from app.blueprints.api.base import actor, api_blueprint, idempotent
from app.blueprints.api.ids import OpaqueId
from app.blueprints.api.naming import camel_fields
from app.models import SshKey
from app.selectors.ssh_keys import customer_keys
from app.services import ssh_keys as service

blp = api_blueprint("ssh_keys", __name__, url_prefix="/ssh-keys",
                    description="The SSH public keys an order can give its servers.")


class AddKeySchema(Schema):
    class Meta:
        unknown = EXCLUDE  # fields this API does not know are ignored

    publicKey = fields.String(required=True, validate=validate.Length(min=1, max=20_000),
                              metadata={"description": "one line of an OpenSSH .pub file: ed25519, ecdsa or RSA "
                                                       "of 2048 bits and more"})
    name = fields.String(load_default="", metadata={"description": "defaults to the key's comment"})
    default = fields.Boolean(load_default=True, metadata={"description": "preselected for new orders"})


class KeySchema(Schema):
    id = OpaqueId("ssh_key", required=True)
    name = fields.String(required=True)
    type = fields.String(attribute="key_type", required=True, metadata={"example": "ssh-ed25519"})
    bits = fields.Integer(required=True)
    fingerprint = fields.String(required=True, metadata={"example": "SHA256:..."})
    publicKey = fields.String(attribute="public_key", required=True)
    default = fields.Boolean(attribute="is_default", required=True)
    createdAt = fields.AwareDateTime(attribute="created_at", required=True)


class KeyListSchema(Schema):
    data = fields.List(fields.Nested(KeySchema), required=True)


@blp.route("")
@blp.response(200, KeyListSchema)
def list_keys() -> dict[str, Any]:
    """The token's user's keys by name (an account holds a few dozen at most: not paged)."""
    return {"data": customer_keys(g.tenant, g.api_user)}


@blp.route("", methods=["POST"])
@idempotent
@blp.arguments(AddKeySchema)
@blp.response(201, KeySchema)
@blp.doc(parameters=[{"in": "header", "name": "Idempotency-Key", "required": True, "schema": {"type": "string"},
                      "description": "a new one per key; a retry with the same one and body is answered as the "
                                     "first"}])
def add_key(body: dict[str, Any]) -> SshKey:
    """Add a public key. A key that is not acceptable, one the account has already, or one too many: 422
    naming `publicKey` (or `name`)."""
    with camel_fields():
        return service.add_key(tenant=g.tenant, actor=actor(), public_key=body["publicKey"], name=body["name"],
                               default=body["default"])


@blp.route("/<opaque(kind='ssh_key'):key_id>", methods=["DELETE"])
@blp.response(204)
def remove_key(key_id: int) -> None:
    """Remove one of the token's user's keys (servers made with it keep it)."""
    service.remove_key(tenant=g.tenant, actor=actor(), key_id=key_id)
