"""Which tenant a request belongs to, and the small cache that spares every request that lookup.

A tenant changes rarely and every request needs it, so what a request needs of it (`TenantRef`) is kept per
host in the app, for `TENANT_CACHE_SECONDS`. A change to a tenant or its hostnames, committed through the
ORM, empties this process's cache at once; other processes see it when their entry ages out.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

from flask import current_app, has_app_context
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from app.extensions import db
from app.kept import KeptAnswers
from app.models import Tenant, TenantHost, TenantRef

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


class TenantCache:
    """Host -> tenant (or None: no tenant), each kept `seconds` on a monotonic clock; at most `size` hosts, the
    least recently used going first (hostile Host headers must not grow it without bound)."""

    def __init__(self, seconds: float, size: int = 512) -> None:
        self.seconds = seconds
        self._kept = KeptAnswers(size)

    def get(self, host: str, resolve: Callable[[str], TenantRef | None]) -> TenantRef | None:
        moment = time.monotonic()
        found, tenant = self._kept.get(host, moment, self.seconds)
        if found:
            return tenant  # type: ignore[return-value]
        tenant = resolve(host)
        if self.seconds > 0:
            self._kept.put(host, moment, tenant)
        return tenant

    def clear(self) -> None:
        self._kept.clear()

    def __len__(self) -> int:
        return len(self._kept)


def tenant_cache() -> TenantCache:
    """The current app's cache (created on first use)."""
    cache = current_app.extensions.get("tenant_cache")
    if cache is None:
        cache = current_app.extensions["tenant_cache"] = TenantCache(current_app.config["TENANT_CACHE_SECONDS"])
    return cache


_CHANGED = "tenants_changed"


@event.listens_for(Session, "after_flush")
def _note_tenant_changes(session: Session, _context: object) -> None:
    if any(isinstance(obj, Tenant | TenantHost) for obj in (*session.new, *session.dirty, *session.deleted)):
        session.info[_CHANGED] = True


@event.listens_for(Session, "after_commit")
def _forget_changed_tenants(session: Session) -> None:
    if session.info.pop(_CHANGED, False) and has_app_context():
        tenant_cache().clear()
