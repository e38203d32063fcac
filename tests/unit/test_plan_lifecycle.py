"""The catalogue's transition table and the rules of targets and mappings, without a database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.domain.catalogue import CatalogueState
from app.domain.plan_lifecycle import (
    TRANSITIONS,
    CatalogueAction,
    CatalogueError,
    PlanFacts,
    allowed_actions,
    check_mapping,
    check_target,
    move_charge,
    needs_resize,
    next_state,
)

S, A = CatalogueState, CatalogueAction

EXPECTED = {
    (S.DRAFT, A.PUBLISH): S.PUBLISHED,
    (S.PUBLISHED, A.DEPRECATE): S.DEPRECATED,
    (S.PUBLISHED, A.SET_TARGET): S.PUBLISHED,
    (S.DEPRECATED, A.SET_TARGET): S.DEPRECATED,
    (S.PUBLISHED, A.CLEAR_TARGET): S.PUBLISHED,
    (S.DEPRECATED, A.CLEAR_TARGET): S.DEPRECATED,
    (S.PUBLISHED, A.SUPERSEDE): S.DEPRECATED,
    (S.DEPRECATED, A.SUPERSEDE): S.DEPRECATED,
    (S.PUBLISHED, A.REPLACE): S.RETIRED,
    (S.DEPRECATED, A.REPLACE): S.RETIRED,
    (S.PUBLISHED, A.RETIRE): S.RETIRED,
    (S.DEPRECATED, A.RETIRE): S.RETIRED,
}


@pytest.mark.parametrize(("state", "action"), [(s, a) for s in S for a in A])
def test_every_state_and_action_is_allowed_or_refused_with_a_message(state, action):
    if (state, action) in EXPECTED:
        assert next_state(state, action) is EXPECTED[(state, action)]
        assert action in allowed_actions(state)
    else:
        with pytest.raises(CatalogueError) as refused:
            next_state(state, action)
        assert refused.value.message.startswith(action.label)
        assert action not in allowed_actions(state)


def test_the_table_is_exactly_the_expected_one_and_nothing_leaves_retired():
    assert dict(TRANSITIONS) == EXPECTED
    assert allowed_actions(S.RETIRED) == frozenset()
    assert {a for a in A if a.bulk} == {A.REPLACE, A.RETIRE}


def facts(plan_id: int, *, price: int = 990, state: S = S.PUBLISHED, currency: str = "EUR", interval: str = "month",
          server_type: str | None = "cx22") -> PlanFacts:
    return PlanFacts(plan_id, 1, state, price, currency, interval, server_type)


def test_a_target_must_be_another_published_plan_of_the_same_currency_and_interval():
    check_target(facts(1), facts(2, price=0))
    check_target(facts(1, price=0), facts(2, price=500))  # customers choose: free to paid is fine here
    for target, message in ((facts(1), "its own"), (facts(2, state=S.DRAFT), "published"),
                            (facts(2, state=S.DEPRECATED), "published"), (facts(2, currency="USD"), "currency"),
                            (facts(2, interval="year"), "interval")):
        with pytest.raises(CatalogueError, match=message):
            check_target(facts(1), target)


def test_a_mapping_may_be_many_to_one_but_never_free_to_paid_nor_a_chain():
    plans = {i: facts(i) for i in (1, 2, 3, 4)} | {5: facts(5, price=0), 6: facts(6, price=0)}
    check_mapping(plans, plans, {1: 3, 2: 3})
    check_mapping(plans, plans, {5: 6, 1: 6})  # free to free, paid to free
    with pytest.raises(CatalogueError, match="Free plans cannot be moved to a paid plan"):
        check_mapping(plans, plans, {5: 3})
    with pytest.raises(CatalogueError, match="cannot receive"):
        check_mapping(plans, plans, {1: 2, 2: 3})
    with pytest.raises(CatalogueError, match="Choose a plan to move"):
        check_mapping(plans, plans, {})
    with pytest.raises(CatalogueError, match="Choose a plan of this catalogue"):
        check_mapping(plans, plans, {1: 99})
    with pytest.raises(CatalogueError, match="Replace: A retired plan is final"):
        check_mapping({7: facts(7, state=S.RETIRED)}, plans, {7: 3})
    with pytest.raises(CatalogueError, match="Replace: A draft"):
        check_mapping({7: facts(7, state=S.DRAFT)}, plans, {7: 3})


START = datetime(2026, 3, 1, tzinfo=UTC)
END = datetime(2026, 3, 31, tzinfo=UTC)


def test_a_move_charges_the_rest_of_the_period_only_when_billed_and_the_price_changes():
    half = START + (END - START) / 2
    charge = move_charge(1000, 2000, "EUR", billed=True, period_start=START, period_end=END, at=half)
    assert (charge.credit, charge.debit, charge.net) == (-500, 1000, 500)
    assert move_charge(1000, 1000, "EUR", billed=True, period_start=START, period_end=END, at=half).net == 0
    assert move_charge(1000, 2000, "EUR", billed=False, period_start=START, period_end=END, at=half).net == 0
    assert move_charge(1000, 2000, "EUR", billed=True, period_start=None, period_end=None, at=half).net == 0
    late = END + timedelta(days=1)
    assert move_charge(1000, 2000, "EUR", billed=True, period_start=START, period_end=END, at=late).net == 0


def test_a_resize_is_needed_when_the_server_type_differs_and_unknown_without_one():
    assert needs_resize("cx22", "cx32") is True
    assert needs_resize("cx22", "cx22") is False
    assert needs_resize(None, "cx22") is True
    assert needs_resize("cx22", None) is None


# --- random sequences of operations on a small catalogue -------------------------------------------------------

operations = st.lists(st.tuples(st.sampled_from(list(A)), st.integers(0, 3), st.integers(0, 3)), max_size=30)


@settings(max_examples=200, deadline=None)
@given(operations)
def test_random_sequences_keep_the_catalogues_invariants(steps):
    """Four plans, each with subscribers; every step is applied only if the rules allow it. Invariants: a retired
    plan never changes again and keeps no subscribers, nothing returns to draft, a target is never the plan
    itself, subscribers are only ever moved to a plan that was published at the time, and none is lost."""
    states = {i: S.DRAFT for i in range(4)}
    prices = {0: 0, 1: 0, 2: 990, 3: 1990}
    subscribers = {i: 0 for i in range(4)}
    targets: dict[int, int | None] = dict.fromkeys(range(4))
    total = 0
    for action, plan, other in steps:
        before = states[plan]
        try:
            after = next_state(before, action)
            if action in (A.SET_TARGET, A.SUPERSEDE):
                check_target(facts(plan, price=prices[plan], state=before),
                             facts(other, price=prices[other], state=states[other]))
            if action is A.REPLACE:
                check_mapping({plan: facts(plan, price=prices[plan], state=before)},
                              {other: facts(other, price=prices[other], state=states[other])}, {plan: other})
        except CatalogueError:
            assert states[plan] is before
            continue
        assert before is not S.RETIRED and after is not S.DRAFT
        if action in (A.SET_TARGET, A.SUPERSEDE, A.REPLACE):
            assert states[other] is S.PUBLISHED and other != plan
            targets[plan] = other
        if action is A.CLEAR_TARGET:
            targets[plan] = None
        if action is A.REPLACE:
            assert not (prices[plan] == 0 and prices[other] > 0)
            subscribers[other] += subscribers[plan]
            subscribers[plan] = 0
        if action is A.RETIRE:
            subscribers[plan] = 0
        states[plan] = after
        if after is S.PUBLISHED:  # customers order the plan
            subscribers[plan] += 1
            total += 1
        for i in range(4):
            assert states[i] is not S.RETIRED or subscribers[i] == 0
            assert targets[i] != i
        assert sum(subscribers.values()) <= total
