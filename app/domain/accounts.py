"""Vocabulary and rules of user accounts."""

from __future__ import annotations

from enum import StrEnum

PASSWORD_MIN_LENGTH = 12
PASSWORD_MAX_LENGTH = 1024


class Role(StrEnum):
    CUSTOMER = "customer"
    TENANT_ADMIN = "tenant_admin"
    SUPPORT = "support"

    @property
    def label(self) -> str:
        return {"customer": "Customer", "tenant_admin": "Tenant admin", "support": "Support"}[self.value]


def normalize_email(email: str) -> str:
    """Emails compare case-insensitively and without surrounding blanks."""
    return email.strip().lower()


def password_problem(password: str) -> str | None:
    """Why a new password is refused, or None. The password is taken whole: never stripped."""
    if len(password) < PASSWORD_MIN_LENGTH:
        return f"Use at least {PASSWORD_MIN_LENGTH} characters."
    if len(password) > PASSWORD_MAX_LENGTH:
        return f"Use at most {PASSWORD_MAX_LENGTH} characters."
    return None


class TokenPurpose(StrEnum):
    """What a link sent by email lets its holder do, once."""

    RESET_PASSWORD = "reset_password"  # noqa: S105 (a purpose, not a password)
    VERIFY_EMAIL = "verify_email"  # confirm the address given at registration, or a new one (email change)
