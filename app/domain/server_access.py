"""Rules of access to a server: which clouds give root passwords, which images a rebuild may use, and the
typed confirmation a rebuild needs (it erases the server's disk)."""

from __future__ import annotations

from typing import Any

from app.domain.catalogue import Provider

# Clouds that answer a root password (to a create without their own key objects, a rebuild, a reset). DigitalOcean
# emails one to the cloud account's owner instead, so it has no reset here and its orders need a key.
PASSWORD_PROVIDERS = frozenset({Provider.HETZNER})


def gives_root_password(provider: Provider) -> bool:
    return provider in PASSWORD_PROVIDERS


def rebuild_images(schema: dict[str, Any], current: str | None) -> tuple[str, ...]:
    """The images a server may be reinstalled from: those its plan's service type offers (the schema's `image`
    choices), or, when it offers none, the image the server has."""
    choices = schema.get("properties", {}).get("image", {}).get("enum")
    if isinstance(choices, list) and choices:
        return tuple(str(choice) for choice in choices)
    return (current,) if current else ()


def confirms(typed: str | None, *names: str | None) -> bool:
    """Whether `typed` is one of the server's `names` (its name or FQDN), whatever the case or a final dot."""
    text = (typed or "").strip().lower().rstrip(".")
    return bool(text) and text in {name.lower() for name in names if name}
