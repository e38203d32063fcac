"""What the admin area shows about a tenant's cloud accounts (never the tokens)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import aliased

from app.domain.catalogue import Provider
from app.extensions import db
from app.models import CloudCredential, TenantLike, User

CLOUDS = (Provider.HETZNER, Provider.DIGITALOCEAN)
ENV_TOKENS = {Provider.HETZNER: "HETZNER_TOKEN", Provider.DIGITALOCEAN: "DIGITALOCEAN_TOKEN"}


@dataclass(frozen=True)
class CloudSetting:
    provider: Provider
    source: str  # "tenant", "environment" or "sandbox"
    hint: str | None = None
    updated_at: datetime | None = None
    updated_by: str | None = None


def cloud_settings(tenant: TenantLike) -> list[CloudSetting]:
    editor = aliased(User)
    rows = {row.provider: (row, name) for row, name in db.session.execute(
        select(CloudCredential, editor.name).outerjoin(editor, editor.id == CloudCredential.updated_by_id)
        .where(CloudCredential.tenant_id == tenant.id))}
    return [_setting(tenant, provider, rows.get(provider)) for provider in CLOUDS]


def _setting(tenant: TenantLike, provider: Provider, found: tuple[CloudCredential, str | None] | None) -> CloudSetting:
    if found is not None:
        row, name = found
        return CloudSetting(provider, "tenant", row.token_hint, row.updated_at, name)
    if tenant.slug == current_app.config["DEFAULT_TENANT"] and current_app.config.get(ENV_TOKENS[provider]):
        return CloudSetting(provider, "environment")
    return CloudSetting(provider, "sandbox")
