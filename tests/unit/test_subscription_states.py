"""The subscription and item state machines, pair by pair (no app, no database)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from app.domain.catalogue import ChangeRule
from app.domain.subscriptions import (
    DEFAULT_GRACE_PERIOD,
    Action,
    BackorderStatus,
    ItemStatus,
    SubscriptionStatus,
    Transition,
    TransitionError,
    allowed_actions,
    backorder_transition,
    can_change_plan,
    customer_actions,
    item_transition,
    plan_transition,
    power_controls_enabled,
)

S = SubscriptionStatus
A = Action
I = ItemStatus  # noqa: E741

NOW = datetime(2025, 3, 15, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(days=10)
EARLIER = NOW - timedelta(days=10)

# Written out independently of the module's table, straight from DESIGN.md.
ALLOWED: dict[tuple[SubscriptionStatus, Action], SubscriptionStatus] = {
    (S.ACTIVE, A.CANCEL): S.PENDING_CANCEL,
    (S.PENDING_CANCEL, A.RESUME): S.ACTIVE,
    (S.PENDING_CANCEL, A.EXPIRE): S.CANCELED,
    (S.ACTIVE, A.SUSPEND): S.SUSPENDED,
    (S.SUSPENDED, A.REINSTATE): S.ACTIVE,
    (S.SUSPENDED, A.GRACE_END): S.CANCELED,
    (S.SUSPENDED, A.CANCEL): S.CANCELED,
    (S.ACTIVE, A.RENEW): S.ACTIVE,
    (S.PENDING_BACKORDER, A.PROVISIONED): S.ACTIVE,
    (S.PENDING_BACKORDER, A.CANCEL): S.CANCELED,
    (S.PENDING_FULFILLMENT, A.ACTIVATE): S.ACTIVE,
    (S.PENDING_FULFILLMENT, A.CANCEL): S.CANCELED,
    (S.PENDING_FULFILLMENT, A.BACKORDER): S.PENDING_BACKORDER,  # provisioning found no capacity
    # The customer deleted their account: every subscription not canceled yet ends now.
    **{(status, A.TERMINATE): S.CANCELED for status in S if status is not S.CANCELED},
}
FORBIDDEN = [pair for pair in itertools.product(S, A) if pair not in ALLOWED]

# Each action's dates, chosen so that the time rules allow it at NOW.
DATES_THAT_ALLOW: dict[Action, dict[str, datetime]] = {
    A.CANCEL: {"period_end": LATER},
    A.RESUME: {"effective_at": LATER},
    A.EXPIRE: {"effective_at": EARLIER},
    A.REINSTATE: {"grace_ends_at": LATER},
    A.GRACE_END: {"grace_ends_at": EARLIER},
    A.RENEW: {"period_end": EARLIER},
}


def plan(status: SubscriptionStatus, action: Action) -> Transition:
    dates = DATES_THAT_ALLOW.get(action, {})
    return plan_transition(
        status,
        action,
        now=NOW,
        period_end=dates.get("period_end"),
        effective_at=dates.get("effective_at"),
        grace_ends_at=dates.get("grace_ends_at"),
    )


@pytest.mark.parametrize(("status", "action"), list(ALLOWED))
def test_allowed_transition_reaches_its_target(status: SubscriptionStatus, action: Action) -> None:
    transition = plan(status, action)

    assert transition.from_status is status
    assert transition.to_status is ALLOWED[status, action]
    assert transition.action is action


@pytest.mark.parametrize(("status", "action"), FORBIDDEN)
def test_forbidden_transition_is_refused_in_plain_words(status: SubscriptionStatus, action: Action) -> None:
    with pytest.raises(TransitionError) as refused:
        plan(status, action)

    message = str(refused.value)
    assert message == refused.value.message
    assert message.startswith("This subscription ")
    assert message.endswith(".")
    assert "_" not in message


@pytest.mark.parametrize("status", list(S))
def test_allowed_actions_match_the_table(status: SubscriptionStatus) -> None:
    expected = {action for (s, action) in ALLOWED if s is status}

    assert allowed_actions(status) == expected


@pytest.mark.parametrize("action", list(A))
def test_canceled_is_final(action: Action) -> None:
    with pytest.raises(TransitionError):
        plan(S.CANCELED, action)
    assert allowed_actions(S.CANCELED) == frozenset()
    assert S.CANCELED.is_final


@pytest.mark.parametrize(
    ("action", "message"),
    [
        (A.CANCEL, "This subscription is already canceled."),
        (A.RESUME, "This subscription is canceled and cannot be reactivated; place a new order instead."),
        (A.REINSTATE, "This subscription is canceled and cannot be reactivated; place a new order instead."),
    ],
)
def test_canceled_refusals_say_why(action: Action, message: str) -> None:
    with pytest.raises(TransitionError, match=message):
        plan(S.CANCELED, action)


def test_cancel_twice_says_it_is_already_scheduled() -> None:
    with pytest.raises(TransitionError, match="already set to cancel"):
        plan(S.PENDING_CANCEL, A.CANCEL)


def test_cancel_at_period_end_waits_for_the_period_end() -> None:
    transition = plan_transition(S.ACTIVE, A.CANCEL, now=NOW, period_end=LATER)

    assert transition == Transition(S.ACTIVE, S.PENDING_CANCEL, A.CANCEL, LATER)


def test_cancel_immediately_cancels_now() -> None:
    transition = plan_transition(
        S.ACTIVE, A.CANCEL, now=NOW, period_end=LATER, cancellation_rule=ChangeRule.IMMEDIATE
    )

    assert transition == Transition(S.ACTIVE, S.CANCELED, A.CANCEL, NOW)


def test_cancel_after_an_unrenewed_period_end_cancels_now() -> None:
    transition = plan_transition(S.ACTIVE, A.CANCEL, now=NOW, period_end=EARLIER)

    assert transition == Transition(S.ACTIVE, S.CANCELED, A.CANCEL, NOW)


@pytest.mark.parametrize("status", [S.PENDING_FULFILLMENT, S.PENDING_BACKORDER, S.SUSPENDED])
def test_cancel_before_delivery_or_while_suspended_is_immediate(status: SubscriptionStatus) -> None:
    assert plan_transition(status, A.CANCEL, now=NOW) == Transition(status, S.CANCELED, A.CANCEL, NOW)


def test_cancel_at_period_end_needs_the_period_end() -> None:
    with pytest.raises(ValueError, match="period_end is required"):
        plan_transition(S.ACTIVE, A.CANCEL, now=NOW)


@pytest.mark.parametrize(
    ("effective_at", "allowed"),
    [(NOW + timedelta(seconds=1), True), (NOW, False), (EARLIER, False)],
)
def test_resume_only_before_the_cancellation_takes_effect(effective_at: datetime, allowed: bool) -> None:
    if allowed:
        transition = plan_transition(S.PENDING_CANCEL, A.RESUME, now=NOW, effective_at=effective_at)
        assert transition == Transition(S.PENDING_CANCEL, S.ACTIVE, A.RESUME, None)
    else:
        with pytest.raises(TransitionError, match="already took effect; it can no longer be resumed"):
            plan_transition(S.PENDING_CANCEL, A.RESUME, now=NOW, effective_at=effective_at)


@pytest.mark.parametrize(
    ("effective_at", "allowed"),
    [(NOW + timedelta(seconds=1), False), (NOW, True), (EARLIER, True)],
)
def test_expire_only_at_or_after_the_cancellation_date(effective_at: datetime, allowed: bool) -> None:
    if allowed:
        transition = plan_transition(S.PENDING_CANCEL, A.EXPIRE, now=NOW, effective_at=effective_at)
        assert transition == Transition(S.PENDING_CANCEL, S.CANCELED, A.EXPIRE, effective_at)
    else:
        with pytest.raises(TransitionError, match="takes effect on 15 March 2025"):
            plan_transition(S.PENDING_CANCEL, A.EXPIRE, now=NOW, effective_at=effective_at)


def test_suspend_sets_the_default_grace_period() -> None:
    transition = plan_transition(S.ACTIVE, A.SUSPEND, now=NOW)

    assert transition.effective_at == NOW + DEFAULT_GRACE_PERIOD == NOW + timedelta(days=30)


def test_suspend_takes_a_given_grace_end() -> None:
    assert plan_transition(S.ACTIVE, A.SUSPEND, now=NOW, grace_ends_at=LATER).effective_at == LATER


@pytest.mark.parametrize(("grace_ends_at", "allowed"), [(LATER, True), (NOW, False), (EARLIER, False)])
def test_reinstate_only_within_grace(grace_ends_at: datetime, allowed: bool) -> None:
    if allowed:
        transition = plan_transition(S.SUSPENDED, A.REINSTATE, now=NOW, grace_ends_at=grace_ends_at)
        assert transition.to_status is S.ACTIVE
    else:
        with pytest.raises(TransitionError, match="grace period ended"):
            plan_transition(S.SUSPENDED, A.REINSTATE, now=NOW, grace_ends_at=grace_ends_at)


@pytest.mark.parametrize(("grace_ends_at", "allowed"), [(LATER, False), (NOW, True), (EARLIER, True)])
def test_grace_end_only_once_grace_is_over(grace_ends_at: datetime, allowed: bool) -> None:
    if allowed:
        transition = plan_transition(S.SUSPENDED, A.GRACE_END, now=NOW, grace_ends_at=grace_ends_at)
        assert transition == Transition(S.SUSPENDED, S.CANCELED, A.GRACE_END, grace_ends_at)
    else:
        with pytest.raises(TransitionError, match="grace period runs until"):
            plan_transition(S.SUSPENDED, A.GRACE_END, now=NOW, grace_ends_at=grace_ends_at)


@pytest.mark.parametrize(("period_end", "allowed"), [(LATER, False), (NOW, True), (EARLIER, True)])
def test_renew_only_at_term_end(period_end: datetime, allowed: bool) -> None:
    if allowed:
        transition = plan_transition(S.ACTIVE, A.RENEW, now=NOW, period_end=period_end)
        assert transition.to_status is S.ACTIVE and not transition.changes_status
    else:
        with pytest.raises(TransitionError, match="not due for renewal"):
            plan_transition(S.ACTIVE, A.RENEW, now=NOW, period_end=period_end)


def test_naive_datetimes_are_rejected() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        plan_transition(S.ACTIVE, A.SUSPEND, now=NOW.replace(tzinfo=None))


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (S.ACTIVE, {A.CANCEL}),
        (S.PENDING_CANCEL, {A.RESUME}),
        (S.SUSPENDED, {A.CANCEL}),
        (S.CANCELED, set()),
    ],
)
def test_customer_actions(status: SubscriptionStatus, expected: set[Action]) -> None:
    assert customer_actions(status) == expected


@pytest.mark.parametrize("status", list(S))
def test_only_active_subscriptions_change_plan(status: SubscriptionStatus) -> None:
    assert can_change_plan(status) is (status is S.ACTIVE)


@pytest.mark.parametrize("status", list(S))
def test_power_controls_off_when_suspended_or_canceled(status: SubscriptionStatus) -> None:
    assert power_controls_enabled(status) is (status not in {S.SUSPENDED, S.CANCELED})


ITEM_ALLOWED = {
    (I.PENDING, I.PROVISIONING),
    (I.PENDING, I.FAILED),
    (I.PROVISIONING, I.ACTIVE),
    (I.PROVISIONING, I.FAILED),
    (I.PROVISIONING, I.PENDING),  # capacity gone: back to the backorder queue
    (I.ACTIVE, I.FAILED),  # the server vanished at the cloud
    (I.FAILED, I.DECOMMISSIONING),
    (I.FAILED, I.PROVISIONING),
    (I.ACTIVE, I.DECOMMISSIONING),
    (I.DECOMMISSIONING, I.DECOMMISSIONED),
    # A canceled order: an item never started is done at once, one under way (or failed) is cleaned up.
    (I.PENDING, I.DECOMMISSIONED),
    (I.PROVISIONING, I.DECOMMISSIONING),
    (I.FAILED, I.DECOMMISSIONED),
}
ITEM_FORBIDDEN = [pair for pair in itertools.product(I, I) if pair not in ITEM_ALLOWED]


@pytest.mark.parametrize(("current", "target"), sorted(ITEM_ALLOWED))
def test_item_transition_allowed(current: ItemStatus, target: ItemStatus) -> None:
    assert item_transition(current, target) is target


@pytest.mark.parametrize(("current", "target"), ITEM_FORBIDDEN)
def test_item_transition_forbidden(current: ItemStatus, target: ItemStatus) -> None:
    with pytest.raises(TransitionError, match=f"This server is {current.value} and cannot become"):
        item_transition(current, target)


@pytest.mark.parametrize("target", list(I))
def test_decommissioned_items_are_final(target: ItemStatus) -> None:
    with pytest.raises(TransitionError):
        item_transition(I.DECOMMISSIONED, target)


B = BackorderStatus
BACKORDER_ALLOWED = {
    (B.WAITING, B.FULFILLED),  # capacity came back
    (B.WAITING, B.CANCELED),  # switched to an alternative, or the subscription was canceled
    (B.FULFILLED, B.WAITING),  # capacity went again before the server was made: back in the queue
    (B.FULFILLED, B.CANCELED),
}


@pytest.mark.parametrize(("current", "target"), list(itertools.product(B, B)))
def test_backorder_transitions(current: BackorderStatus, target: BackorderStatus) -> None:
    if (current, target) in BACKORDER_ALLOWED:
        assert backorder_transition(current, target) is target
    else:
        with pytest.raises(TransitionError, match=f"This backorder is {current.value} and cannot become"):
            backorder_transition(current, target)


@pytest.mark.parametrize("status", [s for s in S if s is not S.CANCELED])
def test_terminate_ends_now_whatever_the_plan_or_a_pending_date(status: SubscriptionStatus) -> None:
    transition = plan_transition(status, A.TERMINATE, now=NOW, period_end=LATER, effective_at=LATER,
                                 cancellation_rule=ChangeRule.PERIOD_END)

    assert transition == Transition(status, S.CANCELED, A.TERMINATE, NOW)


def test_terminate_is_not_a_customer_button() -> None:
    assert not A.TERMINATE.by_customer
    with pytest.raises(TransitionError, match="already canceled"):
        plan(S.CANCELED, A.TERMINATE)
