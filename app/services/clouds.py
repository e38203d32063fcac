"""Which cloud account serves a tenant's service type, handed to the adapter as its credentials.

- A tenant with its own token (or the default tenant with one in the environment) gets the real adapter
  on the real API: Hetzner through hcloud, DigitalOcean through python-digitalocean.
- A tenant without one gets the same adapter pointed at the sandbox cloud: the local fake APIs that
  `flask up` (or `flask fake-clouds`) serves on 127.0.0.1 (SANDBOX_HETZNER_URL / SANDBOX_DIGITALOCEAN_URL),
  with a token naming the tenant.
- Only when no sandbox URL is configured and SANDBOX_IN_PROCESS is set (the fast tests) the in-process
  SandboxCloud stands in.
"""

from __future__ import annotations

import threading

from flask import current_app

from app import providers
from app.clock import now
from app.domain.catalogue import Provider
from app.models import TenantLike
from app.providers.base import CloudProvider, ErrorKind, ProviderError
from app.sandbox.cloud import sandbox_for
from app.services.credentials import ENDPOINTS, token_for

SANDBOX_ENDPOINTS = {Provider.HETZNER: "SANDBOX_HETZNER_URL", Provider.DIGITALOCEAN: "SANDBOX_DIGITALOCEAN_URL"}


def provider_for(tenant: TenantLike, provider: Provider) -> CloudProvider:
    """The cloud account that serves `provider` for this tenant, and no other tenant's."""
    if provider not in providers.ADAPTERS:
        raise ValueError("a service type without a provider has no cloud")
    config = current_app.config
    if token := token_for(tenant, provider):
        return _adapter(provider, token, config[ENDPOINTS[provider]], config["CLOUD_TIMEOUT"])
    if sandbox_url := config.get(SANDBOX_ENDPOINTS[provider]):
        return _adapter(provider, f"sandbox-{tenant.slug}", sandbox_url, config["CLOUD_TIMEOUT"])
    if config.get("SANDBOX_IN_PROCESS"):
        return sandbox_for(tenant.id, provider.value, now, boot_seconds=config["SANDBOX_BOOT_SECONDS"],
                           action_seconds=config["SANDBOX_ACTION_SECONDS"])
    raise ProviderError(ErrorKind.AUTH, f"No {provider.label} account is set up for this portal yet. "
                                        "Please contact the operator.")


_adapters: dict[tuple[Provider, str, str, float], CloudProvider] = {}
_adapters_lock = threading.Lock()
MAX_ADAPTERS = 64


def _adapter(provider: Provider, token: str, endpoint: str, timeout: float) -> CloudProvider:
    """One adapter per account and endpoint, kept: its HTTP connections are pooled, not opened per call."""
    key = (provider, token, endpoint, timeout)
    with _adapters_lock:
        adapter = _adapters.get(key)
        if adapter is None:
            if len(_adapters) >= MAX_ADAPTERS:  # a token was replaced many times: start afresh
                _close_all()
            adapter = _adapters[key] = providers.adapter(provider, token, endpoint=endpoint, timeout=timeout)
        return adapter


def _close_all() -> None:
    for adapter in _adapters.values():
        providers.close(adapter)
    _adapters.clear()


def forget_adapters() -> None:
    """Close and forget every kept adapter (tests, and after a token is replaced or removed)."""
    with _adapters_lock:
        _close_all()
