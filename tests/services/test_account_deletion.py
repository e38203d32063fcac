"""Deleting an account (app/services/deletion.py): everything ends at once; the purge comes later, exactly once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from app.domain.accounts import AccountState, TokenPurpose
from app.domain.notifications import EmailStatus, Event
from app.domain.subscriptions import ItemStatus, SubscriptionStatus
from app.extensions import db
from app.models import (
    AccountToken,
    CustomerProfile,
    EmailMessage,
    EndReason,
    Impersonation,
    SshKey,
    Subscription,
    SubscriptionEvent,
    User,
    UserSession,
)
from app.services import account_links, accounts, deletion, impersonation
from app.services.actors import Actor
from app.services.errors import AuthenticationFailed, Conflict, Forbidden, InvalidInput
from app.services.notifications import notify
from app.services.passwords import verify_password
from app.services.sessions import add_session
from tests import factories
from tests.services.conftest import count, items_of

PURGE_DAYS = 30


def delete(tenant, user, password=factories.PASSWORD, **actor):  # type: ignore[no-untyped-def]
    return deletion.delete_account(tenant=tenant, actor=Actor(user, **actor), password=password,
                                   purge_days=PURGE_DAYS)


def reloaded(model, row):  # type: ignore[no-untyped-def]
    db.session.expire_all()
    return db.session.get(model, row.id)


def open_sessions(user: User) -> int:
    return count(UserSession, UserSession.user_id == user.id, UserSession.revoked_at.is_(None))


@pytest.fixture
def others(tenant, customer, plan):  # type: ignore[no-untyped-def]
    """The customer's subscriptions in every other status, and one of another customer."""
    made = {status: factories.subscription(tenant, customer, plan, status=status)
            for status in (SubscriptionStatus.PENDING_CANCEL, SubscriptionStatus.SUSPENDED,
                           SubscriptionStatus.PENDING_BACKORDER, SubscriptionStatus.CANCELED)}
    made[SubscriptionStatus.PENDING_CANCEL].effective_at = made[SubscriptionStatus.PENDING_CANCEL].current_period_end
    made[SubscriptionStatus.SUSPENDED].effective_at = made[SubscriptionStatus.SUSPENDED].current_period_end
    db.session.commit()
    stranger = factories.user(tenant, email="robin@example.com")
    return made, factories.subscription(tenant, stranger, plan)


def test_every_subscription_ends_at_once_whatever_its_plan(tenant, customer, active_subscription, others, clock):
    made, strangers = others
    delete(tenant, customer)

    fresh = reloaded(Subscription, active_subscription)
    assert fresh.status is SubscriptionStatus.CANCELED and fresh.canceled_at == clock.now()
    assert fresh.servers_delete_at == clock.now() + timedelta(days=7)  # the tenant's retention
    [item] = items_of(fresh)
    assert item.status is ItemStatus.DECOMMISSIONING  # the end of life follows (shut down, kept, deleted)
    for status, subscription in made.items():
        assert reloaded(Subscription, subscription).status is SubscriptionStatus.CANCELED, status
    assert reloaded(Subscription, strangers).status is SubscriptionStatus.ACTIVE
    event = db.session.scalar(select(SubscriptionEvent).where(
        SubscriptionEvent.subscription_id == active_subscription.id, SubscriptionEvent.kind == "account_deleted"))
    assert (event.actor_id, event.from_status, event.to_status) == (customer.id, "active", "canceled")
    assert event.reason == "The customer deleted their account."
    assert count(SubscriptionEvent, SubscriptionEvent.subscription_id == made[SubscriptionStatus.CANCELED].id,
                 SubscriptionEvent.kind == "account_deleted") == 0


def test_the_account_is_disabled_dated_and_logged_out_everywhere(tenant, customer, support, clock):
    for _ in range(2):
        add_session(user=customer, remote_addr=None, user_agent=None)
    db.session.commit()
    assert open_sessions(customer) == 2
    delete(tenant, customer)

    user = reloaded(User, customer)
    assert not user.is_active and user.deleted_at == clock.now()
    assert user.purge_at == clock.now() + timedelta(days=PURGE_DAYS)
    assert user.state is AccountState.DELETED and user.state_label == "Deleted, purge on 14 April 2026"
    assert open_sessions(customer) == 0
    with pytest.raises(AuthenticationFailed, match=r"Email or password is not right\."):
        accounts.log_in(tenant=tenant, email=customer.email, password=factories.PASSWORD, remote_addr=None,
                        user_agent=None)


def test_supports_impersonation_elsewhere_is_closed(tenant, customer, support):
    add_session(user=support, remote_addr=None, user_agent=None)
    db.session.commit()
    impersonation.start(tenant=tenant, actor=Actor(support), customer_id=customer.id, reason="Ticket #1: help",
                        minutes=60, remote_addr=None, user_agent=None)
    delete(tenant, customer)
    record = db.session.scalar(select(Impersonation))
    db.session.refresh(record)
    assert record.end_reason is EndReason.SESSION_ENDED and open_sessions(customer) == 0


def test_the_customer_is_told_at_the_address_they_had(app, tenant, customer, active_subscription):
    delete(tenant, customer)
    message = db.session.scalar(select(EmailMessage).where(EmailMessage.event == Event.ACCOUNT_DELETED.value))
    assert message.to_address == "casey@example.com"
    [sent] = [m for m in app.extensions["mailman"].outbox if m.subject == "Your Nimbus Test account was deleted"]
    assert "1 subscription was canceled at once" in sent.body and "14 Apr 2026" in sent.body


def test_the_purge_waits_at_least_the_tenants_retention(tenant, customer, clock):
    tenant.retention_days = 45
    db.session.commit()
    delete(tenant, customer)
    assert reloaded(User, customer).purge_at == clock.now() + timedelta(days=45)


def test_a_wrong_password_changes_nothing(tenant, customer, active_subscription):
    with pytest.raises(InvalidInput, match=r"Your password is not right\."):
        delete(tenant, customer, password="not my password at all")
    assert reloaded(User, customer).deleted_at is None and reloaded(User, customer).is_active
    assert reloaded(Subscription, active_subscription).status is SubscriptionStatus.ACTIVE


def test_support_impersonating_the_customer_cannot_delete(tenant, customer, support, active_subscription):
    with pytest.raises(Forbidden, match="while impersonating"):
        delete(tenant, customer, impersonator=support)
    assert reloaded(User, customer).deleted_at is None
    assert reloaded(Subscription, active_subscription).status is SubscriptionStatus.ACTIVE


def test_deleting_twice_is_refused(tenant, customer):
    delete(tenant, customer)
    with pytest.raises(Conflict, match="deleted already"):
        delete(tenant, reloaded(User, customer))


# --- the purge --------------------------------------------------------------------------------------------

@pytest.fixture
def deleted(tenant, customer, profile, active_subscription, clock):  # type: ignore[no-untyped-def]
    """The customer, with keys, a link, a logged email and a subscription, deleted."""
    db.session.add(SshKey(tenant_id=tenant.id, user_id=customer.id, name="laptop", key_type="ssh-ed25519", bits=256,
                          public_key="ssh-ed25519 AAAA casey@laptop", fingerprint="SHA256:x", created_at=clock.now()))
    account_links.issue(user=customer, purpose=TokenPurpose.RESET_PASSWORD)
    notify(Event.PASSWORD_CHANGED, user=customer)
    db.session.commit()
    delete(tenant, customer)
    return reloaded(User, customer)


def test_nothing_is_purged_before_its_date(deleted, clock):
    clock.advance(days=PURGE_DAYS, seconds=-1)
    assert deletion.purge_due() == 0
    assert reloaded(User, deleted).email == "casey@example.com"


def test_the_purge_removes_personal_data_once_and_keeps_the_subscriptions(tenant, deleted, active_subscription,
                                                                         clock):
    waiting = db.session.scalar(select(EmailMessage).where(EmailMessage.user_id == deleted.id).limit(1))
    waiting.status, waiting.next_attempt_at = EmailStatus.QUEUED, clock.now()  # a send still being retried
    db.session.commit()
    clock.advance(days=PURGE_DAYS)
    assert deletion.purge_due() == 1

    user = reloaded(User, deleted)
    assert (user.name, user.email, user.purged_at) == ("Deleted account", f"deleted-{user.id}@invalid", clock.now())
    assert not verify_password(user.password_hash, factories.PASSWORD) and not user.is_active
    assert user.state_label == "Deleted, purged"
    for model in (CustomerProfile, SshKey, AccountToken, UserSession):
        assert count(model, model.user_id == user.id) == 0, model
    messages = list(db.session.scalars(select(EmailMessage).where(EmailMessage.user_id == user.id)))
    assert messages and all(m.to_address == f"deleted-{user.id}@invalid" and m.text_body is None
                            and m.html_body is None and m.body_purged_at is not None for m in messages)
    assert reloaded(EmailMessage, waiting).status is EmailStatus.SKIPPED  # never sent to the placeholder
    assert reloaded(Subscription, active_subscription).user_id == user.id  # the history stays, anonymised
    assert count(SubscriptionEvent, SubscriptionEvent.subscription_id == active_subscription.id) > 0

    assert deletion.purge_due() == 0  # a second run finds nothing
    clock.advance(days=400)
    assert deletion.purge_due() == 0
    assert reloaded(User, deleted).purged_at == user.purged_at


def test_after_the_purge_the_address_can_register_again(tenant, deleted, clock):
    assert accounts.register_customer(tenant=tenant, name="Casey Again", email="casey@example.com",
                                      password="a brand new passphrase") is None  # still taken before the purge
    clock.advance(days=PURGE_DAYS)
    deletion.purge_due()
    again = accounts.register_customer(tenant=tenant, name="Casey Again", email="casey@example.com",
                                       password="a brand new passphrase")
    assert again is not None and again.id != deleted.id and again.email_verified_at is None


def test_no_email_goes_to_a_purged_account(tenant, deleted, clock):
    clock.advance(days=PURGE_DAYS)
    deletion.purge_due()
    message = notify(Event.PASSWORD_CHANGED, user=reloaded(User, deleted))
    assert message.status.value == "skipped"
