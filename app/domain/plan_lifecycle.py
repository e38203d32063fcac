"""The lifecycle of products and plans as a transition table, and the rules of migration targets and mappings.

States (app/domain/catalogue.py): draft -> published -> deprecated -> retired. What each action does:

- publish: a draft becomes orderable;
- deprecate: no new orders; subscribers keep their service;
- set or clear a migration target, with or without deprecating: customers are offered the move, they choose;
- supersede: a product's next version is made as a draft copy, edited, published, and the old product is
  deprecated with a target for each of its plans;
- replace: every subscriber of a plan is moved now to the plan it is mapped to (many plans may map to one),
  and the emptied plan is retired; a free plan may not map to a paid one (the customer has no billing yet);
- retire: every subscription is canceled with its billing, and the end-of-life rules apply to its servers.

Refusals are `CatalogueError`s whose message is shown to the admin as is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Final

from app.domain.catalogue import CatalogueState
from app.domain.plan_changes import carried_server_type
from app.domain.plan_offers import Offers, unit_price
from app.domain.pricing import PricingError, prorate


class CatalogueAction(StrEnum):
    PUBLISH = "publish"
    DEPRECATE = "deprecate"
    SET_TARGET = "set_target"
    CLEAR_TARGET = "clear_target"
    SUPERSEDE = "supersede"
    REPLACE = "replace"
    RETIRE = "retire"

    @property
    def label(self) -> str:
        return _LABELS[self]

    @property
    def bulk(self) -> bool:
        """Whether it touches every subscription of the plan (a tracked operation in the background)."""
        return self in (CatalogueAction.REPLACE, CatalogueAction.RETIRE)


_LABELS: Final = MappingProxyType({
    CatalogueAction.PUBLISH: "Publish", CatalogueAction.DEPRECATE: "Deprecate",
    CatalogueAction.SET_TARGET: "Set migration target", CatalogueAction.CLEAR_TARGET: "Clear migration target",
    CatalogueAction.SUPERSEDE: "Supersede", CatalogueAction.REPLACE: "Replace", CatalogueAction.RETIRE: "Retire",
})

_D, _P, _X, _R = (CatalogueState.DRAFT, CatalogueState.PUBLISHED, CatalogueState.DEPRECATED,
                  CatalogueState.RETIRED)
_A = CatalogueAction

TRANSITIONS: Final[Mapping[tuple[CatalogueState, CatalogueAction], CatalogueState]] = MappingProxyType({
    (_D, _A.PUBLISH): _P,
    (_P, _A.DEPRECATE): _X,
    (_P, _A.SET_TARGET): _P,  # customers are offered the move; new orders still welcome
    (_X, _A.SET_TARGET): _X,
    (_P, _A.CLEAR_TARGET): _P,
    (_X, _A.CLEAR_TARGET): _X,
    (_P, _A.SUPERSEDE): _X,  # deprecated, with the newer version as its target
    (_X, _A.SUPERSEDE): _X,
    (_P, _A.REPLACE): _R,  # retired at once: no new orders while its subscribers move
    (_X, _A.REPLACE): _R,
    (_P, _A.RETIRE): _R,
    (_X, _A.RETIRE): _R,
})
"""Every (state, action) allowed and the state it leads to; nothing leaves `retired`."""

_REFUSALS: Final = MappingProxyType({
    _D: "A draft has no subscribers and offers nothing yet: publish it first (or edit it).",
    _P: "It is published already.",
    _X: "It is deprecated already, and a deprecated plan is never published again.",
    _R: "A retired plan is final: nothing can be done with it any more.",
})


class CatalogueError(Exception):
    """A refused catalogue change; the message is written for the admin."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def next_state(state: CatalogueState, action: CatalogueAction) -> CatalogueState:
    """The state `action` leads to from `state`, or CatalogueError."""
    try:
        return TRANSITIONS[(state, action)]
    except KeyError:
        raise CatalogueError(f"{action.label}: {_REFUSALS[state]}") from None


def allowed_actions(state: CatalogueState) -> frozenset[CatalogueAction]:
    """The buttons an admin may see for a plan or product in `state`."""
    return frozenset(action for (source, action) in TRANSITIONS if source is state)


@dataclass(frozen=True, slots=True)
class PlanFacts:
    """What the rules need to know of a plan."""

    id: int
    product_id: int
    state: CatalogueState
    price_minor: int
    currency: str
    interval: str
    server_type: str | None = None  # the plan's default `serverType`, if its service type has servers

    @property
    def free(self) -> bool:
        return self.price_minor == 0


def check_target(source: PlanFacts, target: PlanFacts) -> None:
    """Whether customers of `source` may be offered `target` to move to (they choose; free to paid is fine)."""
    if source.id == target.id:
        raise CatalogueError("A plan cannot be its own migration target.")
    if target.state is not CatalogueState.PUBLISHED:
        raise CatalogueError("A migration target must be a published plan (one that takes orders).")
    if source.currency != target.currency:
        raise CatalogueError("A migration target must be priced in the same currency.")
    if source.interval != target.interval:
        raise CatalogueError("A migration target must bill in the same interval (monthly or yearly).")


def check_mapping(sources: Mapping[int, PlanFacts], targets: Mapping[int, PlanFacts],
                  mapping: Mapping[int, int]) -> None:
    """Whether every plan of `mapping` (source id -> target id) may have its subscribers moved now.

    Many sources may map to one target; a target may not itself be moved; a free plan may not map to a paid
    one, since its customers have set up no billing.
    """
    if not mapping:
        raise CatalogueError("Choose a plan to move the subscribers to.")
    for source_id, target_id in mapping.items():
        source, target = sources.get(source_id), targets.get(target_id)
        if source is None or target is None:
            raise CatalogueError("Choose a plan of this catalogue for every plan.")
        if target_id in mapping:
            raise CatalogueError("A plan that is being replaced cannot receive subscribers.")
        next_state(source.state, CatalogueAction.REPLACE)
        check_target(source, target)
        if source.free and not target.free:
            raise CatalogueError(f"Free plans cannot be moved to a paid plan: its customers set up no billing. "
                                 f"Supersede it instead, so that each customer chooses (plan {source.id}).")


@dataclass(frozen=True, slots=True)
class MoveCharge:
    """What moving one subscription to another price now charges for the rest of its current period."""

    credit: int  # <= 0: the old price's unused time
    debit: int  # >= 0: the new price for the same time

    @property
    def net(self) -> int:
        return self.credit + self.debit


NO_CHARGE: Final = MoveCharge(0, 0)


def move_charge(old_price: int, new_price: int, currency: str, *, billed: bool, period_start: datetime | None,
                period_end: datetime | None, at: datetime) -> MoveCharge:
    """The proration of a move at `at` (app/domain/pricing.prorate): nothing when the prices are equal, when
    the subscription is not being billed (not active yet, suspended) or when `at` is outside its period.

    A bulk replace has the database compute the same for many subscriptions at once: its SQL form, with these
    conditions and the same arithmetic (`pricing.prorated_lines`), is app/models/pricing_sql.move_charge_sql."""
    if not billed or old_price == new_price or period_start is None or period_end is None:
        return NO_CHARGE
    if not period_start <= at <= period_end or not period_start < period_end:
        return NO_CHARGE
    proration = prorate(old_price, new_price, currency, period_start, period_end, at)
    return MoveCharge(proration.credit.amount, proration.debit.amount)


def needs_resize(current_server_type: str | None, target_server_type: str | None) -> bool | None:
    """Whether the server must be resized for the target plan; None when the target names no server type."""
    if target_server_type is None:
        return None
    return current_server_type != target_server_type


@dataclass(frozen=True, slots=True)
class Landing:
    """Where a subscription lands when its plan is replaced: its server type there and one seat's price."""

    server_type: str | None
    unit_price_minor: int


def replaced_into(offers: Offers, base_price_minor: int, default_server_type: str | None, *,
                  server_type: str | None, location: str | None) -> Landing:
    """A subscription moved by a replace keeps its server type when the target offers it, else takes the
    target's default (a resize), as a customer's own plan change does (app/domain/plan_changes.py
    carried_server_type); it pays the target's price for that type plus the target's surcharge for its
    location. Its servers stay where they are: a location the target does not offer adds no surcharge (a
    replace moves everyone; it cannot refuse one subscriber as a customer's own change would)."""
    offered = {price.server_type for price in offers.prices} or None
    landed = carried_server_type(server_type, offered, default_server_type)
    located = location if location and offers.location_of(location) else None
    try:
        unit = unit_price(base_price_minor, offers, server_type=landed if offers.prices else None, location=located)
    except PricingError:  # the target's default is not among its prices: its lowest
        unit = unit_price(base_price_minor, offers, server_type=None, location=located)
    return Landing(landed, unit)
