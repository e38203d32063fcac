"""The permission table: who may do what to a subscription (no app, no database)."""

from __future__ import annotations

import itertools

import pytest

from app.domain.policy import OWNER_BOUND, ActorKind, Do, Verdict, decide

K, D = ActorKind, Do

# The whole table, written out: a change to it must change this test.
ALLOWED = {
    K.CUSTOMER: {D.VIEW, D.CANCEL, D.RESUME, D.POWER, D.REBUILD, D.ROOT_PASSWORD, D.SWITCH_BACKORDER,
                 D.CHANGE_PLAN},
    K.SUPPORT_AS_CUSTOMER: {D.VIEW, D.CANCEL, D.RESUME, D.POWER, D.SWITCH_BACKORDER, D.CHANGE_PLAN},
    K.API_TOKEN: {D.VIEW, D.CANCEL, D.RESUME, D.POWER, D.REBUILD, D.ROOT_PASSWORD, D.SWITCH_BACKORDER,
                  D.CHANGE_PLAN},
    K.TENANT_ADMIN: {D.VIEW, D.CANCEL, D.SUSPEND, D.REINSTATE, D.EXTEND_RETENTION},
    K.SUPPORT: {D.VIEW},
    K.SYSTEM: {D.VIEW, D.CANCEL, D.SUSPEND, D.REINSTATE, D.RUN_LIFECYCLE},
    K.MARKETPLACE: {D.VIEW, D.CANCEL, D.SUSPEND, D.REINSTATE},
}


@pytest.mark.parametrize(("kind", "action"), list(itertools.product(K, D)))
def test_the_table(kind: ActorKind, action: Do) -> None:
    expected = Verdict.ALLOW if action in ALLOWED[kind] else Verdict.FORBIDDEN
    assert decide(kind, action, owns=True) is expected


@pytest.mark.parametrize(("kind", "action"), list(itertools.product(OWNER_BOUND, D)))
def test_someone_elses_subscription_does_not_exist_for_owner_bound_actors(kind: ActorKind, action: Do) -> None:
    assert decide(kind, action, owns=False) is Verdict.NOT_FOUND


@pytest.mark.parametrize("kind", [k for k in K if k not in OWNER_BOUND])
def test_staff_and_the_portal_act_on_any_subscription_of_their_tenant(kind: ActorKind) -> None:
    assert decide(kind, D.VIEW, owns=False) is Verdict.ALLOW


def test_only_customers_resume_and_only_admins_extend_retention() -> None:
    assert {k for k in K if decide(k, D.RESUME, owns=True) is Verdict.ALLOW} == set(OWNER_BOUND)
    assert {k for k in K if decide(k, D.EXTEND_RETENTION, owns=True) is Verdict.ALLOW} == {K.TENANT_ADMIN}


def test_only_the_customer_as_themselves_rebuilds_or_sees_root_passwords() -> None:
    for action in (D.REBUILD, D.ROOT_PASSWORD):
        assert {k for k in K if decide(k, action, owns=True) is Verdict.ALLOW} == {K.CUSTOMER, K.API_TOKEN}
