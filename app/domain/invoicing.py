"""Invoices in numbers: EU VAT (who is reverse-charged), tax in integers, per-line shares, invoice numbers.

Pure: no Flask, no database. Every amount is an int in the currency's minor unit; rates are basis points
(1900 is 19 %). Tax is computed once per invoice on the net sum, half-up, and then shared out over the
lines by largest remainder, so the lines' tax always adds up to the invoice's tax exactly.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

EU_COUNTRIES = frozenset({
    "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU", "IE", "IT", "LT",
    "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK",
})

REVERSE_CHARGE_NOTE = ("Reverse charge: VAT to be accounted for by the recipient "
                       "(Art. 196 Council Directive 2006/112/EC)")

# The shape of each member state's VAT id after its prefix. A format check only: whether the number is
# registered is for VIES to say, which the portal does not ask.
_VAT_SHAPES: dict[str, str] = {
    "AT": r"U\d{8}", "BE": r"[01]\d{9}", "BG": r"\d{9,10}", "CY": r"\d{8}[A-Z]", "CZ": r"\d{8,10}",
    "DE": r"\d{9}", "DK": r"\d{8}", "EE": r"\d{9}", "EL": r"\d{9}", "ES": r"[A-Z0-9]\d{7}[A-Z0-9]",
    "FI": r"\d{8}", "FR": r"[A-HJ-NP-Z0-9]{2}\d{9}", "HR": r"\d{11}", "HU": r"\d{8}",
    "IE": r"\d[A-Z0-9+*]\d{5}[A-Z]{1,2}",
    "IT": r"\d{11}", "LT": r"\d{9}|\d{12}", "LU": r"\d{8}", "LV": r"\d{11}", "MT": r"\d{8}", "NL": r"\d{9}B\d{2}",
    "PL": r"\d{10}", "PT": r"\d{9}", "RO": r"\d{2,10}", "SE": r"\d{12}", "SI": r"\d{8}", "SK": r"\d{10}",
}
# Greece's VAT ids start with EL, not with its country code GR.
_VAT_PREFIX = {"GR": "EL"}
_COUNTRY_OF_PREFIX = {prefix: country for country, prefix in _VAT_PREFIX.items()}


def is_eu(country: str) -> bool:
    return country.upper() in EU_COUNTRIES


def normalize_vat_id(vat_id: str) -> str:
    """Upper case without spaces, dots or dashes: "de 123.456.789" -> "DE123456789"."""
    return re.sub(r"[\s.\-]", "", vat_id).upper()


def vat_id_country(vat_id: str) -> str | None:
    """The EU country a well-formed VAT id belongs to ("GR" for "EL..."), or None when it has no valid shape."""
    value = normalize_vat_id(vat_id)
    prefix, rest = value[:2], value[2:]
    shape = _VAT_SHAPES.get(prefix)
    if shape is None or not re.fullmatch(shape, rest):
        return None
    return _COUNTRY_OF_PREFIX.get(prefix, prefix)


def vat_id_problem(vat_id: str, country: str = "") -> str | None:
    """Why `vat_id` is not a VAT id of the EU (for `country`, when given), or None when its shape fits.
    A format check only: it does not ask VIES whether the number is registered."""
    value = normalize_vat_id(vat_id)
    found = vat_id_country(value)
    if found is None:
        return "Enter an EU VAT id: the country prefix and the number, e.g. DE123456789."
    if country and is_eu(country) and found != country.upper():
        return f"This VAT id is not from {country.upper()}: it starts with {value[:2]}."
    return None


@dataclass(frozen=True, slots=True)
class TaxTreatment:
    rate_bp: int
    reverse_charge: bool
    note: str
    country: str


def tax_treatment(seller_country: str, customer_country: str, vat_id: str, rates_bp: Mapping[str, int],
                  reverse_charge_enabled: bool) -> TaxTreatment:
    """How an invoice to this customer is taxed.

    An EU business (with a well-formed VAT id) in another EU country than the seller's is reverse-charged:
    0 % and the legal note. Everyone else pays the rate set for their country, else the "*" rate, else 0.
    """
    seller, country = seller_country.upper(), customer_country.upper()
    if (reverse_charge_enabled and vat_id and vat_id_country(vat_id) is not None and is_eu(seller)
            and is_eu(country) and country != seller):
        return TaxTreatment(0, True, REVERSE_CHARGE_NOTE, country)
    rate = rates_bp.get(country, rates_bp.get("*", 0))
    if isinstance(rate, bool) or not isinstance(rate, int) or rate < 0:
        raise ValueError(f"tax rate for {country or '*'} must be a non-negative int of basis points")
    return TaxTreatment(rate, False, "", country)


def tax_on(net_minor: int, rate_bp: int) -> int:
    """The tax on `net_minor` at `rate_bp`, rounded half-up (half away from zero for a negative net)."""
    _int(net_minor, "net_minor")
    _int(rate_bp, "rate_bp")
    magnitude = (2 * abs(net_minor) * rate_bp + 10_000) // 20_000
    return -magnitude if net_minor < 0 else magnitude


def allocate(total: int, weights: Sequence[int]) -> list[int]:
    """`total` shared in proportion to `weights` (largest remainder): the shares add up to `total` exactly.

    Weights may be negative (a credit line); when they add up to zero, `total` must be zero too."""
    _int(total, "total")
    for weight in weights:
        _int(weight, "weight")
    whole = sum(weights)
    if whole == 0:
        if total:
            raise ValueError("cannot share a non-zero total over weights that add up to zero")
        return [0 for _ in weights]
    if whole < 0:  # the same ratios with a positive divisor
        weights, whole, total = [-w for w in weights], -whole, -total
        return [-share for share in allocate(total, weights)]
    floors = [total * w // whole for w in weights]
    remainders = [total * w % whole for w in weights]
    left = total - sum(floors)
    for index in sorted(range(len(weights)), key=lambda i: (-remainders[i], i))[:left]:
        floors[index] += 1
    return floors


def invoice_number(prefix: str, year: int, n: int) -> str:
    """"INV-2027-000042": the prefix, the year and the tenant's n-th invoice of that year."""
    return f"{prefix}-{year}-{n:06d}"


def credit_note_number(invoice_number_: str, sequence: int) -> str:
    """"INV-2027-000042-CN01": the invoice's number and the credit note's place among its notes."""
    return f"{invoice_number_}-CN{sequence:02d}"


@dataclass(frozen=True, slots=True)
class InvoiceAmounts:
    """What a finalized invoice says: net, tax (per line too), gross, balance applied and amount due."""

    subtotal: int
    tax: int
    total: int
    line_taxes: tuple[int, ...]
    balance_applied: int
    amount_due: int
    excess_credit: int  # a negative total: what goes back to the customer balance


def invoice_amounts(line_nets: Sequence[int], rate_bp: int, balance: int) -> InvoiceAmounts:
    """The invoice's amounts from its lines' net amounts, its tax rate and the customer balance available
    (>= 0). The balance pays what it can; a negative total (credits above debits) is owed to the customer."""
    totals = invoice_totals(sum(line_nets), rate_bp, balance)
    return InvoiceAmounts(totals.subtotal, totals.tax, totals.total, line_taxes(totals.tax, line_nets),
                          totals.balance_applied, totals.amount_due, totals.excess_credit)


@dataclass(frozen=True, slots=True)
class InvoiceTotals:
    """An invoice's amounts as finalization writes them (the split of the tax over its lines is derived)."""

    subtotal: int
    tax: int
    total: int
    balance_applied: int
    amount_due: int
    excess_credit: int


def invoice_totals(subtotal: int, rate_bp: int, balance: int) -> InvoiceTotals:
    """The invoice's amounts from its net (the sum of its lines), its tax rate and the customer balance
    available: tax on the net (not per line), the balance paying what it can of a positive total."""
    tax = tax_on(subtotal, rate_bp)
    total = subtotal + tax
    applied = max(0, min(max(_int(balance, "balance"), 0), total))
    return InvoiceTotals(subtotal, tax, total, applied, max(total, 0) - applied, max(-total, 0))


def line_taxes(tax: int, line_nets: Sequence[int]) -> tuple[int, ...]:
    """Each line's share of the invoice's `tax`, in the lines' order (by id): in proportion to their nets, by
    the largest remainder, so the shares add up to the tax exactly. Derived each time an invoice is shown,
    from what finalization froze."""
    if not sum(line_nets):
        return tuple(0 for _ in line_nets)
    return tuple(allocate(tax, line_nets))


def _int(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    return value
