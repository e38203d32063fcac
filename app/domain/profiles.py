"""What a customer's billing profile must hold before ordering. Pure: no Flask, no database."""

from __future__ import annotations

from typing import Any

# The profile's fields in form order, with the labels people see.
LABELS: dict[str, str] = {
    "full_name": "Full name",
    "billing_email": "Billing email",
    "company": "Company",
    "vat_id": "VAT id (businesses in the EU)",
    "address": "Street address",
    "postal_code": "Postal code",
    "city": "City",
    "country": "Country",
}

# Kept in step with CustomerProfile.is_complete. Company and postal code stay optional: not every
# customer is a company, and some countries have no postal codes.
REQUIRED: tuple[str, ...] = ("full_name", "billing_email", "address", "city", "country")


def missing_profile_fields(profile: Any | None) -> list[str]:
    """Labels of the required fields `profile` leaves blank, in form order; all of them for no profile."""
    return [LABELS[name] for name in REQUIRED if not (getattr(profile, name, "") or "").strip()]
