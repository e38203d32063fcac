"""Offers of a cloud and the alternatives to suggest when a request cannot be placed.

The rules (from the providers' behaviour): first the same server type in other locations where it is
available, the same network zone first, then by price; then other types in the same location that are
available, not deprecated, of the same architecture and at least as large, cheapest first, recommended first.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from app.domain.geography import location_label


@dataclass(frozen=True)
class Offer:
    """One server type in one location, as the provider offers it now. Prices in minor units."""

    server_type: str
    location: str
    network_zone: str
    price_minor: int
    currency: str
    available: bool
    cores: int
    memory_mb: int
    disk_gb: int
    architecture: str = "x86"
    deprecated: bool = False
    recommended: bool = False


class AlternativeKind(StrEnum):
    OTHER_LOCATION = "other_location"
    OTHER_SERVER_TYPE = "other_server_type"


@dataclass(frozen=True)
class Alternative:
    kind: AlternativeKind
    server_type: str
    location: str
    price_minor: int
    currency: str


@dataclass(frozen=True)
class Availability:
    """Whether a server type can be placed in a location now; `permanent` when it never can be there."""

    available: bool
    message: str = ""
    permanent: bool = False
    alternatives: tuple[Alternative, ...] = ()


def _as_alternative(offer: Offer, kind: AlternativeKind) -> Alternative:
    return Alternative(kind, offer.server_type, offer.location, offer.price_minor, offer.currency)


def other_locations(offers: list[Offer], zone: str | None, server_type: str, location: str) -> list[Alternative]:
    same_type = [o for o in offers if o.server_type == server_type and o.location != location and o.available]
    same_type.sort(key=lambda o: (o.network_zone != zone, o.price_minor, o.location))
    return [_as_alternative(o, AlternativeKind.OTHER_LOCATION) for o in same_type]


def other_server_types(offers: list[Offer], wanted: Offer | None, server_type: str,
                       location: str) -> list[Alternative]:
    def big_enough(o: Offer) -> bool:
        if wanted is None:
            return True
        return (o.architecture == wanted.architecture and o.cores >= wanted.cores
                and o.memory_mb >= wanted.memory_mb and o.disk_gb >= wanted.disk_gb)

    candidates = [o for o in offers if o.location == location and o.server_type != server_type
                  and o.available and not o.deprecated and big_enough(o)]
    candidates.sort(key=lambda o: (o.price_minor, not o.recommended, o.server_type))
    return [_as_alternative(o, AlternativeKind.OTHER_SERVER_TYPE) for o in candidates]


def availability(offers: list[Offer], server_type: str, location: str, *, limit: int = 6) -> Availability:
    """Availability of `server_type` in `location` among `offers`, with alternatives when it is not."""
    wanted = next((o for o in offers if o.server_type == server_type and o.location == location), None)
    if wanted is not None and wanted.available:
        return Availability(True)
    # When the type is not offered here, its size comes from another location and the zone from another type.
    reference = wanted or next((o for o in offers if o.server_type == server_type), None)
    zone = next((o.network_zone for o in offers if o.location == location), None)
    known_type = reference is not None
    alternatives = (other_locations(offers, zone, server_type, location)[: limit // 2 or 1]
                    + other_server_types(offers, reference, server_type, location))[:limit]
    if wanted is None:
        message = (f"{server_type} is not offered in {location_label(location)}." if known_type
                   else f"The server type {server_type} is not offered.")
        return Availability(False, message, permanent=True, alternatives=tuple(alternatives))
    return Availability(False, f"{server_type} is sold out in {location_label(location)} for now.",
                        alternatives=tuple(alternatives))
