"""A customer deletes their account; some weeks later its personal data is purged, exactly once.

Deleting, in one transaction: every subscription not canceled yet ends at once through the lifecycle (its servers
are shut down, kept for the tenant's retention, then deleted), the account is disabled and dated, every session
ends (support's impersonations of the customer too), and the customer is told at the address they had. The
address stays taken until the purge.

Purging (the `account-purge` job): name, email, password, billing profile, SSH keys, links, sessions, and the
addresses and bodies of the emails logged for them are gone; the subscriptions, their charges and their history
stay, and name only "Deleted account".
"""

from __future__ import annotations

import logging

from sqlalchemy import delete, func, select, update

from app.clock import now
from app.domain.accounts import NO_PASSWORD, PURGED_NAME, purge_delay, purged_email
from app.domain.notifications import EmailStatus, Event
from app.domain.policy import Do
from app.domain.subscriptions import Action, SubscriptionStatus
from app.extensions import db
from app.models import (
    AccountToken,
    CustomerProfile,
    EmailMessage,
    SshKey,
    Subscription,
    Tenant,
    TenantLike,
    User,
    UserSession,
)
from app.services import lifecycle
from app.services.accounts import end_every_session
from app.services.actors import Actor
from app.services.errors import Conflict, Forbidden, InvalidInput
from app.services.notifications import notify
from app.services.passwords import verify_password

log = logging.getLogger(__name__)

NOT_WHILE_IMPERSONATING = ("Support staff cannot delete a customer's account while impersonating them. Only the "
                           "customer can, logged in as themselves.")
REASON = "The customer deleted their account."


def delete_account(*, tenant: TenantLike, actor: Actor, password: str, purge_days: int) -> User:
    """Delete `actor.user`'s account, who confirms with their password (see the module docstring).

    The personal data is purged after `purge_days` (ACCOUNT_PURGE_DAYS), and never before the tenant's
    retention has deleted the servers. Refused (Forbidden) while support impersonates the customer, InvalidInput
    (field "password") for a wrong password, Conflict when it was deleted in the meantime or a subscription
    changed under it; nothing changes when refused.
    """
    if actor.impersonator is not None:
        log.warning("refused while impersonating: delete account",
                    extra={"user_id": actor.user_id, "impersonator_id": actor.impersonator_id})
        raise Forbidden(NOT_WHILE_IMPERSONATING)
    user = actor.user
    assert user is not None and user.tenant_id == tenant.id
    if not verify_password(user.password_hash, password):
        log.warning("account deletion refused: wrong password", extra={"user_id": user.id})
        raise InvalidInput("Your password is not right.", field="password")
    try:
        moment = now()
        brand = db.session.get(Tenant, tenant.id)
        purge_at = moment + purge_delay(purge_days, brand.retention_days if brand else 0)
        claimed = db.session.execute(  # of two deletions racing, one goes on
            update(User).where(User.id == user.id, User.deleted_at.is_(None))
            .values(is_active=False, deleted_at=moment, purge_at=purge_at)
            .execution_options(synchronize_session=False)
        ).rowcount
        if claimed != 1:
            raise Conflict("This account is deleted already.")
        ended = [_end(tenant, actor, subscription_id) for subscription_id in _live_subscriptions(user)]
        end_every_session(user)
        db.session.refresh(user)
        notify(Event.ACCOUNT_DELETED, user=user, purge_at=purge_at, subscriptions=len(ended))
    except Exception:
        db.session.rollback()
        raise
    lifecycle.commit()
    log.info("account deleted, %s subscriptions ended, purge on %s", len(ended), purge_at.date(),
             extra={"tenant": tenant.slug, "user_id": user.id})
    return user


def _live_subscriptions(user: User) -> list[int]:
    return list(db.session.scalars(select(Subscription.id).where(
        Subscription.tenant_id == user.tenant_id, Subscription.user_id == user.id,
        Subscription.status != SubscriptionStatus.CANCELED).order_by(Subscription.id)))


def _end(tenant: TenantLike, actor: Actor, subscription_id: int) -> int:
    subscription = lifecycle.lock(tenant, subscription_id)
    actor.may(Do.CANCEL, subscription)
    lifecycle.apply(subscription, Action.TERMINATE, actor=actor, reason=REASON, event="account_deleted")
    return subscription.id


# --- the purge (the `account-purge` job) --------------------------------------------------------------------

def purge_due(limit: int = 500) -> int:
    """Purge the personal data of every deleted account whose purge date has come; returns how many.

    Exactly once, also when two run at once: each account is claimed by a conditional UPDATE (`purged_at IS
    NULL`) and purged in the same transaction; a second run finds nothing left.
    """
    ids = list(db.session.scalars(
        select(User.id).where(User.purge_at <= now(), User.purged_at.is_(None), User.deleted_at.is_not(None))
        .order_by(User.purge_at).limit(limit)))
    db.session.rollback()  # end the read; each account is purged in a transaction of its own
    return sum(_purge(user_id) for user_id in ids)


def _purge(user_id: int) -> int:
    moment = now()
    placeholder = purged_email(user_id)
    claimed = db.session.execute(
        update(User).where(User.id == user_id, User.purged_at.is_(None), User.deleted_at.is_not(None),
                           User.purge_at <= moment)
        .values(purged_at=moment, name=PURGED_NAME, email=placeholder, password_hash=NO_PASSWORD, is_active=False,
                email_opt_outs=[])
        .execution_options(synchronize_session=False)
    ).rowcount
    if claimed != 1:  # purged by another run in the meantime
        db.session.rollback()
        return 0
    for model in (CustomerProfile, SshKey, AccountToken, UserSession):
        db.session.execute(delete(model).where(model.user_id == user_id))
    logged = EmailMessage.user_id == user_id
    db.session.execute(  # one still waiting to be sent never goes: there is nothing left to send, nor anyone
        update(EmailMessage).where(logged, EmailMessage.status == EmailStatus.QUEUED)
        .values(status=EmailStatus.SKIPPED, next_attempt_at=None).execution_options(synchronize_session=False))
    db.session.execute(
        update(EmailMessage).where(logged)
        .values(to_address=placeholder, text_body=None, html_body=None,
                body_purged_at=func.coalesce(EmailMessage.body_purged_at, moment))
        .execution_options(synchronize_session=False))
    db.session.commit()
    log.info("account purged", extra={"user_id": user_id})
    return 1
