"""Which tenant a request belongs to."""

from __future__ import annotations

from sqlalchemy import select

from app.extensions import db
from app.models import Tenant, TenantHost


def normalize_host(host: str) -> str:
    """`Example.COM:8080` -> `example.com`; IPv6 literals keep their brackets."""
    host = host.strip().lower()
    if host.startswith("["):
        return host.split("]")[0] + "]"
    return host.rsplit(":", 1)[0] if ":" in host else host


def tenant_for_host(host: str, *, default_slug: str) -> Tenant | None:
    """The tenant that lists `host` among its hostnames, else the default tenant."""
    tenant = db.session.scalar(
        select(Tenant).join(TenantHost).where(TenantHost.hostname == normalize_host(host))
    )
    if tenant is None:
        tenant = db.session.scalar(select(Tenant).where(Tenant.slug == default_slug))
    return tenant
