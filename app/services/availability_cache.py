"""The clouds' answers about capacity, kept for a few seconds for the screens that ask again and again.

The order form's availability box asks the cloud whenever an option changes, and a subscription waiting
on a backorder asks for alternatives every 10 seconds while its page is open. So the cloud's answer for
a server type in a location is kept per (tenant, cloud, server type, location), and its list of offers
per (tenant, cloud), for AVAILABILITY_CACHE_SECONDS (0: not kept at all). Errors are never kept.

An order asks with `live=True`: the cloud is asked now, so a kept "available" never lets through an order
that the cloud would refuse. Its fresh answer replaces the kept one.

Each process keeps its own answers, in memory: web processes do not share them, so with N processes a
cloud may be asked up to N times per period. Time comes from `app.clock.now()` (tests move the clock).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from datetime import timedelta
from typing import TypeVar

from flask import current_app

from app.clock import now
from app.domain.availability import Availability, Offer
from app.domain.catalogue import Provider
from app.kept import KeptAnswers
from app.models import TenantLike
from app.services.clouds import provider_for

T = TypeVar("T")
MAX_ENTRIES = 4096


_answers = KeptAnswers(MAX_ENTRIES)


def check_availability(tenant: TenantLike, provider: Provider, server_type: str, location: str, *,
                       live: bool = False) -> Availability:
    """The tenant's cloud's answer whether `server_type` can be placed in `location`, kept or (`live`) asked now.

    Raises ProviderError when the cloud cannot be asked.
    """
    return _answer(("availability", tenant.id, provider, server_type, location), live,
                   lambda: provider_for(tenant, provider).check_availability(server_type, location))


def offers(tenant: TenantLike, provider: Provider, *, live: bool = False) -> list[Offer]:
    """The tenant's cloud's offers with their availability, kept or (`live`) asked now. Raises ProviderError."""
    return list(_answer(("offers", tenant.id, provider), live,
                        lambda: tuple(provider_for(tenant, provider).offers())))


def clear() -> None:
    """Forget every kept answer (tests)."""
    _answers.clear()


def _answer(key: Hashable, live: bool, ask: Callable[[], T]) -> T:
    ttl = timedelta(seconds=current_app.config["AVAILABILITY_CACHE_SECONDS"])
    if not ttl:
        return ask()
    moment = now()
    if not live:
        found, answer = _answers.get(key, moment, ttl)
        if found:
            return answer  # type: ignore[return-value]
    fresh = ask()
    _answers.put(key, moment, fresh)
    return fresh
