"""Vocabulary and rules of subscriptions and their items.

Every lifecycle transition of DESIGN.md is decided here and only here: services ask
`plan_transition` (or `item_transition`) what a request would do, store the answer and record
it as an event. Refusals are `TransitionError`s whose message can be shown to the customer as is.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from types import MappingProxyType
from typing import Final

from app.domain.catalogue import ChangeRule

DEFAULT_GRACE_PERIOD: Final = timedelta(days=30)
"""How long a suspended subscription can still be reinstated, unless the caller says otherwise."""

LONGEST_AHEAD: Final = timedelta(days=3660)
"""How far ahead a chosen date (the end of a grace period, a later deletion) may lie: ten years."""


class SubscriptionStatus(StrEnum):
    PENDING_FULFILLMENT = "pending_fulfillment"
    PENDING_BACKORDER = "pending_backorder"
    ACTIVE = "active"
    PENDING_CANCEL = "pending_cancel"
    SUSPENDED = "suspended"
    CANCELED = "canceled"

    @property
    def label(self) -> str:
        """Human-readable name for pages and messages."""
        return _STATUS_LABELS[self]

    @property
    def is_final(self) -> bool:
        """A canceled subscription is never reactivated: a new order is a new subscription."""
        return self is SubscriptionStatus.CANCELED


class ItemStatus(StrEnum):
    PENDING = "pending"
    PROVISIONING = "provisioning"
    ACTIVE = "active"
    FAILED = "failed"
    DECOMMISSIONING = "decommissioning"
    DECOMMISSIONED = "decommissioned"

    @property
    def label(self) -> str:
        """Human-readable name for pages and messages."""
        return _ITEM_LABELS.get(self, self.value.capitalize())


class Action(StrEnum):
    """What can happen to a subscription; customers start cancel and resume, the system the rest."""

    CANCEL = "cancel"
    RESUME = "resume"
    EXPIRE = "expire"
    SUSPEND = "suspend"
    REINSTATE = "reinstate"
    GRACE_END = "grace_end"
    RENEW = "renew"
    PROVISIONED = "provisioned"
    ACTIVATE = "activate"
    BACKORDER = "backorder"
    TERMINATE = "terminate"  # ends now whatever the plan's rule: the customer deleted their account

    @property
    def by_customer(self) -> bool:
        """Whether a customer may ask for this action (the others come from jobs and webhooks)."""
        return self in CUSTOMER_ACTIONS


_S = SubscriptionStatus
_A = Action

_STATUS_LABELS: Final = MappingProxyType(
    {
        _S.PENDING_FULFILLMENT: "Setting up",
        _S.PENDING_BACKORDER: "On backorder",
        _S.ACTIVE: "Active",
        _S.PENDING_CANCEL: "Pending cancellation",
        _S.SUSPENDED: "Suspended",
        _S.CANCELED: "Canceled",
    }
)

_ITEM_LABELS: Final = MappingProxyType({
    ItemStatus.DECOMMISSIONING: "Switched off",  # shutting down, then off until the retention ends
    ItemStatus.DECOMMISSIONED: "Deleted",
})

CUSTOMER_ACTIONS: Final = frozenset({_A.CANCEL, _A.RESUME})

TRANSITIONS: Final[tuple[tuple[SubscriptionStatus, Action, SubscriptionStatus], ...]] = (
    (_S.ACTIVE, _A.CANCEL, _S.PENDING_CANCEL),  # plan rule: period end
    (_S.ACTIVE, _A.CANCEL, _S.CANCELED),  # plan rule: immediate
    (_S.PENDING_CANCEL, _A.RESUME, _S.ACTIVE),  # only before effective_at
    (_S.PENDING_CANCEL, _A.EXPIRE, _S.CANCELED),  # at or after effective_at
    (_S.ACTIVE, _A.SUSPEND, _S.SUSPENDED),  # payment failed
    (_S.SUSPENDED, _A.REINSTATE, _S.ACTIVE),  # paid within grace
    (_S.SUSPENDED, _A.GRACE_END, _S.CANCELED),
    (_S.SUSPENDED, _A.CANCEL, _S.CANCELED),
    (_S.ACTIVE, _A.RENEW, _S.ACTIVE),  # next period, at term end
    (_S.PENDING_BACKORDER, _A.PROVISIONED, _S.ACTIVE),
    (_S.PENDING_BACKORDER, _A.CANCEL, _S.CANCELED),
    (_S.PENDING_FULFILLMENT, _A.ACTIVATE, _S.ACTIVE),
    (_S.PENDING_FULFILLMENT, _A.CANCEL, _S.CANCELED),
    (_S.PENDING_FULFILLMENT, _A.BACKORDER, _S.PENDING_BACKORDER),  # capacity gone, autoBackorder set
    # The account is deleted: whatever is not canceled yet ends now.
    (_S.ACTIVE, _A.TERMINATE, _S.CANCELED),
    (_S.PENDING_CANCEL, _A.TERMINATE, _S.CANCELED),
    (_S.SUSPENDED, _A.TERMINATE, _S.CANCELED),
    (_S.PENDING_BACKORDER, _A.TERMINATE, _S.CANCELED),
    (_S.PENDING_FULFILLMENT, _A.TERMINATE, _S.CANCELED),
)
"""Every (from, action, to) the lifecycle allows; nothing leaves `canceled`."""


def _actions_by_status() -> Mapping[SubscriptionStatus, frozenset[Action]]:
    return MappingProxyType(
        {status: frozenset(a for s, a, _ in TRANSITIONS if s is status) for status in SubscriptionStatus}
    )


_ALLOWED: Final = _actions_by_status()


class TransitionError(Exception):
    """A refused transition; the message is written for the customer."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class Transition:
    """The outcome of an action.

    `effective_at` is the deadline the subscription should store next: when a pending cancellation
    takes effect (pending_cancel), when the grace period ends (suspended), when the cancellation
    took effect (canceled, the start of data retention), or None when nothing is pending (active).
    """

    from_status: SubscriptionStatus
    to_status: SubscriptionStatus
    action: Action
    effective_at: datetime | None

    @property
    def changes_status(self) -> bool:
        """False for a renewal, which keeps the subscription active."""
        return self.from_status is not self.to_status


@dataclass(frozen=True, slots=True)
class _Facts:
    status: SubscriptionStatus
    action: Action
    now: datetime
    period_end: datetime | None
    cancellation_rule: ChangeRule
    effective_at: datetime | None
    grace_ends_at: datetime | None

    def to(self, target: SubscriptionStatus, effective_at: datetime | None = None) -> Transition:
        return Transition(self.status, target, self.action, effective_at)

    def need(self, value: datetime | None, name: str) -> datetime:
        # A missing date is a bug in the caller, not something to tell the customer.
        if value is None:
            raise ValueError(f"{name} is required to {self.action.value} a {self.status.value} subscription")
        return _require_aware(value, name)


def plan_transition(
    status: SubscriptionStatus,
    action: Action,
    *,
    now: datetime,
    period_end: datetime | None = None,
    cancellation_rule: ChangeRule = ChangeRule.PERIOD_END,
    effective_at: datetime | None = None,
    grace_ends_at: datetime | None = None,
) -> Transition:
    """Decide what `action` does to a subscription in `status` at `now`, or raise `TransitionError`.

    Dates the rules need: `period_end` (the current period's end) for cancel from active and for
    renew; `effective_at` (the stored cancellation date) for resume and expire; `grace_ends_at` for
    reinstate and grace_end, and optionally for suspend (default: now + DEFAULT_GRACE_PERIOD).
    A needed date that is missing raises ValueError. All datetimes must be timezone-aware.
    """
    facts = _Facts(
        status, action, _require_aware(now, "now"), period_end, cancellation_rule, effective_at, grace_ends_at
    )
    if action not in _ALLOWED[status]:
        raise TransitionError(refusal_message(status, action))
    return _PLANNERS[action](facts)


def _plan_cancel(f: _Facts) -> Transition:
    if f.status is not _S.ACTIVE or f.cancellation_rule is ChangeRule.IMMEDIATE:
        return f.to(_S.CANCELED, f.now)
    end = f.need(f.period_end, "period_end")
    if end <= f.now:
        # The paid period is already over (renewal not run yet): its end is now.
        return f.to(_S.CANCELED, f.now)
    return f.to(_S.PENDING_CANCEL, end)


def _plan_resume(f: _Facts) -> Transition:
    if f.now >= f.need(f.effective_at, "effective_at"):
        raise TransitionError("The cancellation already took effect; it can no longer be resumed.")
    return f.to(_S.ACTIVE)


def _plan_expire(f: _Facts) -> Transition:
    deadline = f.need(f.effective_at, "effective_at")
    if f.now < deadline:
        raise TransitionError(f"The cancellation takes effect on {format_day(deadline)}, not before.")
    # Retention counts from the scheduled date, however late the job that expires it runs.
    return f.to(_S.CANCELED, deadline)


def _plan_suspend(f: _Facts) -> Transition:
    if f.grace_ends_at is None:
        return f.to(_S.SUSPENDED, f.now + DEFAULT_GRACE_PERIOD)
    grace_end = _require_aware(f.grace_ends_at, "grace_ends_at")
    if not f.now < grace_end <= f.now + LONGEST_AHEAD:
        raise TransitionError("The grace period must end in the future, and within ten years.")
    return f.to(_S.SUSPENDED, grace_end)


def _plan_reinstate(f: _Facts) -> Transition:
    deadline = f.need(f.grace_ends_at, "grace_ends_at")
    if f.now >= deadline:
        day = format_day(deadline)
        raise TransitionError(f"The grace period ended on {day}; it can no longer be reinstated.")
    return f.to(_S.ACTIVE)


def _plan_grace_end(f: _Facts) -> Transition:
    deadline = f.need(f.grace_ends_at, "grace_ends_at")
    if f.now < deadline:
        raise TransitionError(f"The grace period runs until {format_day(deadline)}.")
    return f.to(_S.CANCELED, deadline)


def _plan_renew(f: _Facts) -> Transition:
    end = f.need(f.period_end, "period_end")
    if f.now < end:
        raise TransitionError(f"The current period runs until {format_day(end)}; it is not due for renewal.")
    return f.to(_S.ACTIVE)


def _plan_activate(f: _Facts) -> Transition:
    return f.to(_S.ACTIVE)


_PLANNERS: Final[Mapping[Action, Callable[[_Facts], Transition]]] = MappingProxyType(
    {
        _A.CANCEL: _plan_cancel,
        _A.RESUME: _plan_resume,
        _A.EXPIRE: _plan_expire,
        _A.SUSPEND: _plan_suspend,
        _A.REINSTATE: _plan_reinstate,
        _A.GRACE_END: _plan_grace_end,
        _A.RENEW: _plan_renew,
        _A.PROVISIONED: _plan_activate,
        _A.ACTIVATE: _plan_activate,
        _A.BACKORDER: lambda f: f.to(_S.PENDING_BACKORDER),
        _A.TERMINATE: lambda f: f.to(_S.CANCELED, f.now),
    }
)

_PAST_TENSE: Final = MappingProxyType(
    {
        _A.CANCEL: "canceled",
        _A.RESUME: "resumed",
        _A.EXPIRE: "ended",
        _A.SUSPEND: "suspended",
        _A.REINSTATE: "reinstated",
        _A.GRACE_END: "closed at the end of a grace period",
        _A.RENEW: "renewed",
        _A.PROVISIONED: "marked as provisioned",
        _A.ACTIVATE: "activated",
        _A.BACKORDER: "put on backorder",
        _A.TERMINATE: "ended",
    }
)

_REFUSALS: Final = MappingProxyType(
    {
        (_S.PENDING_CANCEL, _A.CANCEL): "This subscription is already set to cancel at the period's end.",
        (_S.ACTIVE, _A.RESUME): "This subscription is not set to cancel, so there is nothing to resume.",
        (_S.SUSPENDED, _A.RESUME): "This subscription is suspended; settle the payment to reinstate it.",
        (_S.SUSPENDED, _A.SUSPEND): "This subscription is already suspended.",
        (_S.ACTIVE, _A.REINSTATE): "This subscription is not suspended.",
        (_S.ACTIVE, _A.ACTIVATE): "This subscription is already active.",
        (_S.ACTIVE, _A.PROVISIONED): "This subscription is already active.",
    }
)


def refusal_message(status: SubscriptionStatus, action: Action) -> str:
    """Why `action` is not possible in `status`, in words for the customer."""
    if status is _S.CANCELED:
        if action in (_A.CANCEL, _A.EXPIRE, _A.GRACE_END, _A.SUSPEND, _A.TERMINATE):
            return "This subscription is already canceled."
        return "This subscription is canceled and cannot be reactivated; place a new order instead."
    default = f"This subscription is {status.label.lower()}, so it cannot be {_PAST_TENSE[action]}."
    return _REFUSALS.get((status, action), default)


def allowed_actions(status: SubscriptionStatus) -> frozenset[Action]:
    """Actions the lifecycle allows from `status`; date rules may still refuse them at a given moment."""
    return _ALLOWED[status]


def customer_actions(status: SubscriptionStatus) -> frozenset[Action]:
    """The buttons a customer may see for a subscription in `status`."""
    return _ALLOWED[status] & CUSTOMER_ACTIONS


def can_change_plan(status: SubscriptionStatus) -> bool:
    """Only an active subscription may change plan or quantity (or migrate)."""
    return status is _S.ACTIVE


def shown_status(status: SubscriptionStatus, *, waiting_for_capacity: bool) -> SubscriptionStatus:
    """The status to show the customer: a backordered subscription whose backorder was served or switched
    stays `pending_backorder` until it is active, but what the customer sees then is its setting up."""
    if status is _S.PENDING_BACKORDER and not waiting_for_capacity:
        return _S.PENDING_FULFILLMENT
    return status


def power_controls_enabled(status: SubscriptionStatus) -> bool:
    """Start / stop / restart are off while suspended (servers stay powered off) and once canceled."""
    return status not in (_S.SUSPENDED, _S.CANCELED)


def format_day(moment: datetime) -> str:
    """A date as customers read it, e.g. "31 January 2025" (the UTC calendar day)."""
    utc = moment.astimezone(UTC)
    return f"{utc.day} {utc:%B %Y}"


def _require_aware(moment: datetime, name: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime")
    return moment


_I = ItemStatus

ITEM_TRANSITIONS: Final[Mapping[ItemStatus, frozenset[ItemStatus]]] = MappingProxyType(
    {
        # A canceled order's items end too: one never started is done at once, one under way is cleaned up.
        _I.PENDING: frozenset({_I.PROVISIONING, _I.FAILED, _I.DECOMMISSIONED}),
        _I.PROVISIONING: frozenset({_I.ACTIVE, _I.FAILED, _I.PENDING, _I.DECOMMISSIONING}),  # pending: backorder
        _I.ACTIVE: frozenset({_I.DECOMMISSIONING, _I.FAILED}),  # failed: the server vanished at the cloud
        _I.FAILED: frozenset({_I.PROVISIONING, _I.DECOMMISSIONING, _I.DECOMMISSIONED}),  # retry, or clean up
        _I.DECOMMISSIONING: frozenset({_I.DECOMMISSIONED}),
        _I.DECOMMISSIONED: frozenset(),
    }
)
"""Where each item status may go next; a move to the same status is not a transition."""


def item_transition(current: ItemStatus, target: ItemStatus) -> ItemStatus:
    """Return `target` if an item in `current` may move there, else raise `TransitionError`."""
    if target not in ITEM_TRANSITIONS[current]:
        raise TransitionError(f"This server is {current.value} and cannot become {target.value}.")
    return target


class BackorderStatus(StrEnum):
    WAITING = "waiting"
    FULFILLED = "fulfilled"
    CANCELED = "canceled"


_B = BackorderStatus

BACKORDER_TRANSITIONS: Final[Mapping[BackorderStatus, frozenset[BackorderStatus]]] = MappingProxyType(
    {
        _B.WAITING: frozenset({_B.FULFILLED, _B.CANCELED}),  # capacity came back; switched or canceled
        _B.FULFILLED: frozenset({_B.WAITING, _B.CANCELED}),  # waiting again: capacity went before the create
        _B.CANCELED: frozenset(),
    }
)
"""Where each backorder status may go next."""


def backorder_transition(current: BackorderStatus, target: BackorderStatus) -> BackorderStatus:
    """Return `target` if a backorder in `current` may move there, else raise `TransitionError`."""
    if target not in BACKORDER_TRANSITIONS[current]:
        raise TransitionError(f"This backorder is {current.value} and cannot become {target.value}.")
    return target


@dataclass(frozen=True, slots=True)
class Milestone:
    """The next date that matters to the customer, with what happens then."""

    label: str
    at: datetime | None


def next_milestone(status: SubscriptionStatus, *, period_end: datetime | None, effective_at: datetime | None,
                   canceled_at: datetime | None, auto_renew: bool = True, free: bool = False,
                   servers_delete_at: datetime | None = None, purged: bool = False,
                   billed_elsewhere: bool = False) -> Milestone:
    """Next charge for a running subscription, the end date for one that is ending, and so on.

    A free subscription is never charged, so its milestones speak of its start and end, never of billing. One that
    a marketplace bills (`billed_elsewhere`) is renewed and charged by the marketplace, on its own dates.
    """
    if free and status in (_S.ACTIVE, _S.PENDING_BACKORDER, _S.PENDING_FULFILLMENT):
        return _free_milestone(status, period_end, auto_renew)
    if billed_elsewhere and status is _S.ACTIVE:
        return Milestone("Renewed by its marketplace", None)
    if billed_elsewhere and status is _S.SUSPENDED:
        return Milestone("Canceled unless paid at its marketplace by", effective_at)
    if status is _S.ACTIVE:
        return Milestone("Renews" if auto_renew else "Ends", period_end)
    if status is _S.PENDING_CANCEL:
        return Milestone("Ends", effective_at)
    if status is _S.SUSPENDED:
        return Milestone("Canceled unless paid by", effective_at)
    if status is _S.CANCELED:
        if servers_delete_at and not purged:
            return Milestone("Servers deleted", servers_delete_at)
        return Milestone("Ended", canceled_at)
    if status is _S.PENDING_BACKORDER:
        return Milestone("Billing starts when capacity is free and your server is ready", None)
    return Milestone("Billing starts when your server is ready", None)


def _free_milestone(status: SubscriptionStatus, period_end: datetime | None, auto_renew: bool) -> Milestone:
    if status is _S.ACTIVE:
        return Milestone("Runs until you cancel", None) if auto_renew else Milestone("Ends", period_end)
    if status is _S.PENDING_BACKORDER:
        return Milestone("Starts when capacity is free and your server is ready", None)
    return Milestone("Starts when your server is ready", None)


@dataclass(frozen=True)
class ChargeOutlook:
    """Whether and when a subscription is charged next: `at` for the renewal charge, else why there is none."""

    at: datetime | None
    instead: str = ""


def charge_outlook(status: SubscriptionStatus, *, price_minor: int, auto_renew: bool, period_end: datetime | None,
                   ) -> ChargeOutlook:
    """The next renewal charge (its price, at the end of the current period) of a subscription that renews; for
    one that does not, what happens instead. A free plan says nothing: it never speaks of billing."""
    if price_minor == 0:
        return ChargeOutlook(None)
    if status is _S.ACTIVE and auto_renew and period_end is not None:
        return ChargeOutlook(period_end)
    if status is _S.ACTIVE or status is _S.PENDING_CANCEL:
        return ChargeOutlook(None, "No further charges: it ends with the current period")
    if status is _S.SUSPENDED:
        return ChargeOutlook(None, "No charges while suspended: paying the open invoice reinstates it")
    if status is _S.CANCELED:
        return ChargeOutlook(None, "No further charges")
    return ChargeOutlook(None)  # not started: its milestone says billing starts when the server is ready
