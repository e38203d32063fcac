"""What the portal tells customers by email, and which of those messages a customer may turn off.

Each event names the template that renders it (`templates/emails/<event>.txt` and `.html`, sharing
`templates/emails/_layout.*`). Messages about money, security and deletion always go; the rest are optional
and a customer can opt out of them on their account's Notifications page.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Category(StrEnum):
    SERVICE = "service"  # what happens to their servers and subscriptions
    SECURITY = "security"  # their account: passwords, addresses, sign-in
    MONEY = "money"  # invoices, payments
    DELETION = "deletion"  # servers or data about to go, or gone


class Event(StrEnum):
    """One kind of email. The value names its templates and is kept in the email log."""

    SERVER_READY = "server_ready"
    CANCELLATION_SCHEDULED = "cancellation_scheduled"
    CANCELLATION_EFFECTIVE = "cancellation_effective"
    DELETION_AHEAD = "deletion_ahead"  # servers deleted in a few days
    DELETION_DONE = "deletion_done"
    SUSPENDED = "suspended"
    REINSTATED = "reinstated"
    PLAN_DEPRECATED = "plan_deprecated"  # with the migration target, if any
    PLAN_REPLACED = "plan_replaced"  # subscriptions moved to another plan by the tenant: new prices, proration
    PLAN_CHANGED = "plan_changed"  # a plan or quantity change: applied now, scheduled, or applied at renewal
    PRICE_CHANGED = "price_changed"  # a plan's new price, and from when the subscriber pays it
    PASSWORD_CHANGED = "password_changed"  # noqa: S105 (an event name)
    PASSWORD_RESET = "password_reset"  # noqa: S105 (an event name): the link to set a new password
    EMAIL_CHANGED = "email_changed"  # to the old address
    VERIFY_EMAIL = "verify_email"  # the link that confirms an address (registration, email change)
    ACCOUNT_EXISTS = "account_exists"  # someone tried to register or move to an address that has an account
    ACCOUNT_DELETED = "account_deleted"
    INVOICE_ISSUED = "invoice_issued"  # a finalized invoice: its number, amount due and due date
    PAYMENT_RECEIVED = "payment_received"  # the receipt of an invoice paid
    PAYMENT_FAILED = "payment_failed"  # a try to collect an invoice failed: why, the next try, pay with another card
    CREDIT_NOTE_ISSUED = "credit_note_issued"  # a correction of an invoice: how much, why, where the money goes
    # To the tenant's admins: renew it, or purchases cannot be activated.
    MARKETPLACE_SECRET_EXPIRING = "marketplace_secret_expiring"  # noqa: S105 (an event name)

    @property
    def spec(self) -> EventSpec:
        return EVENTS[self]

    @property
    def optional(self) -> bool:
        return self.spec.optional


@dataclass(frozen=True, slots=True)
class EventSpec:
    category: Category
    label: str  # what the customer sees on the Notifications page and in the email log
    optional: bool = False  # the customer may turn it off


EVENTS: dict[Event, EventSpec] = {
    Event.SERVER_READY: EventSpec(Category.SERVICE, "Server ready, with how to log in", optional=True),
    Event.CANCELLATION_SCHEDULED: EventSpec(Category.SERVICE, "Cancellation scheduled", optional=True),
    Event.CANCELLATION_EFFECTIVE: EventSpec(Category.DELETION, "Cancellation took effect"),
    Event.DELETION_AHEAD: EventSpec(Category.DELETION, "Servers to be deleted in a few days"),
    Event.DELETION_DONE: EventSpec(Category.DELETION, "Servers deleted"),
    Event.SUSPENDED: EventSpec(Category.MONEY, "Subscription suspended"),
    Event.REINSTATED: EventSpec(Category.SERVICE, "Subscription reinstated", optional=True),
    Event.PLAN_DEPRECATED: EventSpec(Category.SERVICE, "Plan deprecated, with where to move", optional=True),
    Event.PLAN_REPLACED: EventSpec(Category.MONEY, "Subscriptions moved to a new plan, with the new prices"),
    Event.PLAN_CHANGED: EventSpec(Category.MONEY, "Plan or quantity changed, with what it costs"),
    Event.PRICE_CHANGED: EventSpec(Category.MONEY, "Price change of your plan, with the date it applies"),
    Event.PASSWORD_CHANGED: EventSpec(Category.SECURITY, "Password changed"),
    Event.PASSWORD_RESET: EventSpec(Category.SECURITY, "Password reset link"),
    Event.EMAIL_CHANGED: EventSpec(Category.SECURITY, "Login email changed"),
    Event.VERIFY_EMAIL: EventSpec(Category.SECURITY, "Confirm your email address"),
    Event.ACCOUNT_EXISTS: EventSpec(Category.SECURITY, "Someone used your address to register"),
    Event.ACCOUNT_DELETED: EventSpec(Category.DELETION, "Account deleted"),
    Event.INVOICE_ISSUED: EventSpec(Category.MONEY, "Invoice issued"),
    Event.PAYMENT_RECEIVED: EventSpec(Category.MONEY, "Payment received (receipt)"),
    Event.PAYMENT_FAILED: EventSpec(Category.MONEY, "Payment failed, with how to pay"),
    Event.CREDIT_NOTE_ISSUED: EventSpec(Category.MONEY, "Credit note issued"),
    Event.MARKETPLACE_SECRET_EXPIRING: EventSpec(Category.SERVICE, "Marketplace secret expiring or expired"),
}

OPTIONAL_EVENTS: tuple[Event, ...] = tuple(event for event in Event if event.optional)


class EmailStatus(StrEnum):
    QUEUED = "queued"  # recorded, waiting for the worker (also between retries)
    SENT = "sent"
    FAILED = "failed"  # every attempt failed
    SKIPPED = "skipped"  # the customer turned this kind off; recorded, never sent

    @property
    def label(self) -> str:
        return self.value.capitalize()


MAX_SEND_ATTEMPTS = 5


def send_retry_delay(attempt: int) -> int:
    """Seconds before attempt `attempt + 1` of a failed send: 30 s, 2 min, 8 min, 32 min."""
    return 30 * 4 ** (attempt - 1)


def wants(event: Event, opted_out: frozenset[str] | set[str] | list[str]) -> bool:
    """Whether a customer who turned off `opted_out` gets `event`: the required ones always go."""
    return not event.optional or event.value not in opted_out


WHY_ALWAYS_SENT: dict[Category, str] = {
    Category.MONEY: "It is about money you owe or were charged.",
    Category.SECURITY: "It is about the security of your account.",
    Category.DELETION: "It is about servers or data being deleted.",
    Category.SERVICE: "It is about your service.",
}
"""Why a required email cannot be turned off, as the Notifications page says it."""


def event_label(value: str) -> str:
    """What the email log calls a logged event (also one this version no longer sends)."""
    try:
        return Event(value).spec.label
    except ValueError:
        return value.replace("_", " ").capitalize()


def status_label(status: EmailStatus, attempts: int) -> str:
    """A logged email's status in words: a queued one that was tried already is being retried."""
    if status is EmailStatus.QUEUED:
        return "Retrying" if attempts else "Queued"
    if status is EmailStatus.SKIPPED:
        return "Skipped: turned off"
    return status.label


def is_secret(value: str) -> bool:
    """Whether a logged email's body may hold a secret (a link that resets a password or confirms an address):
    shown to its owner only, never to support or to someone acting for them."""
    try:
        return Event(value).spec.category is Category.SECURITY
    except ValueError:
        return True


def turned_off(wanted: set[str] | frozenset[str]) -> list[str]:
    """The opt-outs of a customer who wants the optional events in `wanted`, in a stable order."""
    return [event.value for event in OPTIONAL_EVENTS if event.value not in wanted]
