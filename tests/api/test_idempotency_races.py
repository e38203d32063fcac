"""Idempotency keys on PostgreSQL: of requests sent at once with the same key, exactly one runs."""

from __future__ import annotations

from sqlalchemy import select

from app.extensions import db
from app.models import IdempotencyKey, Tenant
from app.services import idempotency
from tests.services.test_races import at_once, pytestmark, race_app, world  # noqa: F401  (fixtures, markers)

AT_ONCE = 8


def test_the_same_key_at_once_runs_once(race_app, world) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    def claim(_: int) -> idempotency.Outcome:
        tenant = db.session.get(Tenant, world.tenant_id)
        return idempotency.claim(tenant=tenant, user_id=world.user_id, token_id=None, key="same",
                                 fingerprint="f" * 64).outcome

    outcomes = at_once(race_app, AT_ONCE, claim)
    assert outcomes.count(idempotency.Outcome.RUN) == 1, outcomes
    assert set(outcomes) == {idempotency.Outcome.RUN, idempotency.Outcome.IN_PROGRESS}
    with race_app.app_context():
        [row] = db.session.scalars(select(IdempotencyKey).where(IdempotencyKey.user_id == world.user_id))
        idempotency.finish(row.id, 201, {"id": "sub_x"})
        tenant = db.session.get(Tenant, world.tenant_id)
        replay = idempotency.claim(tenant=tenant, user_id=world.user_id, token_id=None, key="same",
                                   fingerprint="f" * 64)
        assert (replay.outcome, replay.status, replay.body) == (idempotency.Outcome.REPLAY, 201, {"id": "sub_x"})
        other = idempotency.claim(tenant=tenant, user_id=world.user_id, token_id=None, key="same",
                                  fingerprint="0" * 64)
        assert other.outcome is idempotency.Outcome.MISMATCH
