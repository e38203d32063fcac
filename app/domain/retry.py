"""How long to wait before trying a cloud again: exponential backoff with jitter, honouring Retry-After."""

from __future__ import annotations

import random

MAX_ATTEMPTS = 6


def backoff_delay(attempt: int, *, retry_after: float | None = None, base: float = 2.0, cap: float = 300.0,
                  rand: random.Random | None = None) -> float:
    """Seconds before attempt `attempt + 1`. Full jitter on base * 2**(attempt-1), never under Retry-After."""
    ceiling = min(cap, base * 2 ** max(attempt - 1, 0))
    jittered = (rand or random).uniform(ceiling / 2, ceiling)
    return max(jittered, retry_after or 0.0)
