"""What the clouds charge us and what we charge for it: the arithmetic a price import needs.

Money is integer minor units; a markup is in basis points (10,000 = 100 %). Selling prices round half up to
the minor unit, once, so a price shown is the price charged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

BASIS_POINTS = 10_000

Key = tuple[str, str]  # (server type, location)


def selling_price(cost_minor: int, markup_bp: int) -> int:
    """`cost_minor` plus `markup_bp` basis points of it, rounded half up to the minor unit (integers only)."""
    if cost_minor < 0:
        raise ValueError("a cost cannot be negative")
    if markup_bp < -BASIS_POINTS:
        raise ValueError("a markup below -100 % would make the price negative")
    scaled = cost_minor * (BASIS_POINTS + markup_bp)
    return (2 * scaled + BASIS_POINTS) // (2 * BASIS_POINTS)


def margin_bp(price_minor: int, cost_minor: int) -> int | None:
    """The share of the price we keep, in basis points, rounded half up (half away from zero for a loss, as the
    portal rounds money); None for a free price, where a margin means nothing."""
    if price_minor <= 0:
        return None
    scaled = (price_minor - cost_minor) * BASIS_POINTS
    magnitude = (2 * abs(scaled) + price_minor) // (2 * price_minor)
    return -magnitude if scaled < 0 else magnitude


class Change(StrEnum):
    ADDED = "added"
    REMOVED = "removed"
    CHANGED = "changed"


@dataclass(frozen=True)
class PriceChange:
    """One difference between the prices we have and the ones a cloud lists now (None where there is none)."""

    server_type: str
    location: str
    change: Change
    old_minor: int | None
    new_minor: int | None


def price_changes(current: Mapping[Key, int], imported: Mapping[Key, int]) -> list[PriceChange]:
    """What an import would change, sorted by server type and location: added, removed and changed prices;
    unchanged ones are left out."""
    changes = []
    for key in sorted(current.keys() | imported.keys()):
        old, new = current.get(key), imported.get(key)
        if old == new:
            continue
        change = Change.ADDED if old is None else Change.REMOVED if new is None else Change.CHANGED
        changes.append(PriceChange(key[0], key[1], change, old, new))
    return changes


@dataclass(frozen=True)
class TypeCost:
    """A server type's cost for a plan: the dearest of the plan's locations (so the markup holds in every one of
    them), and each location's cost where they differ."""

    server_type: str
    cost_minor: int
    by_location: tuple[tuple[str, int], ...] = ()  # empty when every location costs the same

    @property
    def spread_minor(self) -> int:
        return max((c for _, c in self.by_location), default=self.cost_minor) - min(
            (c for _, c in self.by_location), default=self.cost_minor)


def type_costs(monthly: Mapping[Key, int], *, locations: frozenset[str] | None,
               months: int) -> dict[str, TypeCost]:
    """Each server type's cost per billing period (`months` of the cloud's monthly price) over `locations`
    (None: wherever the cloud sells it). A location surcharge is the same for every server type while a cloud's
    location differences are not, so the dearest location sets the cost and the others are shown, not imported."""
    if months < 1:
        raise ValueError("a billing period is at least one month")
    by_type: dict[str, dict[str, int]] = {}
    for (server_type, location), price in monthly.items():
        if locations is None or location in locations:
            by_type.setdefault(server_type, {})[location] = price * months
    costs = {}
    for server_type, per_location in sorted(by_type.items()):
        spread = tuple(sorted(per_location.items())) if len(set(per_location.values())) > 1 else ()
        costs[server_type] = TypeCost(server_type, max(per_location.values()), spread)
    return costs
