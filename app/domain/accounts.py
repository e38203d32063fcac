"""Vocabulary and rules of user accounts."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from enum import StrEnum

from app.domain.subscriptions import format_day

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


# --- links sent by email, and the account's life ------------------------------------------------------------

RESET_LINK_LIFETIME = timedelta(hours=1)
VERIFY_LINK_LIFETIME = timedelta(hours=24)
LINK_SECRET_MAX_LENGTH = 100  # what we issue is 43 characters; anything much longer is not ours


def link_lifetime(purpose: TokenPurpose) -> timedelta:
    """How long a link of `purpose` works: a password reset briefly, an address confirmation for a day."""
    return RESET_LINK_LIFETIME if purpose is TokenPurpose.RESET_PASSWORD else VERIFY_LINK_LIFETIME


def new_link_secret() -> str:
    """The secret part of a link sent by email (256 random bits, URL-safe). Only its hash is stored."""
    return secrets.token_urlsafe(32)


def link_secret_hash(secret: str) -> str:
    """What is stored of a link's secret: its SHA-256, in hex. A lookup by hash reveals nothing by timing."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def purged_email(user_id: int) -> str:
    """The address a purged account keeps: unique, and never deliverable (`.invalid`, RFC 2606)."""
    return f"deleted-{user_id}@invalid"


PURGED_NAME = "Deleted account"
NO_PASSWORD = "!"  # noqa: S105  (what a purged account keeps of its password hash: no password matches it)


def purge_delay(purge_days: int, retention_days: int) -> timedelta:
    """How long a deleted account's personal data is kept: the configured period, and at least the tenant's
    retention, so its servers are gone (and the customer told) before the data that names them."""
    return timedelta(days=max(purge_days, retention_days))


class AccountState(StrEnum):
    ACTIVE = "active"
    UNCONFIRMED = "unconfirmed"  # registered, the address not confirmed yet: cannot log in
    DISABLED = "disabled"  # by the tenant's admins
    DELETED = "deleted"  # by the customer; personal data kept until purge_at
    PURGED = "purged"  # personal data gone; subscriptions and their history stay


def account_state(*, is_active: bool, email_verified: bool, deleted: bool, purged: bool) -> AccountState:
    """Where an account stands, as staff see it."""
    if purged:
        return AccountState.PURGED
    if deleted:
        return AccountState.DELETED
    if not is_active:
        return AccountState.DISABLED
    return AccountState.ACTIVE if email_verified else AccountState.UNCONFIRMED


def account_state_label(state: AccountState, purge_at: datetime | None = None) -> str:
    """"What staff read: "Deleted, purge on 14 April 2026", "Deleted, purged", "Email not confirmed"..."""
    if state is AccountState.DELETED:
        return f"Deleted, purge on {format_day(purge_at)}" if purge_at else "Deleted"
    return {AccountState.ACTIVE: "Active", AccountState.UNCONFIRMED: "Email not confirmed",
            AccountState.DISABLED: "Disabled", AccountState.PURGED: "Deleted, purged"}[state]


class AccountStanding:
    """`state` and `state_label` for anything that carries an account's `is_active`, `email_verified_at`,
    `deleted_at`, `purge_at` and `purged_at`: the user row, and the plain rows staff lists read."""

    @property
    def state(self) -> AccountState:
        """Active, email not confirmed, disabled, deleted or purged."""
        return account_state(is_active=self.is_active, email_verified=self.email_verified_at is not None,  # type: ignore[attr-defined]
                             deleted=self.deleted_at is not None, purged=self.purged_at is not None)  # type: ignore[attr-defined]

    @property
    def state_label(self) -> str:
        """As staff read it: "Deleted, purge on 14 April 2026"."""
        return account_state_label(self.state, self.purge_at)  # type: ignore[attr-defined]
