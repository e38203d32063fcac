"""The protocol every marketplace adapter implements, the values it returns and the errors it raises."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from app.domain.marketplaces import ExternalState, Marketplace


class MarketplaceErrorKind(StrEnum):
    AUTH = "auth"  # the credentials are wrong or expired (Microsoft's 403 after a client secret expired)
    INVALID = "invalid"  # the request can never succeed as sent (an expired, reused or forged landing token)
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"  # a newer update was fulfilled already (409), or the state does not allow it
    TRANSIENT = "transient"  # timeouts, 5xx, 429: try again later


class MarketplaceError(Exception):
    """The marketplace could not be asked, or refused. `message` is fit for the operations log and, for
    INVALID, for the customer."""

    def __init__(self, kind: MarketplaceErrorKind, message: str, *, status: int | None = None) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message
        self.status = status

    @property
    def retryable(self) -> bool:
        return self.kind is MarketplaceErrorKind.TRANSIENT


@dataclass(frozen=True)
class ExternalSubscription:
    """A marketplace's subscription, as the portal keeps it (whichever marketplace it came from)."""

    marketplace: Marketplace
    external_id: str
    offer_id: str  # Microsoft's offerId, STACKIT's vendorProductId
    plan_id: str  # Microsoft's planId, STACKIT's vendorPlanId
    quantity: int | None
    state: ExternalState
    raw_state: str
    name: str = ""
    purchaser_email: str | None = None
    customer_ref: str = ""  # Microsoft's purchaser tenant id, STACKIT's customer project id
    term_start: datetime | None = None
    term_end: datetime | None = None
    is_test: bool = False


@dataclass(frozen=True)
class ExternalOperation:
    """An operation on a subscription as the marketplace reports it (Microsoft's Get Operation)."""

    id: str
    subscription_id: str
    action: str  # ChangePlan, ChangeQuantity, Suspend, Reinstate, Renew, Unsubscribe, ...
    status: str  # NotStarted, InProgress, Succeeded, Failed, Conflict
    plan_id: str | None = None
    quantity: int | None = None
    source: str = ""  # "Azure" (the customer, at the marketplace) or "Partner" (the publisher, from the portal)
    timestamp: datetime | None = None


@dataclass(frozen=True)
class SubscriptionPage:
    """One page of a listing; `cursor` asks for the next one, None on the last."""

    items: tuple[ExternalSubscription, ...]
    cursor: str | None


class MarketplaceAdapter(Protocol):
    """One publisher's (vendor's) account at a marketplace."""

    marketplace: Marketplace

    def resolve(self, token: str) -> ExternalSubscription:
        """The purchase a landing token (Microsoft) or redirect token (STACKIT) stands for. An expired, used or
        forged token raises MarketplaceError(INVALID)."""

    def activate(self, subscription: ExternalSubscription, *, instance_url: str) -> None:
        """Tell the marketplace the service is delivered, so its billing starts: Microsoft's Activate (plan and
        quantity as bought), STACKIT's approve (with `instance_url`, where the customer finds it)."""

    def get_subscription(self, external_id: str) -> ExternalSubscription:
        """The subscription as the marketplace knows it now."""

    def list_subscriptions(self, cursor: str | None = None) -> SubscriptionPage:
        """One page of every subscription of this publisher (cancelled ones included)."""

    def get_operation(self, external_id: str, operation_id: str) -> ExternalOperation:
        """An operation re-read from the marketplace: a webhook's payload is never trusted alone. A marketplace
        without operations (STACKIT) raises MarketplaceError(NOT_FOUND)."""

    def report_operation(self, external_id: str, operation_id: str, *, success: bool) -> None:
        """Accept (success) or refuse a change the marketplace asked for. A marketplace without operations
        (STACKIT) raises MarketplaceError(INVALID)."""
