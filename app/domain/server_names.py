"""Server names: what a customer may call a server, the names of several, the FQDN, and readable suggestions.

A name is one DNS label: lowercase letters, digits and hyphens, 1 to 63 characters, neither starting nor
ending with a hyphen (what people type is stripped and lowercased first). It is unique within the tenant;
the server is reached at `<name>.<tenant slug>.<DNS base domain>`, which is also its name at the cloud.
An order of several servers names them `<name>`, `<name>-2`, `<name>-3`, ...
"""

from __future__ import annotations

import random
import re

MAX_LABEL = 63
MAX_FQDN = 253
_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")

ADJECTIVES = ("amber", "bold", "brave", "bright", "calm", "clever", "cosmic", "crisp", "eager", "fancy", "gentle",
              "golden", "happy", "jolly", "keen", "kind", "lively", "lucky", "mellow", "merry", "mighty", "nimble",
              "noble", "polar", "proud", "quick", "quiet", "rapid", "shiny", "silent", "snowy", "solar", "steady",
              "sunny", "swift", "tidy", "vivid", "warm", "wise", "zesty")
NOUNS = ("badger", "beacon", "birch", "breeze", "canyon", "cedar", "comet", "coral", "crane", "delta", "falcon",
         "fjord", "harbor", "heron", "island", "lagoon", "lark", "maple", "meadow", "meteor", "otter", "owl",
         "panda", "pebble", "pine", "prairie", "quasar", "raven", "reef", "river", "rocket", "sparrow", "summit",
         "tiger", "tundra", "valley", "walrus", "willow", "yak", "zephyr")


def normalize(name: str | None) -> str:
    """What the customer typed, as a name: stripped and lowercased (DNS is case-insensitive)."""
    return (name or "").strip().lower()


def name_problem(name: str, quantity: int = 1, *, domain: str = "") -> str | None:
    """Why `name` (normalized) cannot name `quantity` servers under `domain` (`<tenant slug>.<base>`), or None."""
    if not name:
        return "Give your server a name."
    longest = len(names(name, quantity)[-1])
    if domain and longest + 1 + len(domain) > MAX_FQDN:
        return f"Use a shorter name: with {domain} it makes a name longer than DNS allows."
    if longest > MAX_LABEL:
        room = MAX_LABEL - (longest - len(name))
        return f"Use at most {room} characters." if quantity == 1 else (
            f"Use at most {room} characters: the last of your {quantity} servers is called {name}-{quantity}.")
    if not _LABEL.match(name):
        if name.startswith("-") or name.endswith("-"):
            return "A name cannot start or end with a hyphen."
        return "Use lowercase letters, digits and hyphens only (no spaces, dots or underscores)."
    return None


def names(name: str, quantity: int) -> list[str]:
    """The names of an order's `quantity` servers: the first gets `name`, the others `name-2`, `name-3`, ..."""
    return [name, *(f"{name}-{n}" for n in range(2, max(quantity, 1) + 1))]


def tenant_domain(tenant_slug: str, base_domain: str) -> str:
    """The tenant's servers' domain: `<tenant slug>.<base domain>`."""
    return ".".join(part for part in (tenant_slug, base_domain.strip(".")) if part)


def fqdn(name: str, tenant_slug: str, base_domain: str) -> str:
    """Where the server is reached, and its name at the cloud: `<name>.<tenant slug>.<base domain>`."""
    return f"{name}.{tenant_domain(tenant_slug, base_domain)}"


def suggest(rng: random.Random | None = None) -> str:
    """A readable name to start from, such as `swift-otter-42`."""
    pick = rng or random.SystemRandom()
    return f"{pick.choice(ADJECTIVES)}-{pick.choice(NOUNS)}-{pick.randint(10, 99)}"
