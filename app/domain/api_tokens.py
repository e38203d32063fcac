"""Personal API tokens as text: their shape, checksum and scopes (pure rules, no database).

A token reads `ptk_` + a 12-character lookup id + a 32-character secret + a 6-character checksum, all in
base62. The prefix makes a leaked token recognisable to secret scanners; the checksum (CRC-32 of everything
before it) lets the portal refuse a mistyped token without a database read; the lookup id finds the row,
and only the SHA-256 of the whole token is stored, so the database never holds a usable secret.
"""

from __future__ import annotations

import hashlib
import secrets
import zlib
from enum import StrEnum
from typing import Final

PREFIX: Final = "ptk_"
ALPHABET: Final = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
LOOKUP_LENGTH: Final = 12
SECRET_LENGTH: Final = 32
CHECKSUM_LENGTH: Final = 6
TOKEN_LENGTH: Final = len(PREFIX) + LOOKUP_LENGTH + SECRET_LENGTH + CHECKSUM_LENGTH
NAME_MAX_LENGTH: Final = 100
EXPIRY_DAYS: Final = (7, 30, 90, 365)  # the choices offered; a token never lives longer than a year


class Scope(StrEnum):
    READ = "read"  # GET endpoints
    WRITE = "write"  # endpoints that change something; implies read
    ADMIN = "admin"  # the tenant administration endpoints; tenant admins only

    @property
    def label(self) -> str:
        return {Scope.READ: "Read", Scope.WRITE: "Read and write", Scope.ADMIN: "Administration"}[self]


def granted(scopes: frozenset[Scope], needed: Scope) -> bool:
    """Whether a token with `scopes` may call an endpoint needing `needed` (write includes read)."""
    return needed in scopes or (needed is Scope.READ and Scope.WRITE in scopes)


def parse_scopes(text: str) -> frozenset[Scope]:
    """The stored form (space-separated) back to scopes; unknown words are dropped."""
    return frozenset(Scope(word) for word in text.split() if word in Scope._value2member_map_)


def format_scopes(scopes: frozenset[Scope]) -> str:
    return " ".join(scope.value for scope in Scope if scope in scopes)


def _base62(number: int, length: int) -> str:
    digits = []
    for _ in range(length):
        number, digit = divmod(number, 62)
        digits.append(ALPHABET[digit])
    return "".join(reversed(digits))


def checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode()), CHECKSUM_LENGTH)


def new_token() -> tuple[str, str]:
    """A fresh token and its lookup id."""
    lookup = "".join(secrets.choice(ALPHABET) for _ in range(LOOKUP_LENGTH))
    secret = "".join(secrets.choice(ALPHABET) for _ in range(SECRET_LENGTH))
    body = PREFIX + lookup + secret
    return body + checksum(body), lookup


def lookup_of(token: str) -> str | None:
    """The lookup id of a well-formed token whose checksum matches, else None (a typo, or not a token)."""
    if len(token) != TOKEN_LENGTH or not token.startswith(PREFIX):
        return None
    rest = token[len(PREFIX):]
    if any(char not in ALPHABET for char in rest):
        return None
    body, check = token[:-CHECKSUM_LENGTH], token[-CHECKSUM_LENGTH:]
    if checksum(body) != check:
        return None
    return rest[:LOOKUP_LENGTH]


def token_hash(token: str) -> str:
    """What is stored: the token has 190 random bits, so a fast hash is enough (no password stretching)."""
    return hashlib.sha256(token.encode()).hexdigest()


def shown_prefix(lookup: str) -> str:
    """What lists show of a token: enough to recognise it, nothing to use."""
    return PREFIX + lookup
