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
    """The share of the price we keep, in basis points (rounded half up, towards +inf on ties); None for a free
    price, where a margin means nothing."""
    if price_minor <= 0:
        return None
    scaled = (price_minor - cost_minor) * BASIS_POINTS
    return (2 * scaled + price_minor) // (2 * price_minor)


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
