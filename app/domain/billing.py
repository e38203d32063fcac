"""Vocabulary of charges (open positions)."""

from __future__ import annotations

from enum import StrEnum


class ChargeKind(StrEnum):
    FIRST_PERIOD = "first_period"
    RENEWAL = "renewal"
    PRORATION_CREDIT = "proration_credit"
    PRORATION_DEBIT = "proration_debit"
