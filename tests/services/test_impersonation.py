"""The impersonation service: who may act as whom, and how every impersonation ends (RELIABILITY rows 17-20)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.domain.accounts import Role
from app.extensions import db
from app.models import EndReason, Impersonation, ImpersonationAction, User, UserSession
from app.services import accounts, impersonation
from app.services.actors import Actor
from app.services.errors import Conflict, Forbidden, InvalidInput, NotFound
from app.services.passwords import verify_password
from tests import factories


def logged_in(user: User) -> User:
    """`user` with an open session, as the login machinery hands it to a view."""
    return accounts.start_session(user=user, remote_addr="127.0.0.1", user_agent="pytest")


def start(tenant, support: User, customer: User, reason: str = "Ticket #4711", minutes: int = 60,
          actor: Actor | None = None) -> impersonation.Switch:
    return impersonation.start(tenant=tenant, actor=actor or Actor(support), customer_id=customer.id, reason=reason,
                               minutes=minutes, remote_addr="10.0.0.7", user_agent="pytest")


def session_of(token: str) -> UserSession:
    db.session.expire_all()
    return db.session.get(UserSession, token)


def count_impersonations() -> int:
    return db.session.scalar(select(func.count()).select_from(Impersonation)) or 0


@pytest.fixture
def staff(support):
    return logged_in(support)


# --- row 17: who may be impersonated, by whom ----------------------------------------------------------------

def test_start_swaps_the_support_session_for_a_new_customer_session(tenant, staff, customer, clock):
    support_token = staff.session_token
    switch = start(tenant, staff, customer, reason="  Ticket #4711: order fails  ")
    record = switch.impersonation
    assert switch.user.id == customer.id and switch.user.session_token not in (None, support_token)
    assert (record.tenant_id, record.support_user_id, record.customer_id) == (tenant.id, staff.id, customer.id)
    assert record.reason == "Ticket #4711: order fails"
    assert record.started_at == clock.now() and record.ends_at == clock.now() + timedelta(minutes=60)
    assert record.ended_at is None and record.end_reason is None and record.remote_addr == "10.0.0.7"
    assert session_of(support_token).revoked_at == clock.now()
    customer_session = session_of(switch.user.session_token)
    assert customer_session.user_id == customer.id and customer_session.impersonation_id == record.id
    assert customer_session.revoked_at is None


@pytest.mark.parametrize(
    ("target", "error", "message"),
    [
        ("admin", Forbidden, "Tenant admins cannot be impersonated."),
        ("other_support", Forbidden, "Support staff cannot be impersonated."),
        ("self", Forbidden, "You cannot impersonate yourself."),
        ("inactive", Forbidden, "disabled"),
        ("foreign", NotFound, "no such customer"),
        ("nobody", NotFound, "no such customer"),
    ],
)
def test_refused_targets_change_nothing(request, tenant, other_tenant, staff, target, error, message):
    targets = {
        "admin": lambda: request.getfixturevalue("admin"),
        "other_support": lambda: factories.user(tenant, role=Role.SUPPORT, name="Other Support"),
        "self": lambda: staff,
        "inactive": lambda: factories.user(tenant, is_active=False),
        "foreign": lambda: factories.user(other_tenant, name="Foreign Customer"),
        "nobody": lambda: User(id=999_999),
    }
    with pytest.raises(error, match=message):
        start(tenant, staff, targets[target]())
    assert count_impersonations() == 0
    assert session_of(staff.session_token).revoked_at is None


@pytest.mark.parametrize("role", [Role.CUSTOMER, Role.TENANT_ADMIN])
def test_only_support_may_impersonate(tenant, customer, role):
    actor = logged_in(factories.user(tenant, role=role))
    with pytest.raises(Forbidden, match="Only support staff"):
        start(tenant, actor, customer)
    assert count_impersonations() == 0


def test_support_of_another_tenant_may_not_impersonate(tenant, other_tenant, customer):
    foreign_support = logged_in(factories.user(other_tenant, role=Role.SUPPORT))
    with pytest.raises(Forbidden):
        start(tenant, foreign_support, customer)
    assert count_impersonations() == 0


def test_never_while_already_impersonating(tenant, staff, customer):
    other = factories.user(tenant, name="Second Customer")
    switch = start(tenant, staff, customer)
    acting_as_customer = Actor(switch.user, impersonator=staff)
    with pytest.raises(Forbidden, match="already impersonating"):
        start(tenant, staff, other, actor=acting_as_customer)
    assert count_impersonations() == 1


@pytest.mark.parametrize(
    ("reason", "message"),
    [("", "at least 3"), ("  ab  ", "at least 3"), ("x" * 501, "at most 500")],
)
def test_a_reason_is_required(tenant, staff, customer, reason, message):
    with pytest.raises(InvalidInput, match=message) as refused:
        start(tenant, staff, customer, reason=reason)
    assert refused.value.field == "reason"
    assert count_impersonations() == 0
    assert session_of(staff.session_token).revoked_at is None


def test_a_second_start_on_the_same_session_is_refused(tenant, staff, customer):
    """Two starts racing on one session (a double click): the first revokes it, the second finds it gone."""
    token = staff.session_token
    start(tenant, staff, customer)
    staff.session_token = token  # the second request still carries the old cookie
    with pytest.raises(Conflict):
        start(tenant, staff, factories.user(tenant))
    assert count_impersonations() == 1


def test_a_new_start_from_another_browser_supersedes_the_running_one(tenant, support, customer, clock):
    first = start(tenant, logged_in(support), customer)
    clock.advance(minutes=5)
    second = start(tenant, logged_in(support), factories.user(tenant, name="Dana"))
    db.session.expire_all()
    old = db.session.get(Impersonation, first.impersonation.id)
    assert (old.end_reason, old.ended_at) == (EndReason.SUPERSEDED, clock.now())
    assert session_of(first.user.session_token).revoked_at is not None
    assert db.session.get(Impersonation, second.impersonation.id).ended_at is None


# --- ending ---------------------------------------------------------------------------------------------------

def test_stop_closes_the_record_and_gives_support_a_new_session(tenant, staff, customer, clock):
    switch = start(tenant, staff, customer)
    clock.advance(minutes=12)
    back = impersonation.stop(tenant=tenant, session_token=switch.user.session_token, remote_addr=None,
                              user_agent=None)
    record = back.impersonation
    assert (record.end_reason, record.ended_at) == (EndReason.STOPPED, clock.now())
    assert back.user.id == staff.id
    assert session_of(switch.user.session_token).revoked_at == clock.now()
    assert session_of(back.user.session_token).revoked_at is None
    assert session_of(back.user.session_token).impersonation_id is None
    with pytest.raises(NotFound):  # closed once, never again
        impersonation.stop(tenant=tenant, session_token=switch.user.session_token, remote_addr=None,
                           user_agent=None)


def test_expiry_closes_the_record_at_its_deadline(tenant, staff, customer, clock):
    switch = start(tenant, staff, customer, minutes=60)
    clock.advance(minutes=75)
    back = impersonation.expire(tenant=tenant, session_token=switch.user.session_token, remote_addr=None,
                                user_agent=None)
    record = back.impersonation
    assert record.end_reason is EndReason.EXPIRED
    assert record.ended_at == record.ends_at == record.started_at + timedelta(minutes=60)
    assert back.user.id == staff.id and session_of(switch.user.session_token).revoked_at is not None


def test_a_support_user_disabled_meanwhile_is_not_logged_back_in(tenant, staff, customer):
    switch = start(tenant, staff, customer)
    staff.is_active = False
    db.session.commit()
    back = impersonation.stop(tenant=tenant, session_token=switch.user.session_token, remote_addr=None,
                              user_agent=None)
    assert back.user is None and back.impersonation.end_reason is EndReason.STOPPED


def test_logging_out_while_impersonating_ends_it_and_logs_everyone_out(tenant, staff, customer):
    switch = start(tenant, staff, customer)
    accounts.log_out(user=switch.user)
    db.session.expire_all()
    record = db.session.get(Impersonation, switch.impersonation.id)
    assert record.end_reason is EndReason.LOGGED_OUT and record.ended_at is not None
    open_sessions = db.session.scalar(select(func.count()).select_from(UserSession)
                                      .where(UserSession.revoked_at.is_(None)))
    assert open_sessions == 0


def test_a_session_ended_elsewhere_closes_the_record_at_the_next_request(tenant, staff, customer):
    switch = start(tenant, staff, customer)
    accounts.set_active(actor=Actor.system("test"), user=customer, active=False)  # an admin disables the customer meanwhile
    closed = impersonation.close_if_session_gone(tenant=tenant, impersonation_id=switch.impersonation.id)
    assert closed.end_reason is EndReason.SESSION_ENDED


def test_a_working_session_is_not_closed_as_gone(tenant, staff, customer):
    switch = start(tenant, staff, customer)
    assert impersonation.close_if_session_gone(tenant=tenant, impersonation_id=switch.impersonation.id) is None
    assert db.session.get(Impersonation, switch.impersonation.id).ended_at is None


def test_finished_impersonations_are_closed_by_the_sweep(tenant, other_tenant, staff, customer, clock):
    overdue = start(tenant, staff, customer, minutes=10).impersonation
    running = start(tenant, logged_in(factories.user(tenant, role=Role.SUPPORT)), factories.user(tenant),
                    minutes=60).impersonation
    disabled = factories.user(tenant, name="Soon Disabled")
    cut_off = start(tenant, logged_in(factories.user(tenant, role=Role.SUPPORT)), disabled, minutes=60)
    clock.advance(minutes=7)
    accounts.set_active(actor=Actor.system("test"), user=disabled, active=False)  # its session ends here; the browser never comes back
    clock.advance(minutes=23)
    assert impersonation.close_finished(tenant=other_tenant) == 0
    assert impersonation.close_finished(tenant=tenant) == 2
    db.session.expire_all()
    closed = db.session.get(Impersonation, overdue.id)
    assert (closed.end_reason, closed.ended_at) == (EndReason.EXPIRED, closed.ends_at)
    assert session_of(start_token(overdue)).revoked_at == clock.now()
    ended = db.session.get(Impersonation, cut_off.impersonation.id)
    assert (ended.end_reason, ended.ended_at) == (EndReason.SESSION_ENDED, ended.started_at + timedelta(minutes=7))
    assert db.session.get(Impersonation, running.id).ended_at is None
    assert impersonation.close_finished(tenant=tenant) == 0


def start_token(record: Impersonation) -> str:
    return db.session.scalar(select(UserSession.token).where(UserSession.impersonation_id == record.id))


def test_actions_are_appended(tenant, staff, customer):
    record = start(tenant, staff, customer).impersonation
    impersonation.record_action(impersonation_id=record.id, method="POST", path="/subscriptions/1/cancel",
                                endpoint="subscriptions.cancel", status_code=303)
    action = db.session.scalar(select(ImpersonationAction))
    assert (action.impersonation_id, action.method, action.status_code) == (record.id, "POST", 303)


# --- row 19: what stays blocked ------------------------------------------------------------------------------

def test_password_and_email_cannot_be_changed_while_impersonating(tenant, support, customer):
    actor = Actor(logged_in(customer), impersonator=support)
    with pytest.raises(Forbidden, match="while impersonating"):
        accounts.change_password(actor=actor, current_password=factories.PASSWORD,
                                 new_password="a brand new passphrase", remote_addr=None, user_agent=None)
    with pytest.raises(Forbidden, match="while impersonating"):
        accounts.change_email(actor=actor, password=factories.PASSWORD, new_email="new@example.com")
    db.session.expire_all()
    unchanged = db.session.get(User, customer.id)
    assert unchanged.email == "casey@example.com" and verify_password(unchanged.password_hash, factories.PASSWORD)
