"""Account races on PostgreSQL: one reset link in several tabs at once, two purge runs at once (one winner each).

Built like tests/services/test_races.py: an app of its own on the same database, rows committed for real in a
tenant of its own, deleted at the end.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy import delete, select

from app.clock import now
from app.domain.accounts import TokenPurpose
from app.extensions import db
from app.models import Tenant, User
from app.services import account_links, deletion, recovery
from app.services.errors import NotFound
from app.services.passwords import verify_password
from tests import factories
from tests.services.test_races import TEST_DATABASE_URL, at_once, race_app  # noqa: F401  (race_app: a fixture)

pytestmark = [
    pytest.mark.postgres_only,
    pytest.mark.skipif(not TEST_DATABASE_URL.startswith(("postgres://", "postgresql")),
                       reason="needs PostgreSQL (TEST_DATABASE_URL): row locks and real concurrency"),
]

TABS = 6


@pytest.fixture
def account(race_app: Flask) -> Iterator[tuple[int, int]]:  # noqa: F811
    """(tenant id, user id) of a customer committed for real."""
    with race_app.app_context():
        tenant = factories.tenant(slug=f"race-{uuid.uuid4().hex[:12]}", name="Race Hosting")
        user = factories.user(tenant, email="racer@example.com", name="Rae Racer")
        ids = (tenant.id, user.id)
    try:
        yield ids
    finally:
        with race_app.app_context():
            db.session.execute(delete(Tenant).where(Tenant.id == ids[0]))
            db.session.commit()


def test_one_reset_link_in_several_tabs_at_once_sets_one_password(race_app, account):  # noqa: F811
    tenant_id, user_id = account
    with race_app.app_context():
        secret = account_links.issue(user=db.session.get(User, user_id), purpose=TokenPurpose.RESET_PASSWORD)
        db.session.commit()

    def reset(index: int) -> str:
        try:
            recovery.reset_password(tenant=db.session.get(Tenant, tenant_id), secret=secret,
                                    password=f"tab number {index} password", remote_addr=None, user_agent=None)
        except NotFound:
            return "refused"
        return f"tab number {index} password"

    results = at_once(race_app, TABS, reset)
    winners = [result for result in results if result != "refused"]
    assert len(winners) == 1, results
    with race_app.app_context():
        assert verify_password(db.session.get(User, user_id).password_hash, winners[0])


def test_two_purge_runs_at_once_purge_an_account_once(race_app, account):  # noqa: F811
    _, user_id = account
    with race_app.app_context():
        user = db.session.get(User, user_id)
        user.is_active, user.deleted_at, user.purge_at = False, now() - timedelta(days=31), now() - timedelta(days=1)
        db.session.commit()

    results = at_once(race_app, 2, lambda _: deletion._purge(user_id))

    assert sorted(results) == [0, 1]
    with race_app.app_context():
        assert db.session.scalar(select(User.email).where(User.id == user_id)) == f"deleted-{user_id}@invalid"
