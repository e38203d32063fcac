"""Links by email and what they do (app/services/account_links.py, recovery.py, confirmation.py, accounts.py)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.domain.accounts import TokenPurpose
from app.domain.notifications import Event
from app.extensions import db
from app.models import AccountToken, EmailMessage, User
from app.selectors.accounts import pending_email_change
from app.services import account_links, accounts, notifications, recovery
from app.services.actors import Actor
from app.services.errors import Forbidden, InvalidInput, NotFound
from tests import factories


def logged(event: Event) -> list[EmailMessage]:
    return list(db.session.scalars(select(EmailMessage).where(EmailMessage.event == event.value)
                                   .order_by(EmailMessage.id)))


def test_asking_for_a_reset_does_the_same_work_for_an_unknown_address(tenant, customer, monkeypatch):
    rendered: list[str] = []
    real = notifications.render

    def counting(event, **kwargs):  # type: ignore[no-untyped-def]
        rendered.append(event.value)
        return real(event, **kwargs)

    monkeypatch.setattr(notifications, "render", counting)
    monkeypatch.setattr(recovery, "render", counting)
    recovery.request_reset(tenant=tenant, email=customer.email)
    recovery.request_reset(tenant=tenant, email="nobody@example.com")
    assert rendered == ["password_reset", "password_reset"]
    assert [m.to_address for m in logged(Event.PASSWORD_RESET)] == [customer.email]


def test_a_link_is_used_once(tenant, customer):
    secret = account_links.issue(user=customer, purpose=TokenPurpose.RESET_PASSWORD)
    db.session.commit()
    assert account_links.use(tenant=tenant, secret=secret, purpose=TokenPurpose.RESET_PASSWORD).user_id == customer.id
    db.session.commit()
    with pytest.raises(NotFound, match="invalid or has expired"):
        account_links.use(tenant=tenant, secret=secret, purpose=TokenPurpose.RESET_PASSWORD)


def test_a_link_is_good_for_its_purpose_only(tenant, customer):
    secret = account_links.issue(user=customer, purpose=TokenPurpose.VERIFY_EMAIL)
    db.session.commit()
    with pytest.raises(NotFound):
        recovery.reset_password(tenant=tenant, secret=secret, password="a long enough password", remote_addr=None,
                                user_agent=None)


def test_a_refused_password_keeps_the_link(tenant, customer):
    secret = account_links.issue(user=customer, purpose=TokenPurpose.RESET_PASSWORD)
    db.session.commit()
    with pytest.raises(InvalidInput, match="at least 12"):
        recovery.reset_password(tenant=tenant, secret=secret, password="short", remote_addr=None, user_agent=None)
    user = recovery.reset_password(tenant=tenant, secret=secret, password="a long enough password",
                                   remote_addr=None, user_agent=None)
    assert user.session_token  # logged in afresh


def test_an_email_change_to_a_taken_address_reads_the_same_and_tells_its_owner(tenant, customer):
    owner = factories.user(tenant, email="taken@example.com", name="Tara Taken")
    assert accounts.change_email(actor=Actor(customer), password=factories.PASSWORD,
                                 new_email=" Taken@Example.com") == "taken@example.com"
    assert accounts.change_email(actor=Actor(customer), password=factories.PASSWORD,
                                 new_email="free@example.com") == "free@example.com"
    [verify] = logged(Event.VERIFY_EMAIL)
    [notice] = logged(Event.ACCOUNT_EXISTS)
    assert verify.to_address == "free@example.com" and verify.user_id == customer.id
    assert notice.to_address == "taken@example.com" and notice.user_id == owner.id
    assert "move another" in notice.text_body


def test_a_pending_change_shows_for_a_taken_address_too(tenant, customer):
    factories.user(tenant, email="taken@example.com")
    accounts.change_email(actor=Actor(customer), password=factories.PASSWORD, new_email="taken@example.com")
    pending = pending_email_change(customer)
    assert pending is not None and pending.new_email == "taken@example.com"
    assert db.session.get(User, customer.id).email == "casey@example.com"


def test_an_email_change_is_refused_while_impersonating(tenant, customer, support):
    with pytest.raises(Forbidden, match="while impersonating"):
        accounts.change_email(actor=Actor(customer, impersonator=support), password=factories.PASSWORD,
                              new_email="new@example.com")
    assert db.session.scalar(select(AccountToken.id)) is None and logged(Event.VERIFY_EMAIL) == []


def test_registering_a_taken_address_creates_nothing(tenant, customer):
    assert accounts.register_customer(tenant=tenant, name="Mallory", email="CASEY@example.com",
                                      password="a long enough password") is None
    assert db.session.scalar(select(User.name).where(User.id == customer.id)) == "Casey Customer"
    [notice] = logged(Event.ACCOUNT_EXISTS)
    assert notice.user_id == customer.id and "tried to create" in notice.text_body
