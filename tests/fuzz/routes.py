"""The URL map as the fuzz suite walks it: each rule with its methods and parameters."""

from __future__ import annotations

import re
from dataclasses import dataclass

from flask import Flask

from app.blueprints.api.ids import encode

_OPAQUE_KIND = re.compile(r"^opaque\(kind='(?P<kind>\w+)'\)$")
_PARAM = re.compile(r"<(?:(?P<converter>\w+)(?:\([^)]*\))?:)?(?P<name>\w+)>")
IGNORED_METHODS = frozenset({"OPTIONS"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Route:
    rule: str
    endpoint: str
    methods: tuple[str, ...]
    params: tuple[tuple[str, str], ...]  # (name, converter), in the order of the rule

    @property
    def id(self) -> str:
        return f"{'|'.join(self.methods)} {self.rule}"

    @property
    def int_params(self) -> list[str]:
        """Ids: integers, and the API's opaque ids (given as their integers, see `segment`)."""
        return [name for name, converter in self.params if converter in ("int", "opaque")]

    @property
    def other_params(self) -> list[str]:
        return [name for name, converter in self.params if converter not in ("int", "opaque")]

    def segment(self, name: str, number: int) -> str:
        """Row `number` as the URL shows it: the API's opaque id (`sub_...`) or the integer."""
        kind = _OPAQUE_KIND.search(self.rule.split(f":{name}>")[0].rsplit("<", 1)[-1])
        return encode(kind["kind"], number) if kind else str(number)

    def path(self, segments: dict[str, str]) -> str:
        """The rule with each parameter replaced by its (percent-encoded) segment."""
        return _PARAM.sub(lambda match: segments[match["name"]], self.rule)


def routes(app: Flask) -> list[Route]:
    """Every rule but `static`, with every method it accepts but OPTIONS."""
    found = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        params = tuple((m["name"], m["converter"] or "default") for m in _PARAM.finditer(rule.rule))
        methods = tuple(sorted(set(rule.methods or ()) - IGNORED_METHODS))
        found.append(Route(rule.rule, rule.endpoint, methods, params))
    return sorted(found, key=lambda route: (route.rule, route.methods))
