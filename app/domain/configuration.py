"""The provider config of an order: plan defaults, the customer's choices, the geography rule, the schema.

Customers may choose `location` / `region` only when the plan allows it and the service type's schema
lists the choices as an enum; otherwise geography keys in the request are dropped and the plan's default
is used. Keys the schema does not know are dropped too, so nothing unexpected reaches a provider.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator

from app.domain.catalogue import GEOGRAPHY_KEYS


@dataclass(frozen=True)
class ConfigField:
    """One choice on the order form, derived from the schema."""

    name: str
    title: str
    choices: tuple[str, ...]
    default: str | None


def selectable_geography(schema: dict[str, Any], allow_selection: bool) -> set[str]:
    """Geography keys the customer may set: only with the plan's permission and an enum to pick from."""
    if not allow_selection:
        return set()
    properties = schema.get("properties", {})
    return {key for key in GEOGRAPHY_KEYS if isinstance(properties.get(key, {}).get("enum"), list)}


def customer_fields(schema: dict[str, Any], defaults: dict[str, Any], allow_selection: bool) -> list[ConfigField]:
    """The choices to show on the order form, in schema order; geography only when selectable."""
    geography = selectable_geography(schema, allow_selection)
    fields = []
    for name, spec in schema.get("properties", {}).items():
        if name in GEOGRAPHY_KEYS and name not in geography:
            continue
        if isinstance(spec.get("enum"), list):
            choices = tuple(str(choice) for choice in spec["enum"])
            fields.append(ConfigField(name, spec.get("title", name), choices, defaults.get(name)))
    return fields


def merge_config(schema: dict[str, Any], defaults: dict[str, Any], requested: dict[str, Any],
                 allow_selection: bool) -> dict[str, Any]:
    """Plan defaults overlaid with the customer's allowed, known choices."""
    known = set(schema.get("properties", {}))
    geography = selectable_geography(schema, allow_selection)
    allowed = {key: value for key, value in requested.items()
               if key in known and (key not in GEOGRAPHY_KEYS or key in geography) and value not in ("", None)}
    return {**defaults, **allowed}


def config_errors(schema: dict[str, Any], config: dict[str, Any]) -> dict[str, str]:
    """Schema violations by field name ("" for errors about the whole config), one message per field."""
    errors: dict[str, str] = {}
    for error in sorted(Draft202012Validator(schema).iter_errors(config), key=lambda e: list(e.path)):
        field = str(error.path[0]) if error.path else _missing_field(error)
        errors.setdefault(field, _message(error, schema))
    return errors


def _missing_field(error: Any) -> str:
    if error.validator == "required":
        return str(error.message.split("'")[1])
    return ""


def _message(error: Any, schema: dict[str, Any]) -> str:
    if error.validator == "enum":
        return "Choose one of the offered options."
    if error.validator == "required":
        return "This choice is required."
    if error.validator == "type":
        return "This value has the wrong form."
    return "This value is not accepted."


def geography_key(schema: dict[str, Any]) -> str | None:
    """Which key names the location in this schema (`location` for Hetzner, `region` for DigitalOcean)."""
    properties = schema.get("properties", {})
    return next((key for key in GEOGRAPHY_KEYS if key in properties), None)
