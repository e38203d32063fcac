"""What a plan offers and what each choice costs: server types with a price each, locations with an optional
surcharge, images; and the checks an admin's edit must pass (a valid JSON Schema, offers inside its enums, a
cloud-init template that renders and fits, the notice a price rise gives existing subscribers).

A plan that lists no server types (a plain SaaS plan, or one made before prices per server type) offers what
its service type's schema offers, at the plan's one price.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from app.domain.catalogue import GEOGRAPHY_KEYS
from app.domain.cloud_init import UserDataError, render_user_data
from app.domain.cloud_prices import margin_bp
from app.domain.pricing import PricingError

DEFAULT_NOTICE_DAYS = 30
MAX_NOTICE_DAYS = 366
SERVER_TYPE_KEY = "serverType"
IMAGE_KEY = "image"
# What a template is rendered with when an admin saves it: the values provisioning passes, made up.
SAMPLE_VALUES = {"hostname": "swift-otter-42", "fqdn": "swift-otter-42.example.cloud.test"}


@dataclass(frozen=True, slots=True)
class TypePrice:
    """A server type the plan offers, and its price per interval (one seat)."""

    server_type: str
    price_minor: int
    cost_minor: int | None = None  # what the cloud charges, when known (a price import fills it)
    markup_bp: int | None = None
    is_default: bool = False

    @property
    def margin_minor(self) -> int | None:
        return None if self.cost_minor is None else self.price_minor - self.cost_minor

    @property
    def margin_bp(self) -> int | None:
        """The share of the price kept, in basis points (None without a cost, or for a free price)."""
        return None if self.cost_minor is None else margin_bp(self.price_minor, self.cost_minor)


@dataclass(frozen=True, slots=True)
class LocationOffer:
    location: str
    surcharge_minor: int = 0
    is_default: bool = False


@dataclass(frozen=True, slots=True)
class Offers:
    """A plan's offers; empty tuples mean "whatever the schema offers"."""

    prices: tuple[TypePrice, ...] = ()
    locations: tuple[LocationOffer, ...] = ()
    images: tuple[str, ...] = ()

    def price_of(self, server_type: str) -> TypePrice | None:
        return next((p for p in self.prices if p.server_type == server_type), None)

    def location_of(self, location: str) -> LocationOffer | None:
        return next((loc for loc in self.locations if loc.location == location), None)

    @property
    def lowest_price(self) -> int | None:
        return min((p.price_minor for p in self.prices), default=None)


def unit_price(base_minor: int, offers: Offers, *, server_type: str | None, location: str | None) -> int:
    """One seat's price per interval for the chosen server type and location.

    Without a server type the default's (or the lowest) price is quoted; a server type or a location the plan
    does not offer raises PricingError with a message for the customer."""
    price = base_minor
    if offers.prices:
        chosen = (offers.price_of(server_type) if server_type
                  else next((p for p in offers.prices if p.is_default), None))
        if server_type and chosen is None:
            raise PricingError(f"This plan does not offer the server type {server_type}.")
        price = chosen.price_minor if chosen else min(p.price_minor for p in offers.prices)
    if location and offers.locations:
        offer = offers.location_of(location)
        if offer is None:
            raise PricingError(f"This plan does not offer the location {location}.")
        price += offer.surcharge_minor
    return price


def narrow_schema(schema: dict[str, Any], offers: Offers) -> dict[str, Any]:
    """The service type's schema with its enums narrowed to what the plan offers, so the order form shows only
    those choices and validating a config refuses any other (a forged POST included)."""
    narrowed = copy.deepcopy(schema)
    properties = narrowed.get("properties", {})
    wanted = {SERVER_TYPE_KEY: [p.server_type for p in offers.prices],
              IMAGE_KEY: list(offers.images),
              **{key: [loc.location for loc in offers.locations] for key in GEOGRAPHY_KEYS}}
    for key, values in wanted.items():
        if values and isinstance(properties.get(key), dict):
            properties[key]["enum"] = values
    return narrowed


def schema_problem(schema: object) -> str | None:
    """Why `schema` is not a usable JSON Schema for a provider config, or None."""
    if not isinstance(schema, dict):
        return "The schema must be a JSON object."
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as error:
        return f"This is not a valid JSON Schema: {error.message}"
    if schema.get("type", "object") != "object":
        return 'The schema must describe an object ("type": "object").'
    return None


def template_problem(template: str) -> str | None:
    """Why the cloud-init template cannot be used (it does not render in the sandbox, or the result is over
    32 KiB), or None."""
    try:
        render_user_data(template, **SAMPLE_VALUES)
    except UserDataError as error:
        return str(error)
    return None


def enum_of(schema: dict[str, Any], key: str) -> list[str] | None:
    spec = schema.get("properties", {}).get(key)
    if isinstance(spec, dict) and isinstance(spec.get("enum"), list):
        return [str(value) for value in spec["enum"]]
    return None


def offer_problems(schema: dict[str, Any], offers: Offers) -> dict[str, str]:
    """Offers outside the schema's enums, duplicates, negative amounts and missing defaults, by field."""
    problems: dict[str, str] = {}
    geo = next((key for key in GEOGRAPHY_KEYS if key in schema.get("properties", {})), None)
    lists = {"prices": [p.server_type for p in offers.prices], "locations": [loc.location for loc in offers.locations],
             "images": list(offers.images)}
    keys = {"prices": SERVER_TYPE_KEY, "locations": geo, "images": IMAGE_KEY}
    for field, values in lists.items():
        if not values:
            continue
        allowed = enum_of(schema, keys[field]) if keys[field] else None
        if allowed is None:
            problems[field] = "The service type's schema offers no choices here."
        elif unknown := [v for v in values if v not in allowed]:
            problems[field] = f"Not in the service type's choices: {', '.join(unknown)}."
        elif len(set(values)) != len(values):
            problems[field] = "Each choice may be listed once."
    if any(p.price_minor < 0 or (p.cost_minor or 0) < 0 for p in offers.prices):
        problems.setdefault("prices", "Prices cannot be negative.")
    if len({p.price_minor == 0 for p in offers.prices}) > 1:
        problems.setdefault("prices", "A plan is free or paid: make every price 0, or none.")
    if any(loc.surcharge_minor < 0 for loc in offers.locations):
        problems.setdefault("locations", "Surcharges cannot be negative.")
    for field, rows in (("prices", offers.prices), ("locations", offers.locations)):
        if rows and sum(1 for row in rows if row.is_default) != 1:
            problems.setdefault(field, "Mark exactly one as the default.")
    return problems


def notice_date(moment: datetime, days: int) -> datetime:
    """When a price change reaches existing subscribers' renewals: `days` after it is made."""
    if not 0 <= days <= MAX_NOTICE_DAYS:
        raise ValueError(f"notice days must be 0..{MAX_NOTICE_DAYS}, got {days}")
    return moment + timedelta(days=days)


@dataclass(frozen=True, slots=True)
class ScheduledPrice:
    """A price change for one server type: new orders pay `new_price_minor` from `announced_at`, existing
    subscribers from `effective_at`."""

    new_price_minor: int
    announced_at: datetime
    effective_at: datetime


def renewal_unit_price(current_minor: int, changes: Sequence[ScheduledPrice], *, subscribed_at: datetime,
                       period_start: datetime, surcharge_minor: int = 0) -> int:
    """One seat's price for a renewal starting at `period_start`.

    A subscription keeps the price it bought (`current_minor`, its surcharge included) until a change announced
    after it was ordered has reached its notice date; from then on it pays the latest such change's price plus
    its location's surcharge. Changes announced before the order were in its price already."""
    due = [c for c in changes if c.announced_at > subscribed_at and c.effective_at <= period_start]
    if not due:
        return current_minor
    latest = max(due, key=lambda c: (c.effective_at, c.announced_at))
    return latest.new_price_minor + surcharge_minor


class OfferSyntaxError(ValueError):
    """An admin's list of offers that cannot be read; the message says which line and why."""


def _whole(text: str, what: str, line_no: int) -> int:
    if not text.isdigit() or len(text) > 9:
        raise OfferSyntaxError(f"Line {line_no}: the {what} must be a whole number of cents, such as 450.")
    return int(text)


def _lines(text: str) -> list[tuple[int, list[str]]]:
    return [(n, line.split()) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]


def parse_prices(text: str, default: str) -> tuple[TypePrice, ...]:
    """ "cx22 450" or "cx22 450 380" (price, then cost, in cents) per line; `default` names the default type."""
    prices = []
    for n, parts in _lines(text):
        if len(parts) not in (2, 3):
            raise OfferSyntaxError(f"Line {n}: write a server type and its price in cents, optionally its cost.")
        cost = _whole(parts[2], "cost", n) if len(parts) == 3 else None
        prices.append(TypePrice(parts[0], _whole(parts[1], "price", n), cost, None, parts[0] == default.strip()))
    return tuple(prices)


def parse_locations(text: str, default: str) -> tuple[LocationOffer, ...]:
    """ "fsn1" or "fsn1 100" (a surcharge in cents) per line; `default` names the default location."""
    locations = []
    for n, parts in _lines(text):
        if len(parts) not in (1, 2):
            raise OfferSyntaxError(f"Line {n}: write a location, optionally its surcharge in cents.")
        surcharge = _whole(parts[1], "surcharge", n) if len(parts) == 2 else 0
        locations.append(LocationOffer(parts[0], surcharge, parts[0] == default.strip()))
    return tuple(locations)


def format_prices(prices: Sequence[TypePrice]) -> str:
    return "\n".join(f"{p.server_type} {p.price_minor}" + (f" {p.cost_minor}" if p.cost_minor is not None else "")
                     for p in prices)


def format_locations(locations: Sequence[LocationOffer]) -> str:
    return "\n".join(f"{loc.location} {loc.surcharge_minor}" for loc in locations)
