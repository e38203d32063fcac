"""Names people know for the clouds' location codes."""

from __future__ import annotations

LOCATION_NAMES = {
    # Hetzner Cloud locations
    "fsn1": "Falkenstein, Germany",
    "nbg1": "Nuremberg, Germany",
    "hel1": "Helsinki, Finland",
    "ash": "Ashburn, Virginia, USA",
    "hil": "Hillsboro, Oregon, USA",
    "sin": "Singapore",
    # DigitalOcean regions
    "fra1": "Frankfurt, Germany",
    "ams3": "Amsterdam, Netherlands",
    "lon1": "London, United Kingdom",
    "nyc3": "New York, USA",
    "sfo3": "San Francisco, USA",
    "sgp1": "Singapore",
}


def location_label(code: str) -> str:
    """`hel1` -> `Helsinki, Finland (hel1)`; unknown codes stay as they are."""
    name = LOCATION_NAMES.get(code)
    return f"{name} ({code})" if name else code


GEOGRAPHY_LABELLED = ("location", "region")
