"""Which marketplace account serves a tenant, handed to the adapter as its credentials.

- A tenant with a connection of its own (the admin's marketplace settings: ids in `settings`, the secret
  sealed) gets the real adapter on the marketplace's API (MICROSOFT_MARKETPLACE_API_URL, MICROSOFT_LOGIN_URL,
  STACKIT_MARKETPLACE_API_URL, STACKIT_TOKEN_URL), and its webhooks and sign-up tokens are checked against the
  marketplace's published keys.
- A tenant without one is served by the sandbox marketplace that `flask up` (or `flask fake-clouds`) runs on
  127.0.0.1 (SANDBOX_MICROSOFT_URL, SANDBOX_STACKIT_URL), with sandbox ids derived from the tenant's slug, so
  the demo and the tests buy through the real adapters with no credentials.
- A connection an admin switched off serves nothing: its marketplace's requests are refused.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from uuid import NAMESPACE_URL, uuid5

from flask import current_app
from sqlalchemy import select

from app.domain.marketplaces import Marketplace
from app.extensions import db
from app.models import MarketplaceConnection, TenantLike
from app.providers.marketplaces.base import MarketplaceAdapter, MarketplaceError, MarketplaceErrorKind
from app.services.secrets import Unreadable, unseal

log = logging.getLogger(__name__)

MICROSOFT_RESOURCE = "20e940b3-4c77-4b0b-9a53-9e16a1b010a7"
"""The SaaS Fulfillment API's resource id: the `appid` (v1) or `azp` (v2) of Microsoft's webhook tokens."""

SANDBOX_CLIENT_SECRET = "sandbox-secret"  # noqa: S105  (the sandbox marketplaces', on 127.0.0.1 only)
SANDBOX_SERVICE_ACCOUNT_KEY = "sandbox-service-account-key"


@dataclass(frozen=True)
class MicrosoftSettings:
    entra_tenant_id: str
    client_id: str
    client_secret: str
    sandbox: bool


@dataclass(frozen=True)
class TokenChecks:
    """What a Microsoft webhook's bearer token must satisfy: signed by a key of `jwks_url`, for `audience`
    (the publisher's app), issued in `tenant_id` (the publisher's Entra tenant), by one of `app_ids`."""

    jwks_url: str
    audience: str
    tenant_id: str
    app_ids: frozenset[str]


@dataclass(frozen=True)
class StackitSettings:
    project_id: str
    service_account_key: str
    sandbox: bool


def connection(tenant: TenantLike, marketplace: Marketplace) -> MarketplaceConnection | None:
    """The tenant's own connection to `marketplace`, if it has one."""
    return db.session.scalar(select(MarketplaceConnection).where(
        MarketplaceConnection.tenant_id == tenant.id, MarketplaceConnection.marketplace == marketplace))


def _sandbox_url(marketplace: Marketplace) -> str | None:
    key = "SANDBOX_MICROSOFT_URL" if marketplace is Marketplace.MICROSOFT else "SANDBOX_STACKIT_URL"
    return current_app.config.get(key) or None


def _own_secret(found: MarketplaceConnection) -> str:
    if not found.enabled:
        raise MarketplaceError(MarketplaceErrorKind.AUTH, f"The {found.marketplace.label} connection is switched "
                                                          "off in the marketplace settings.")
    if not found.secret_ciphertext:
        raise MarketplaceError(MarketplaceErrorKind.AUTH, f"The {found.marketplace.label} connection has no secret "
                                                          "yet: add it in the marketplace settings.")
    try:
        return unseal(found.secret_ciphertext)
    except Unreadable:
        log.error("the %s secret of tenant %s cannot be decrypted (key changed?)", found.marketplace, found.tenant_id)
        raise MarketplaceError(MarketplaceErrorKind.AUTH, f"The {found.marketplace.label} secret cannot be read: "
                                                          "enter it again in the marketplace settings.") from None


def _not_connected(marketplace: Marketplace) -> MarketplaceError:
    return MarketplaceError(MarketplaceErrorKind.AUTH, f"This portal is not connected to the {marketplace.label}.")


def sandbox_ids(tenant: TenantLike, marketplace: Marketplace) -> dict[str, str]:
    """The ids the sandbox marketplace knows the tenant by: stable, derived from its slug."""
    slug = tenant.slug
    if marketplace is Marketplace.MICROSOFT:
        return {"entra_tenant_id": str(uuid5(NAMESPACE_URL, f"sandbox-microsoft:{slug}")),
                "client_id": str(uuid5(NAMESPACE_URL, f"sandbox-microsoft-app:{slug}"))}
    return {"project_id": str(uuid5(NAMESPACE_URL, f"sandbox-stackit:{slug}"))}


def microsoft_settings(tenant: TenantLike) -> MicrosoftSettings:
    """The tenant's Microsoft publisher app, or the sandbox's; MarketplaceError(AUTH) when it has neither."""
    found = connection(tenant, Marketplace.MICROSOFT)
    if found is not None:
        secret = _own_secret(found)
        settings = found.settings or {}
        return MicrosoftSettings(str(settings.get("entra_tenant_id", "")), str(settings.get("client_id", "")), secret,
                                 sandbox=False)
    if _sandbox_url(Marketplace.MICROSOFT):
        ids = sandbox_ids(tenant, Marketplace.MICROSOFT)
        return MicrosoftSettings(ids["entra_tenant_id"], ids["client_id"], SANDBOX_CLIENT_SECRET, sandbox=True)
    raise _not_connected(Marketplace.MICROSOFT)


def stackit_settings(tenant: TenantLike) -> StackitSettings:
    """The tenant's STACKIT vendor project, or the sandbox's; MarketplaceError(AUTH) when it has neither."""
    found = connection(tenant, Marketplace.STACKIT)
    if found is not None:
        secret = _own_secret(found)
        return StackitSettings(str(found.settings.get("project_id", "")), secret, sandbox=False)
    if _sandbox_url(Marketplace.STACKIT):
        return StackitSettings(sandbox_ids(tenant, Marketplace.STACKIT)["project_id"], SANDBOX_SERVICE_ACCOUNT_KEY,
                               sandbox=True)
    raise _not_connected(Marketplace.STACKIT)


def adapter_for(tenant: TenantLike, marketplace: Marketplace) -> MarketplaceAdapter:
    """The marketplace account that sells for this tenant, and no other tenant's."""
    config = current_app.config
    timeout = float(config.get("CLOUD_TIMEOUT", 15.0))
    if marketplace is Marketplace.MICROSOFT:
        from app.providers.marketplaces.microsoft import MicrosoftMarketplace

        ms = microsoft_settings(tenant)
        sandbox = _sandbox_url(marketplace) if ms.sandbox else None
        return MicrosoftMarketplace(
            api_url=f"{sandbox}/api" if sandbox else str(config["MICROSOFT_MARKETPLACE_API_URL"]),
            login_url=sandbox or str(config["MICROSOFT_LOGIN_URL"]), entra_tenant_id=ms.entra_tenant_id,
            client_id=ms.client_id, client_secret=ms.client_secret, timeout=timeout)
    from app.providers.marketplaces.stackit import StackitMarketplace

    st = stackit_settings(tenant)
    sandbox = _sandbox_url(marketplace) if st.sandbox else None
    return StackitMarketplace(api_url=sandbox or str(config["STACKIT_MARKETPLACE_API_URL"]), project_id=st.project_id,
                              service_account_key=st.service_account_key,
                              token_url=f"{sandbox}/token" if sandbox else str(config["STACKIT_TOKEN_URL"]),
                              timeout=timeout)


def microsoft_token_checks(tenant: TenantLike) -> TokenChecks:
    """What the tenant's Microsoft webhook tokens must satisfy (research: the reference implementation's checks)."""
    ms = microsoft_settings(tenant)
    sandbox = _sandbox_url(Marketplace.MICROSOFT) if ms.sandbox else None
    login = sandbox or str(current_app.config["MICROSOFT_LOGIN_URL"])
    return TokenChecks(jwks_url=f"{login}/common/discovery/v2.0/keys", audience=ms.client_id,
                       tenant_id=ms.entra_tenant_id, app_ids=frozenset({MICROSOFT_RESOURCE}))


def stackit_token_checks(tenant: TenantLike) -> tuple[str, str]:
    """Where the STACKIT sign-up token's keys are published, and the issuer it must name (the same URL)."""
    st = stackit_settings(tenant)
    sandbox = _sandbox_url(Marketplace.STACKIT) if st.sandbox else None
    keys = (f"{sandbox}/v1/resolve-customer/keys.json" if sandbox
            else str(current_app.config["STACKIT_MARKETPLACE_KEYS_URL"]))
    return keys, keys
