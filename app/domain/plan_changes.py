"""A customer's change of plan or quantity mid-period: what it costs, when it applies, what it does to servers.

Pure: the service gathers the terms of both plans and the period, this module decides. The preview a
customer confirms and the charges then written come from the same `preview_change`, so what is shown is
what is charged, to the minor unit.

Rules:
- An upgrade (the new recurring price is not lower) applies now: the unused part of the current price is
  credited and the rest of the period at the new price is debited, to the second (`pricing.prorate`), and
  the difference is due now.
- A downgrade applies at the end of the period, unless the current plan's downgrade rule is immediate; an
  immediate downgrade is prorated the same way, and its negative difference goes to the customer balance.
- The target is priced for the server type and location the subscription will have on it: the customer's
  server type when the target offers it, else the target's default; the location always stays (a resize
  cannot move a server), so a target that is not offered there is refused.
- A different server type means a resize: the server is stopped for it. A disk can grow but never shrink,
  so a change that needs a smaller disk than the server has is refused.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from app.domain.catalogue import ChangeRule, Interval
from app.domain.geography import location_label
from app.domain.pricing import Money, PlanPrice, PricingError, Proration, change_effective_at, check_quantity, prorate


class ChangeAction(StrEnum):
    """What the customer asked for; each has its own button and its own refusals."""

    PLAN = "plan"  # another orderable plan of the same service type
    QUANTITY = "quantity"  # the same plan, another quantity
    MIGRATE = "migrate"  # the plan's migration target, even if the current plan is deprecated

    @property
    def label(self) -> str:
        return {"plan": "Change plan", "quantity": "Change quantity",
                "migrate": "Migrate this subscription"}[self.value]


class ScheduledStatus(StrEnum):
    """A downgrade waiting for the period's end: applied at renewal, or canceled by the customer before."""

    SCHEDULED = "scheduled"
    APPLIED = "applied"
    CANCELED = "canceled"


class ChangeRefused(ValueError):
    """A change the rules do not allow; the message is written for the customer."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class PaymentMethodNeeded(ChangeRefused):
    """A paid target and no saved card: allowed once the customer has added one."""


@dataclass(frozen=True, slots=True)
class Terms:
    """One plan as the change sees it. `disk_gb` is the disk of `server_type` (None without servers)."""

    plan_id: int
    name: str
    price: PlanPrice
    orderable: bool
    server_type: str | None = None
    disk_gb: int | None = None
    usage_prices: tuple[tuple[str, int, int], ...] = ()  # metered prices: (metric, unit price, included) each


@dataclass(frozen=True, slots=True)
class Current:
    """The subscription as it stands: its plan, quantity, the recurring price it pays and its period."""

    terms: Terms
    quantity: int
    price_minor: int
    period_start: datetime
    period_end: datetime
    downgrade_rule: ChangeRule
    migration_target_id: int | None = None


@dataclass(frozen=True, slots=True)
class Preview:
    """What a change does, as the customer is shown it and as it is then applied."""

    action: ChangeAction
    target: Terms
    quantity: int
    current_price: Money
    new_price: Money
    interval: Interval
    effective_at: datetime
    immediate: bool
    upgrade: bool
    proration: Proration | None  # None when the change waits for the period's end
    resize_to: str | None  # the new server type, when the servers must be resized

    @property
    def due_now(self) -> Money:
        """What is invoiced now: the net of an immediate change, never below zero (a credit goes to the
        customer's balance instead)."""
        if self.proration is None or self.proration.net.amount <= 0:
            return Money.zero(self.new_price.currency)
        return self.proration.net

    @property
    def balance_credit(self) -> Money:
        """What an immediate downgrade leaves in the customer's favour (used before their card next time)."""
        if self.proration is None or self.proration.net.amount >= 0:
            return Money.zero(self.new_price.currency)
        return -self.proration.net


def carried_server_type(current: str | None, offered: Collection[str] | None, default: str | None) -> str | None:
    """The server type the subscription has on the target: its own when the target offers it (`offered` None:
    any type), else the target's default. None for a subscription without servers.

    A customer who chose a bigger server than a plan's default keeps it, priced at the target's price for it,
    rather than being resized down to the target's default."""
    if current is None:
        return None
    if offered is None or current in offered:
        return current
    return default


def carried_location(current: str | None, offered: Collection[str] | None, target_name: str) -> str | None:
    """The location the subscription has on the target: always its own (None without one).

    A resize changes a server's type in place and cannot move it to another location, so a target that is not
    offered where the servers are (`offered` None: anywhere) is refused."""
    if current is None or offered is None or current in offered:
        return current
    raise ChangeRefused(f"Your server is in {location_label(current)} and {target_name} is not offered there. "
                        "A server cannot move to another location, so this change is not possible; order "
                        f"{target_name} where it is offered and cancel this subscription instead.")


def preview_change(action: ChangeAction, current: Current, target: Terms, *, quantity: int, now: datetime,
                   new_price_minor: int, has_payment_method: bool) -> Preview:
    """Check the change and price it. Raises ChangeRefused (PaymentMethodNeeded for a card) with the reason.

    `new_price_minor` is the target's recurring price for `quantity` as the catalogue prices it now.
    """
    _check(action, current, target, quantity)
    if not (current.period_start <= now < current.period_end):
        raise ChangeRefused("This subscription's billing period is being renewed. Please try again in a minute.")
    if new_price_minor > 0 and not has_payment_method:
        raise PaymentMethodNeeded("Please add a card before moving to a paid plan.")
    resize_to = resize_target(current.terms, target)
    effective = change_effective_at(current.price_minor, new_price_minor, downgrade_rule=current.downgrade_rule,
                                    now=now, period_end=current.period_end)
    immediate = effective < current.period_end
    currency = current.terms.price.currency
    proration = (prorate(current.price_minor, new_price_minor, currency, current.period_start,
                         current.period_end, now) if immediate else None)
    return Preview(action=action, target=target, quantity=quantity,
                   current_price=Money(current.price_minor, currency), new_price=Money(new_price_minor, currency),
                   interval=current.terms.price.interval, effective_at=effective, immediate=immediate,
                   upgrade=new_price_minor >= current.price_minor, proration=proration, resize_to=resize_to)


def _check(action: ChangeAction, current: Current, target: Terms, quantity: int) -> None:
    if action is ChangeAction.QUANTITY:
        if target.plan_id != current.terms.plan_id:
            raise ChangeRefused("A quantity change keeps the plan; choose Change plan to move to another.")
        if not target.price.quantity_allowed:
            raise ChangeRefused("This plan is sold as a single unit; its quantity cannot be changed.")
        if quantity == current.quantity:
            raise ChangeRefused("That is the quantity you have already.")
    elif target.plan_id == current.terms.plan_id:
        raise ChangeRefused("That is the plan you have already.")
    if action is ChangeAction.MIGRATE and current.migration_target_id != target.plan_id:
        raise ChangeRefused("This plan has no such migration target.")
    if action is not ChangeAction.QUANTITY and not target.orderable:
        # A quantity change keeps a deprecated plan (its subscribers keep their service); a move needs a plan
        # that is sold now, the migration target included.
        raise ChangeRefused("That plan is not available for new orders. Please choose another plan.")
    if target.price.currency != current.terms.price.currency:
        raise ChangeRefused("That plan is billed in another currency; a change cannot move between currencies.")
    if target.price.interval is not current.terms.price.interval:
        raise ChangeRefused(f"That plan is billed per {target.price.interval.value}, yours per "
                            f"{current.terms.price.interval.value}; a change keeps the billing interval.")
    if target.usage_prices != current.terms.usage_prices:
        # Usage is billed after its period closes, at the prices of the plan the subscription is on by then.
        raise ChangeRefused("That plan bills usage at other prices than yours, so a change would bill this "
                            "period's usage at the wrong prices. Order the new plan and cancel this one instead.")
    try:
        check_quantity(target.price, quantity)
    except PricingError as error:
        raise ChangeRefused(str(error)) from None


def resize_target(current: Terms, target: Terms) -> str | None:
    """The server type the servers must be resized to, or None when they keep theirs.

    A disk can grow but never shrink back: a target whose disk is smaller than the current one's is refused.
    """
    if current.server_type is None or target.server_type is None or target.server_type == current.server_type:
        return None
    if current.disk_gb is not None and target.disk_gb is not None and target.disk_gb < current.disk_gb:
        raise ChangeRefused(f"Your server has a {current.disk_gb} GB disk and {target.name} comes with "
                            f"{target.disk_gb} GB: a disk can never shrink, so this change is not possible.")
    return target.server_type
