"""Password hashing with Argon2id (argon2-cffi); parameters come from the app config."""

from __future__ import annotations

from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app

Params = tuple[tuple[str, int], ...]


def _params() -> Params:
    return tuple(sorted((current_app.config.get("ARGON2_PARAMETERS") or {}).items()))


@cache
def _hasher(params: Params) -> PasswordHasher:
    return PasswordHasher(**dict(params))


@cache
def _dummy_hash(params: Params) -> str:
    return _hasher(params).hash("not anyone's password")


def hash_password(password: str) -> str:
    return _hasher(_params()).hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher(_params()).verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def burn_verification(password: str) -> None:
    """Spend the time of one verification, so an unknown email answers as slowly as a wrong password."""
    verify_password(_dummy_hash(_params()), password)
