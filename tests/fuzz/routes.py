"""The URL map as the fuzz suite walks it: each rule with its methods and parameters."""

from __future__ import annotations

import re
from dataclasses import dataclass

from flask import Flask

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
        return [name for name, converter in self.params if converter == "int"]

    @property
    def other_params(self) -> list[str]:
        return [name for name, converter in self.params if converter != "int"]

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
