"""Which cloud adapter serves a tenant's service type."""

from __future__ import annotations

from flask import current_app

from app.clock import now
from app.domain.catalogue import Provider
from app.providers.base import CloudProvider
from app.providers.sandbox import sandbox_for


def provider_for(tenant_id: int, provider: Provider) -> CloudProvider:
    """The cloud for `provider` in `tenant_id`'s account. With no credentials, the sandbox cloud."""
    if provider is Provider.NONE:
        raise ValueError("a service type without a provider has no cloud")
    config = current_app.config
    return sandbox_for(tenant_id, provider.value, now, boot_seconds=config["SANDBOX_BOOT_SECONDS"],
                       action_seconds=config["SANDBOX_ACTION_SECONDS"])
