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

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from datetime import datetime, timedelta
from typing import TypeVar

from flask import current_app

from app.clock import now
from app.domain.availability import Availability, Offer
from app.domain.catalogue import Provider
from app.models import TenantLike
from app.services.clouds import provider_for

T = TypeVar("T")
MAX_ENTRIES = 4096


class _Answers:
    """A bounded, thread-safe map of key -> (when it was asked, answer); the least recently used goes first."""

    def __init__(self, max_entries: int) -> None:
        self._entries: OrderedDict[Hashable, tuple[datetime, object]] = OrderedDict()
        self._max_entries = max_entries
        self._lock = threading.Lock()

    def get(self, key: Hashable, moment: datetime, ttl: timedelta) -> tuple[bool, object]:
        """(True, answer) if one asked in the `ttl` before `moment` is kept; else (False, None)."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return False, None
            asked_at, answer = entry
            if not asked_at <= moment < asked_at + ttl:  # also when the clock was set back past it
                del self._entries[key]
                return False, None
            self._entries.move_to_end(key)
            return True, answer

    def put(self, key: Hashable, moment: datetime, answer: object) -> None:
        with self._lock:
            self._entries[key] = (moment, answer)
            self._entries.move_to_end(key)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


_answers = _Answers(MAX_ENTRIES)


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
