"""Marketplaces that sell the portal's plans, and how their subscriptions' states drive the portal's lifecycle.

A marketplace subscription is a portal subscription with an external reference: the marketplace bills it, the
portal runs it. Each marketplace names its states its own way; `external_state` brings them to the portal's
`ExternalState`, and `sync_action` says which lifecycle action (if any) brings the portal's subscription in
line with what the marketplace says. Microsoft's webhook actions map to lifecycle actions in `WEBHOOK_ACTIONS`.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Final

from app.domain.subscriptions import Action, SubscriptionStatus


class Marketplace(StrEnum):
    MICROSOFT = "microsoft"
    STACKIT = "stackit"

    @property
    def label(self) -> str:
        """How pages name it: "Microsoft" bills through the Azure portal or Microsoft 365 admin center."""
        return _LABELS[self]

    @property
    def store(self) -> str:
        """Where the customer manages (and cancels) what they bought."""
        return _STORES[self]


_LABELS: Final = MappingProxyType({Marketplace.MICROSOFT: "Microsoft commercial marketplace",
                                   Marketplace.STACKIT: "STACKIT Marketplace"})
_STORES: Final = MappingProxyType({Marketplace.MICROSOFT: "the Azure portal or the Microsoft 365 admin center",
                                   Marketplace.STACKIT: "the STACKIT Portal"})


class ExternalState(StrEnum):
    """A marketplace subscription's state as the portal understands it, whichever marketplace reported it."""

    PENDING = "pending"  # bought, waiting for the publisher (Microsoft's PendingFulfillmentStart)
    ACTIVE = "active"  # billed by the marketplace
    SUSPENDED = "suspended"  # unpaid at the marketplace (Microsoft) or made inactive (STACKIT)
    CANCELLING = "cancelling"  # ends at the end of its term (STACKIT)
    CANCELLED = "cancelled"  # ended (Microsoft's Unsubscribed)
    REJECTED = "rejected"  # never approved within its time to live (STACKIT)

    @property
    def label(self) -> str:
        return self.value.capitalize()

    @property
    def ended(self) -> bool:
        return self in (ExternalState.CANCELLED, ExternalState.REJECTED)


MICROSOFT_STATES: Final[Mapping[str, ExternalState]] = MappingProxyType({
    "NotStarted": ExternalState.PENDING,
    "PendingFulfillmentStart": ExternalState.PENDING,
    "Subscribed": ExternalState.ACTIVE,
    "Suspended": ExternalState.SUSPENDED,
    "Unsubscribed": ExternalState.CANCELLED,
})
"""`saasSubscriptionStatus` of the SaaS Fulfillment API v2."""

STACKIT_STATES: Final[Mapping[str, ExternalState]] = MappingProxyType({
    "SUBSCRIPTION_PENDING": ExternalState.PENDING,
    "SUBSCRIPTION_ACTIVE": ExternalState.ACTIVE,
    "SUBSCRIPTION_INACTIVE": ExternalState.SUSPENDED,
    "SUBSCRIPTION_CANCELLING": ExternalState.CANCELLING,
    "SUBSCRIPTION_CANCELLED": ExternalState.CANCELLED,
    "SUBSCRIPTION_REJECTED": ExternalState.REJECTED,
})
"""`lifecycleState` of the STACKIT vendor API."""


class UnknownState(ValueError):
    """A state the marketplace added after this code was written: recorded, never acted on."""


def external_state(marketplace: Marketplace, raw: str) -> ExternalState:
    states = MICROSOFT_STATES if marketplace is Marketplace.MICROSOFT else STACKIT_STATES
    try:
        return states[raw]
    except KeyError:
        raise UnknownState(f"{marketplace.label} reported an unknown state {raw[:40]!r}") from None


_S = SubscriptionStatus
_OPEN = frozenset({_S.PENDING_FULFILLMENT, _S.PENDING_BACKORDER, _S.ACTIVE, _S.PENDING_CANCEL, _S.SUSPENDED})


def sync_action(portal: SubscriptionStatus, external: ExternalState) -> Action | None:
    """The lifecycle action that makes the portal's subscription agree with the marketplace's state, or None.

    The marketplace is the source of truth for what it bills: ended there ends it here at once (its servers are
    kept for the retention period, then deleted); unpaid there suspends it here (data kept, servers off); paid
    again reinstates it; a cancellation at the term's end is scheduled by the plan's rule and withdrawn when the
    marketplace withdraws it. A pending external state changes nothing: the portal is still delivering.
    """
    if external.ended:
        return Action.TERMINATE if portal in _OPEN else None
    if external is ExternalState.SUSPENDED:
        return Action.SUSPEND if portal is _S.ACTIVE else None
    if external is ExternalState.CANCELLING:
        return Action.CANCEL if portal is _S.ACTIVE else None
    if external is ExternalState.ACTIVE:
        if portal is _S.SUSPENDED:
            return Action.REINSTATE
        if portal is _S.PENDING_CANCEL:
            return Action.RESUME
    return None


class WebhookAction(StrEnum):
    """The `action` of a Microsoft webhook call (and of an operation)."""

    CHANGE_PLAN = "ChangePlan"
    CHANGE_QUANTITY = "ChangeQuantity"
    SUSPEND = "Suspend"
    REINSTATE = "Reinstate"
    RENEW = "Renew"
    UNSUBSCRIBE = "Unsubscribe"
    TRANSFER = "Transfer"

    @property
    def is_change(self) -> bool:
        """A change the publisher accepts or refuses within 10 seconds (PATCH the operation)."""
        return self in (WebhookAction.CHANGE_PLAN, WebhookAction.CHANGE_QUANTITY)


WEBHOOK_ACTIONS: Final[Mapping[WebhookAction, Action]] = MappingProxyType({
    WebhookAction.SUSPEND: Action.SUSPEND,
    WebhookAction.REINSTATE: Action.REINSTATE,
    WebhookAction.RENEW: Action.RENEW,
    WebhookAction.UNSUBSCRIBE: Action.TERMINATE,  # access ends now; the retention countdown starts
})
"""The lifecycle action each notify-style webhook applies (changes go through the plan-change path instead)."""

MINIMUM_RETENTION_DAYS: Final = 7
"""Microsoft: after Unsubscribe, keep the customer's data for recovery for at least seven days."""
