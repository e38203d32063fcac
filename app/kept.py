"""A bounded, thread-safe map of answers kept for a while: the one in-process cache both caches use.

`app/services/availability_cache.py` keeps the clouds' answers on the app's clock (datetimes; tests move it),
`app/selectors/tenants.py` keeps each host's tenant on a monotonic clock (seconds); `get` takes the moment and
the time to keep in the same unit, whichever it is.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any


class KeptAnswers:
    """key -> (when it was asked, answer), at most `max_entries` of them; the least recently used goes first."""

    def __init__(self, max_entries: int) -> None:
        self._entries: OrderedDict[Hashable, tuple[Any, object]] = OrderedDict()
        self._max_entries = max_entries
        self._lock = threading.Lock()

    def get(self, key: Hashable, moment: Any, keep_for: Any) -> tuple[bool, object]:
        """(True, answer) if one asked in the `keep_for` before `moment` is kept; else (False, None)."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return False, None
            asked_at, answer = entry
            if not asked_at <= moment < asked_at + keep_for:  # also when the clock was set back past it
                del self._entries[key]
                return False, None
            self._entries.move_to_end(key)
            return True, answer

    def put(self, key: Hashable, moment: Any, answer: object) -> None:
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
