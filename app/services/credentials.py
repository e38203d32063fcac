"""Cloud API tokens per tenant: set by the tenant admin (or, for the default tenant, the environment),
stored sealed (app/services/secrets.py), and only ever used for the tenant they belong to.

Changing the sealing key makes stored tokens unreadable, so they must then be entered again.
"""

from __future__ import annotations

import logging

from flask import current_app
from sqlalchemy import bindparam, delete, select

from app.clock import now
from app.domain.accounts import Role
from app.domain.catalogue import Provider
from app.extensions import db
from app.models import CloudCredential, TenantLike
from app.providers import check_token
from app.providers.base import ErrorKind, ProviderError
from app.selectors.credentials import CLOUDS, ENV_TOKENS
from app.services.actors import Actor
from app.services.errors import Forbidden, InvalidInput, ServiceError
from app.services.secrets import Unreadable, seal, unseal

log = logging.getLogger(__name__)

# The real APIs, by the setting that holds their address.
ENDPOINTS = {Provider.HETZNER: "HETZNER_API_URL", Provider.DIGITALOCEAN: "DIGITALOCEAN_API_URL"}


_CREDENTIAL = select(CloudCredential).where(CloudCredential.tenant_id == bindparam("tenant_id"),
                                           CloudCredential.provider == bindparam("provider"))


def token_for(tenant: TenantLike, provider: Provider) -> str | None:
    """The tenant's own token for `provider`; the environment's only for the default tenant; else None."""
    row = db.session.scalar(_CREDENTIAL, {"tenant_id": tenant.id, "provider": provider})
    if row is not None:
        try:
            return unseal(row.token_ciphertext)
        except Unreadable:
            log.error("the %s token of tenant %s cannot be decrypted (key changed?)", provider, tenant.slug)
            return None
    if tenant.slug == current_app.config["DEFAULT_TENANT"]:
        return current_app.config.get(ENV_TOKENS.get(provider, "")) or None
    return None


def set_token(*, tenant: TenantLike, actor: Actor, provider: Provider, token: str) -> CloudCredential:
    """Store (or replace) the tenant's token for `provider`, encrypted. Tenant admins only."""
    _require_admin(tenant, actor)
    token = token.strip()
    if provider not in CLOUDS:
        raise InvalidInput("Choose Hetzner or DigitalOcean.", field="provider")
    if not 16 <= len(token) <= 200 or any(ch.isspace() for ch in token):
        raise InvalidInput("This does not look like an API token.", field="token")
    _check_with_the_cloud(provider, token)
    row = db.session.scalar(_CREDENTIAL, {"tenant_id": tenant.id, "provider": provider})
    if row is None:
        row = CloudCredential(tenant_id=tenant.id, provider=provider)
        db.session.add(row)
    row.token_ciphertext = seal(token)
    row.token_hint = token[-4:]
    row.updated_at = now()
    row.updated_by_id = actor.user_id
    db.session.commit()
    log.info("tenant %s: %s token set by user %s", tenant.slug, provider, actor.user_id)
    return row


def clear_token(*, tenant: TenantLike, actor: Actor, provider: Provider) -> None:
    """Forget the tenant's token: its servers are then managed in the sandbox cloud."""
    _require_admin(tenant, actor)
    db.session.execute(delete(CloudCredential).where(CloudCredential.tenant_id == tenant.id,
                                                     CloudCredential.provider == provider))
    db.session.commit()
    log.info("tenant %s: %s token removed by user %s", tenant.slug, provider, actor.user_id)


def _check_with_the_cloud(provider: Provider, token: str) -> None:
    """A token the cloud refuses is not stored (revoked, mistyped, or without read access)."""
    config = current_app.config
    try:
        check_token(provider, token, endpoint=config[ENDPOINTS[provider]], timeout=config["CLOUD_TIMEOUT"])
    except ProviderError as error:
        if error.kind is ErrorKind.AUTH:
            raise InvalidInput(f"{provider.label} refused this token: {error.message}", field="token") from None
        raise ServiceError(f"{provider.label} could not be reached to check the token. Try again in a minute."
                           ) from None


def _require_admin(tenant: TenantLike, actor: Actor) -> None:
    if actor.user.role is not Role.TENANT_ADMIN or actor.user.tenant_id != tenant.id or actor.impersonator:
        raise Forbidden("Only the tenant's admins can change cloud credentials.")
