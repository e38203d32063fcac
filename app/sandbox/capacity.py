"""Capacity per (server type, location), as the sandbox and the fake clouds keep it. Unlimited unless set.

Not thread-safe on its own: each cloud holds its own lock around it.
"""

from __future__ import annotations

from collections.abc import Iterator

Key = tuple[str, str]  # (server type or size, location or region)


class Capacity:
    def __init__(self) -> None:
        self._left: dict[Key, int] = {}  # absent = unlimited

    def set(self, key: Key, count: int | None) -> None:
        """How many more servers fit; None lifts the limit."""
        if count is not None and count < 0:
            raise ValueError("capacity cannot be negative")
        if count is None:
            self._left.pop(key, None)
        else:
            self._left[key] = count

    def get(self, key: Key) -> int | None:
        return self._left.get(key)

    def allows(self, key: Key) -> bool:
        return self._left.get(key) != 0

    def take(self, key: Key) -> None:
        """A server was made here."""
        if key in self._left:
            self._left[key] -= 1

    def give_back(self, key: Key) -> None:
        """A server made here was deleted."""
        if key in self._left:
            self._left[key] += 1

    def items(self) -> Iterator[tuple[Key, int]]:
        return iter(self._left.items())
