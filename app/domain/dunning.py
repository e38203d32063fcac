"""When an unpaid invoice is tried again, when it suspends what it bills, and how a tenant's dunning settings
are checked. Pure: dates in, dates out."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Final

NO_PAYMENT_METHOD: Final = "no_payment_method"
"""The failure code of a try made while the customer has no card on file."""

UNPAID_INVOICE: Final = "unpaid_invoice"
"""The key, in a suspension's event data, of the invoice whose non-payment suspended the subscription."""

RETRY_DAY_MIN: Final = 1
RETRY_DAY_MAX: Final = 60
MAX_RETRIES: Final = 10


def next_attempt(first_try: datetime, retry_days: Sequence[int], failed_tries: int) -> datetime | None:
    """When to try again after `failed_tries` scheduled tries failed, counted from the first try.

    With retry days (3, 5, 7) the tries are on day 0, 3, 5 and 7; after the fourth failure none is planned.
    """
    if failed_tries < 1 or failed_tries > len(retry_days):
        return None
    return first_try + timedelta(days=retry_days[failed_tries - 1])


def suspends_at(due_at: datetime, suspend_after_days: int) -> datetime:
    """When an invoice still unpaid suspends the subscriptions it bills."""
    return due_at + timedelta(days=suspend_after_days)


def check_retry_days(days: Sequence[int]) -> str | None:
    """Why these retry days are refused (None when they are fine): strictly increasing, each within 1-60."""
    if len(days) > MAX_RETRIES:
        return f"Give at most {MAX_RETRIES} retry days."
    if any(not RETRY_DAY_MIN <= day <= RETRY_DAY_MAX for day in days):
        return f"Each retry day must be between {RETRY_DAY_MIN} and {RETRY_DAY_MAX}."
    if any(later <= earlier for earlier, later in pairwise(days)):
        return "Retry days must increase: each one later than the one before, for example 3, 5, 7."
    return None
