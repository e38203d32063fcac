"""Support impersonation: a support user acts as a customer of their tenant, with a reason and a time limit.

Modelled on django-hijack and django-impersonate, on top of the portal's server-side sessions:

- start: the support user's current session is revoked and a NEW session is opened for the customer, linked
  to an `Impersonation` record (who, whom, reason, deadline). The web layer puts the new session's token in
  a fresh cookie, so the session id changes (RELIABILITY row 3).
- while it runs, every request of that session carries the support user behind the customer
  (`Actor.impersonator`), so every event and action is recorded with both.
- end: the record is closed exactly once with how it ended (`EndReason`), the customer session is revoked,
  and (for Stop and expiry) the support user gets a NEW session of their own.

A support user runs at most one impersonation: starting another one (say, from a second browser) closes
the previous one as "superseded" and ends its session. Every start and end is logged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import exists, func, select, update

from app.clock import now
from app.domain.accounts import Role
from app.extensions import db, writing
from app.models import EndReason, Impersonation, ImpersonationAction, Tenant, TenantLike, User, UserSession
from app.services import sessions
from app.services.actors import Actor
from app.services.errors import Conflict, Forbidden, InvalidInput, NotFound

log = logging.getLogger(__name__)

REASON_MIN_LENGTH = 3
REASON_MAX_LENGTH = 500


@dataclass(frozen=True)
class Switch:
    """The outcome of starting or ending an impersonation.

    `user` is whom the browser is logged in as from now on, carrying a new session token; None when nobody
    is (the support account was disabled in the meantime, or the impersonation ended with a logout).
    """

    impersonation: Impersonation
    user: User | None


def reason_problem(reason: str) -> str | None:
    """Why a reason (already stripped) is refused, or None."""
    if len(reason) < REASON_MIN_LENGTH:
        return f"Give a reason of at least {REASON_MIN_LENGTH} characters, for example a ticket reference."
    if len(reason) > REASON_MAX_LENGTH:
        return f"Keep the reason to at most {REASON_MAX_LENGTH} characters."
    return None


def start(*, tenant: TenantLike, actor: Actor, customer_id: int, reason: str, minutes: int,
          remote_addr: str | None, user_agent: str | None) -> Switch:
    """Let the support user `actor.user` act as the customer `customer_id` of `tenant` for `minutes`.

    Refused, with nothing changed: anyone but an active support user of `tenant` (Forbidden), while already
    impersonating (Forbidden), a reason shorter than 3 or longer than 500 characters once trimmed
    (InvalidInput, field "reason"), an id that is not a user of `tenant` (NotFound), a tenant admin, a
    support user, oneself or a disabled account (Forbidden), and a session that is no longer open, such as
    the second of two simultaneous starts (Conflict).

    The support user's session (`actor.user.session_token`) is revoked; the returned user is the customer
    with the token of a new session linked to the new record.
    """
    support = _support_user(tenant, actor)
    reason = (reason or "").strip()
    if problem := reason_problem(reason):
        raise InvalidInput(problem, field="reason")
    customer = _target(tenant, support, customer_id)
    moment = now()
    # The support session is the lock: of two starts racing on it, one revokes it, the other finds it gone.
    if not _revoke(UserSession.token == support.session_token):
        db.session.rollback()
        raise Conflict("Your session has changed in the meantime. Reload the page and try again.")
    superseded = _close_open_of(support, moment)
    record = Impersonation(tenant_id=tenant.id, support_user_id=support.id, customer_id=customer.id, reason=reason,
                           started_at=moment, ends_at=moment + timedelta(minutes=minutes),
                           remote_addr=(remote_addr or "")[:45] or None)
    db.session.add(record)
    db.session.flush()
    sessions.add_session(user=customer, remote_addr=remote_addr, user_agent=user_agent, impersonation_id=record.id)
    db.session.commit()
    log.info("impersonation %s started: support user %s as customer %s until %s, reason %r (superseded: %s)",
             record.id, support.id, customer.id, record.ends_at.isoformat(), reason, superseded or "none",
             extra={"tenant": tenant.slug, "impersonation_id": record.id})
    return Switch(record, customer)


def stop(*, tenant: TenantLike, session_token: str, remote_addr: str | None, user_agent: str | None) -> Switch:
    """The support user ends the impersonation running in `session_token` and gets a session of their own.

    NotFound when no impersonation of `tenant` runs in that session (already ended, e.g. in another tab).
    """
    return _end(tenant, session_token, EndReason.STOPPED, remote_addr, user_agent)


def expire(*, tenant: TenantLike, session_token: str, remote_addr: str | None, user_agent: str | None) -> Switch:
    """Close the impersonation of `session_token` whose deadline has passed; the support user gets a session.

    The record's `ended_at` is its deadline: no request acted as the customer after it.
    """
    return _end(tenant, session_token, EndReason.EXPIRED, remote_addr, user_agent)


def end_with_session(*, session_token: str) -> Impersonation | None:
    """The session `session_token` is being logged out: close the impersonation running in it ("logged_out").

    Leaves the commit to the caller (accounts.log_out), so the record and the session end together.
    """
    record = db.session.scalar(_running().where(UserSession.token == session_token))
    if record is None:
        return None
    if _close(record, EndReason.LOGGED_OUT, now()):
        _log_end(record)
    return record


def close_all_of(*, customer_id: int) -> int:
    """Every session of the customer is being ended (password reset, account deleted): close each open
    impersonation of them ("session_ended") and revoke its session. Returns how many; the caller commits."""
    closed = 0
    for record in db.session.scalars(select(Impersonation).where(Impersonation.customer_id == customer_id,
                                                                 Impersonation.ended_at.is_(None))):
        if _close(record, EndReason.SESSION_ENDED, now()):
            _log_end(record)
            closed += 1
    return closed


def close_if_session_gone(*, tenant: TenantLike, impersonation_id: int) -> Impersonation | None:
    """An impersonating browser came back without a usable session: close its record if it is still open.

    That happens when the session was ended from elsewhere (the customer disabled, all sessions ended) or
    when the deadline passed and nobody asked since. A record whose session still works is left alone.
    """
    record = db.session.scalar(select(Impersonation).where(Impersonation.id == impersonation_id,
                                                           Impersonation.tenant_id == tenant.id))
    if record is None or not record.is_open:
        return None
    usable = db.session.scalar(select(exists().where(
        UserSession.impersonation_id == record.id, UserSession.revoked_at.is_(None),
        UserSession.user_id == User.id, User.is_active.is_(True))))
    moment = now()
    if usable and not record.is_over(moment):
        return None
    how = EndReason.EXPIRED if record.is_over(moment) else EndReason.SESSION_ENDED
    if _close(record, how, moment):
        db.session.commit()
        _log_end(record)
    return record


def close_all_finished() -> int:
    """`close_finished` for every tenant (the periodic job), so the audit trail closes on time."""
    return sum(close_finished(tenant=tenant) for tenant in db.session.scalars(select(Tenant)))


def close_finished(*, tenant: TenantLike) -> int:
    """Close every open impersonation of `tenant` that is over although nobody asked since; returns how many.

    Past its deadline: "expired", ended at the deadline (its session is revoked now). Its session ended
    from elsewhere (the customer disabled, their sessions ended): "session_ended", ended when the session
    did. The next request of such a browser would close it too; this keeps the audit trail right for the
    browsers that never come back. Set-based: a few statements whatever the number of records.
    """
    moment = now()
    is_open = (Impersonation.tenant_id == tenant.id, Impersonation.ended_at.is_(None))
    if db.session.scalar(select(Impersonation.id).where(*is_open).limit(1)) is None:
        return 0  # the usual case: one read, and no write for the audit page to wait on
    with writing():  # the admin's audit page (a GET) closes them too
        overdue = select(Impersonation.id).where(*is_open, Impersonation.ends_at <= moment).scalar_subquery()
        _revoke(UserSession.impersonation_id.in_(overdue))
        expired = db.session.execute(
            update(Impersonation).where(*is_open, Impersonation.ends_at <= moment)
            .values(ended_at=Impersonation.ends_at, end_reason=EndReason.EXPIRED)
            .execution_options(synchronize_session=False)
        ).rowcount
        live = exists().where(UserSession.impersonation_id == Impersonation.id, UserSession.revoked_at.is_(None))
        session_end = (select(func.max(UserSession.revoked_at)).where(UserSession.impersonation_id == Impersonation.id)
                       .scalar_subquery())
        gone = db.session.execute(
            update(Impersonation).where(*is_open, ~live)
            .values(ended_at=func.coalesce(session_end, moment), end_reason=EndReason.SESSION_ENDED)
            .execution_options(synchronize_session=False)
        ).rowcount
        db.session.commit()
    if expired or gone:
        log.info("closed %s expired and %s session-ended impersonations", expired, gone,
                 extra={"tenant": tenant.slug})
    return expired + gone


def record_action(*, impersonation_id: int, method: str, path: str, endpoint: str | None, status_code: int
                  ) -> None:
    """Append one request made while impersonating to the audit trail (no form values: they may be secrets).
    Every request is recorded, those that only read (GETs) too: this write is declared (`writing`)."""
    with writing():
        db.session.add(ImpersonationAction(impersonation_id=impersonation_id, at=now(), method=method[:10],
                                           path=path[:500], endpoint=(endpoint or "")[:100] or None,
                                           status_code=status_code))
        db.session.commit()


# --- rules and helpers ---------------------------------------------------------------------------------------

def _support_user(tenant: TenantLike, actor: Actor) -> User:
    user = actor.user
    if actor.impersonator is not None:
        raise Forbidden("You are already impersonating a customer. Stop that first.")
    if user.role is not Role.SUPPORT or user.tenant_id != tenant.id or not user.is_active:
        raise Forbidden("Only support staff of this portal can impersonate customers.")
    if not user.session_token:
        raise Conflict("Your session has changed in the meantime. Reload the page and try again.")
    return user


def _target(tenant: TenantLike, support: User, customer_id: int) -> User:
    customer = db.session.scalar(select(User).where(User.id == customer_id, User.tenant_id == tenant.id))
    if customer is None:
        raise NotFound("There is no such customer.")
    if customer.id == support.id:
        raise Forbidden("You cannot impersonate yourself.")
    if customer.role is Role.TENANT_ADMIN:
        raise Forbidden("Tenant admins cannot be impersonated.")
    if customer.role is not Role.CUSTOMER:
        raise Forbidden("Support staff cannot be impersonated.")
    if not customer.is_active:
        raise Forbidden("This account is disabled and cannot be impersonated.")
    return customer


def _running():  # type: ignore[no-untyped-def]
    """Open impersonations joined to the sessions they run in."""
    return (select(Impersonation).join(UserSession, UserSession.impersonation_id == Impersonation.id)
            .where(Impersonation.ended_at.is_(None), UserSession.revoked_at.is_(None)))


def _end(tenant: TenantLike, session_token: str, how: EndReason, remote_addr: str | None, user_agent: str | None
         ) -> Switch:
    record = db.session.scalar(_running().where(UserSession.token == session_token,
                                                Impersonation.tenant_id == tenant.id))
    if record is None:
        raise NotFound("This impersonation has already ended.")
    moment = now()
    if not _close(record, how, min(moment, record.ends_at) if how is EndReason.EXPIRED else moment):
        db.session.rollback()
        raise NotFound("This impersonation has already ended.")
    support = record.support_user
    back = None
    if support.is_active and support.role is Role.SUPPORT:
        back = sessions.add_session(user=support, remote_addr=remote_addr, user_agent=user_agent)
    db.session.commit()
    _log_end(record)
    return Switch(record, back)


def _close(record: Impersonation, how: EndReason, at: datetime) -> bool:
    """Close `record` once (a compare-and-set: of two closers one wins) and revoke its sessions.

    Returns False when it was closed already. The caller commits.
    """
    closed = db.session.execute(
        update(Impersonation).where(Impersonation.id == record.id, Impersonation.ended_at.is_(None))
        .values(ended_at=at, end_reason=how).execution_options(synchronize_session=False)
    ).rowcount
    if closed != 1:
        return False
    _revoke(UserSession.impersonation_id == record.id)
    db.session.expire(record, ["ended_at", "end_reason"])  # reloaded from what the UPDATE wrote
    return True


def _close_open_of(support: User, moment: datetime) -> list[int]:
    """Close the support user's other open impersonations before a new one starts; returns their ids."""
    closed = []
    for record in db.session.scalars(select(Impersonation).where(Impersonation.support_user_id == support.id,
                                                                 Impersonation.ended_at.is_(None))):
        over = record.is_over(moment)
        if _close(record, EndReason.EXPIRED if over else EndReason.SUPERSEDED, record.ends_at if over else moment):
            closed.append(record.id)
    return closed


def _revoke(*where: object) -> int:
    """Revoke the open sessions matching `where`; returns how many."""
    return db.session.execute(
        update(UserSession).where(UserSession.revoked_at.is_(None), *where).values(revoked_at=now())
        .execution_options(synchronize_session=False)
    ).rowcount


def _log_end(record: Impersonation) -> None:
    log.info("impersonation %s ended (%s): support user %s as customer %s", record.id, record.end_reason,
             record.support_user_id, record.customer_id, extra={"impersonation_id": record.id})
