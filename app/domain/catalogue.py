"""Vocabulary of the catalogue: providers, plan states, billing intervals, plan rules."""

from __future__ import annotations

from enum import StrEnum


class Provider(StrEnum):
    HETZNER = "hetzner"
    DIGITALOCEAN = "digitalocean"
    NONE = "none"

    @property
    def label(self) -> str:
        return {"hetzner": "Hetzner Cloud", "digitalocean": "DigitalOcean", "none": "No provider"}[self.value]


class CatalogueState(StrEnum):
    """Lifecycle of products and plans: draft -> published -> deprecated -> retired."""

    DRAFT = "draft"
    PUBLISHED = "published"
    DEPRECATED = "deprecated"
    RETIRED = "retired"

    @property
    def orderable(self) -> bool:
        return self is CatalogueState.PUBLISHED


class Interval(StrEnum):
    MONTH = "month"
    YEAR = "year"


class ChangeRule(StrEnum):
    """When a cancellation or a downgrade takes effect."""

    PERIOD_END = "period_end"
    IMMEDIATE = "immediate"


GEOGRAPHY_KEYS = ("location", "region")
