"""The test cards both payment fakes accept, and what each does (Stripe's numbers and decline codes)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class TestCard:
    brand: str
    saves: bool  # False: the hosted page refuses it at once
    charges: bool  # False: every charge on it is declined
    decline_code: str = ""
    message: str = ""

    __test__ = False  # not a pytest test class


_DECLINED = "Your card was declined."

CARDS: Final[dict[str, TestCard]] = {
    "4242424242424242": TestCard("visa", saves=True, charges=True),
    "5555555555554444": TestCard("mastercard", saves=True, charges=True),
    "4000000000000002": TestCard("visa", saves=False, charges=False, decline_code="generic_decline",
                                 message=_DECLINED),
    "4000000000009995": TestCard("visa", saves=False, charges=False, decline_code="insufficient_funds",
                                 message="Your card has insufficient funds."),
    # Saved fine, then every charge fails: the card behind the dunning walk-through.
    "4000000000000341": TestCard("visa", saves=True, charges=False, decline_code="card_declined",
                                 message=_DECLINED),
}


def card(number: str) -> TestCard | None:
    """The test card with this number (spaces and dashes ignored), or None: the fakes take no other."""
    return CARDS.get(number.replace(" ", "").replace("-", ""))
