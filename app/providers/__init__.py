"""Clouds behind one protocol. Adapters return the project's dataclasses and raise `ProviderError`.

Adapters take their credentials and endpoint as arguments; they read no database and no configuration.
Which account serves which tenant is decided in `app.services.clouds`.
"""

from __future__ import annotations

from app.domain.catalogue import Provider
from app.providers.base import CloudProvider
from app.providers.digitalocean import DigitalOceanCloud
from app.providers.hetzner import HetznerCloud

ADAPTERS: dict[Provider, type[CloudProvider]] = {Provider.HETZNER: HetznerCloud,
                                                 Provider.DIGITALOCEAN: DigitalOceanCloud}


def adapter(provider: Provider, token: str, *, endpoint: str, timeout: float) -> CloudProvider:
    """The adapter of `provider`, on `endpoint`, with `token`."""
    return ADAPTERS[provider](token, endpoint=endpoint, timeout=timeout)  # type: ignore[call-arg]


def close(cloud: CloudProvider) -> None:
    """Close an adapter's pooled connections, where it keeps any."""
    closer = getattr(cloud, "close", None)
    if closer is not None:
        closer()


def check_token(provider: Provider, token: str, *, endpoint: str, timeout: float) -> None:
    """Raise ProviderError unless the API at `endpoint` accepts `token` (one read of its offers)."""
    cloud = adapter(provider, token, endpoint=endpoint, timeout=timeout)
    try:
        cloud.offers()
    finally:
        close(cloud)
