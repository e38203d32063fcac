"""Opaque, stable ids: `sub_5kq2x0m` instead of a row's integer id.

An integer id says how many rows came before it, across every tenant. The API shows instead a keyed,
reversible permutation of it: a four-round Feistel network over 32 bits, its round keys derived from the
app's SECRET_KEY and the kind of resource, written in base32 after the kind's prefix. The same row always
has the same id (as long as SECRET_KEY stays), neighbouring rows look unrelated, and an id of one kind is
no id of another. Anything that does not decode to a possible id is simply not found (404).

Routes take them with the `opaque` converter: `<opaque(kind="sub"):subscription_id>` gives the view the
integer id; schemas use `OpaqueId("sub")`.
"""

from __future__ import annotations

import hashlib
import hmac
from functools import cache
from typing import Any, Final

from flask import current_app
from marshmallow import ValidationError, fields
from werkzeug.routing import BaseConverter, Map

from app.web.inputs import MAX_ID

# kind -> the prefix clients see; add a kind here before using it.
KINDS: Final = {"sub": "sub", "item": "itm", "plan": "pln", "ssh_key": "key", "token": "tok",
                 "usage_record": "use", "invoice": "inv", "payment_method": "crd", "customer": "cus",
                 "product": "prd", "operation": "opr", "outcome": "out", "service_type": "sty"}
_ALPHABET: Final = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford's base32, lower case
_LENGTH: Final = 7  # 35 bits hold the 32-bit block
_ROUNDS: Final = 4


@cache
def _round_keys(secret: str, kind: str) -> tuple[bytes, ...]:
    return tuple(hmac.new(secret.encode(), f"api-id:{kind}:{index}".encode(), hashlib.sha256).digest()
                 for index in range(_ROUNDS))


def _f(key: bytes, half: int) -> int:
    return int.from_bytes(hmac.new(key, half.to_bytes(2, "big"), hashlib.sha256).digest()[:2], "big")


def _keys(kind: str) -> tuple[bytes, ...]:
    return _round_keys(current_app.config["SECRET_KEY"], kind)


def encode(kind: str, number: int) -> str:
    """The opaque id of row `number` of `kind`."""
    left, right = number >> 16, number & 0xFFFF
    for key in _keys(kind):
        left, right = right, left ^ _f(key, right)
    block = (left << 16) | right
    text = "".join(_ALPHABET[(block >> (5 * index)) & 31] for index in reversed(range(_LENGTH)))
    return f"{KINDS[kind]}_{text}"


def decode(kind: str, text: str) -> int | None:
    """The row id behind `text`, or None when it is not an id of `kind`."""
    prefix, _, body = text.partition("_")
    if prefix != KINDS[kind] or len(body) != _LENGTH or any(char not in _ALPHABET for char in body):
        return None
    block = 0
    for char in body:
        block = (block << 5) | _ALPHABET.index(char)
    if block >> 32:
        return None
    left, right = block >> 16, block & 0xFFFF
    for key in reversed(_keys(kind)):
        left, right = right ^ _f(key, left), left
    number = (left << 16) | right
    return number if 0 < number <= MAX_ID else None


class OpaqueIdConverter(BaseConverter):
    """`<opaque(kind="sub"):name>`: the integer id behind an opaque one; no match (404) for anything else."""

    regex = r"[a-z]{3}_[0-9a-z]{7}"

    def __init__(self, map: Map, kind: str) -> None:
        super().__init__(map)
        self.kind = kind

    def to_python(self, value: str) -> int:
        from werkzeug.routing import ValidationError as NoMatch

        number = decode(self.kind, value)
        if number is None:
            raise NoMatch()
        return number

    def to_url(self, value: Any) -> str:
        return encode(self.kind, int(value))


class OpaqueId(fields.Field):
    """A schema field holding an integer id, shown and read as the opaque id of `kind`."""

    def __init__(self, kind: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.kind = kind
        self.metadata.setdefault("example", f"{KINDS[kind]}_0k3m9xq")

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        return None if value is None else encode(self.kind, int(value))

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        number = decode(self.kind, value) if isinstance(value, str) else None
        if number is None:
            raise ValidationError(f"Not an id of this kind (they look like {KINDS[self.kind]}_0k3m9xq).")
        return number
