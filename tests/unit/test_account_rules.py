"""The pure rules of accounts: links by email, the purge delay, an account's state (no app, no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.domain.accounts import (
    AccountState,
    TokenPurpose,
    account_state,
    account_state_label,
    link_lifetime,
    link_secret_hash,
    new_link_secret,
    purge_delay,
    purged_email,
)


def test_a_reset_link_lives_an_hour_and_a_confirmation_link_a_day():
    assert link_lifetime(TokenPurpose.RESET_PASSWORD) == timedelta(hours=1)
    assert link_lifetime(TokenPurpose.VERIFY_EMAIL) == timedelta(hours=24)


def test_link_secrets_are_random_url_safe_and_stored_as_their_sha256():
    first, second = new_link_secret(), new_link_secret()
    assert first != second and len(first) == 43 and first.replace("-", "").replace("_", "").isalnum()
    digest = link_secret_hash(first)
    assert len(digest) == 64 and int(digest, 16) >= 0 and first not in digest
    assert link_secret_hash(first) == digest != link_secret_hash(second)


def test_even_a_lone_surrogate_hashes_without_error():
    assert len(link_secret_hash("\udc80")) == 64


@pytest.mark.parametrize(("purge_days", "retention_days", "expected"), [(30, 7, 30), (30, 45, 45), (0, 7, 7)])
def test_the_purge_waits_for_the_tenants_retention(purge_days, retention_days, expected):
    assert purge_delay(purge_days, retention_days) == timedelta(days=expected)


def test_a_purged_account_keeps_a_unique_undeliverable_address():
    assert purged_email(42) == "deleted-42@invalid" != purged_email(43)


@pytest.mark.parametrize(
    ("facts", "state"),
    [({}, AccountState.ACTIVE),
     ({"email_verified": False}, AccountState.UNCONFIRMED),
     ({"is_active": False}, AccountState.DISABLED),
     ({"is_active": False, "deleted": True}, AccountState.DELETED),
     ({"is_active": False, "deleted": True, "purged": True}, AccountState.PURGED)],
)
def test_the_state_of_an_account(facts, state):
    values = {"is_active": True, "email_verified": True, "deleted": False, "purged": False, **facts}
    assert account_state(**values) is state


def test_what_staff_read():
    purge = datetime(2026, 4, 14, 10, 0, tzinfo=UTC)
    assert account_state_label(AccountState.DELETED, purge) == "Deleted, purge on 14 April 2026"
    assert account_state_label(AccountState.PURGED) == "Deleted, purged"
    assert account_state_label(AccountState.UNCONFIRMED) == "Email not confirmed"
