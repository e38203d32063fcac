"""Which tenant a request belongs to."""

from __future__ import annotations

import re

from sqlalchemy import select

from app.extensions import db
from app.models import Tenant, TenantHost

# A DNS name (labels of letters, digits and hyphens), an IPv4 address, or a bracketed IPv6 literal.
_HOSTNAME = re.compile(r"^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$")
_IPV6 = re.compile(r"^\[[0-9a-f:.]{2,45}\]$")


def normalize_host(host: str) -> str:
    """`Example.COM:8080` -> `example.com`; IPv6 literals keep their brackets."""
    host = host.strip().lower()
    if host.startswith("["):
        return host.split("]")[0] + "]"
    return host.rsplit(":", 1)[0] if ":" in host else host


def is_hostname(host: str) -> bool:
    """Whether a normalized host is a well-formed name or address (anything else is never looked up)."""
    return len(host) <= 253 and bool(_HOSTNAME.match(host) or _IPV6.match(host))


def tenant_for_host(hostname: str) -> Tenant | None:
    """The tenant that lists `hostname` (normalized) among its hostnames."""
    return db.session.scalar(select(Tenant).join(TenantHost).where(TenantHost.hostname == hostname))


def tenant_by_slug(slug: str) -> Tenant | None:
    return db.session.scalar(select(Tenant).where(Tenant.slug == slug))
