"""Idempotency keys for the API's creating requests, with Stripe's semantics.

The same key with the same request gives the first answer again, without running it twice; the same key
with another request is refused; while the first request runs, a second one with its key is told so (it
must not run too). The key's row is committed before the request runs, so the unique constraint on
(user, key), not a check-then-insert, decides which of two concurrent requests runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from app.clock import now
from app.extensions import db
from app.models import IdempotencyKey, TenantLike

KEPT_FOR = timedelta(hours=24)  # after that a key may be used again (as Stripe does)


class Outcome(StrEnum):
    RUN = "run"  # a new key: run the request, then `finish`
    REPLAY = "replay"  # answered before: send `status` and `body` again
    IN_PROGRESS = "in_progress"  # the first request with this key is still running
    MISMATCH = "mismatch"  # the key was used with another request


@dataclass(frozen=True)
class Claim:
    outcome: Outcome
    row_id: int | None = None
    status: int | None = None
    body: Any = None


def claim(*, tenant: TenantLike, user_id: int, token_id: int | None, key: str, fingerprint: str) -> Claim:
    """Take `key` for this request, or say why not. Commits."""
    db.session.execute(delete(IdempotencyKey).where(IdempotencyKey.user_id == user_id, IdempotencyKey.key == key,
                                                    IdempotencyKey.created_at < now() - KEPT_FOR))
    row = IdempotencyKey(tenant_id=tenant.id, user_id=user_id, token_id=token_id, key=key, fingerprint=fingerprint,
                         created_at=now())
    db.session.add(row)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        existing = db.session.scalar(select(IdempotencyKey).where(IdempotencyKey.user_id == user_id,
                                                                  IdempotencyKey.key == key))
        if existing is None:  # released by the other request in the meantime: it failed; try again later
            return Claim(Outcome.IN_PROGRESS)
        if existing.fingerprint != fingerprint:
            return Claim(Outcome.MISMATCH)
        if existing.status is None:
            return Claim(Outcome.IN_PROGRESS)
        return Claim(Outcome.REPLAY, existing.id, existing.status, existing.body)
    return Claim(Outcome.RUN, row.id)


def finish(row_id: int, status: int, body: Any) -> None:
    """Keep the answer the request got, for the same key's retries. Commits."""
    row = db.session.get(IdempotencyKey, row_id)
    if row is not None:
        row.status, row.body = status, body
        db.session.commit()


def release(row_id: int) -> None:
    """The request failed unexpectedly: forget the key, so a retry runs it. Commits."""
    db.session.rollback()
    db.session.execute(delete(IdempotencyKey).where(IdempotencyKey.id == row_id))
    db.session.commit()
