"""The current tenant comes from the request's host.

The rule: a host that a tenant lists (`tenant_hosts`) is that tenant's. A host listed in `EXTRA_HOSTS`
belongs to the default tenant. Any other host is untrusted: in production it answers 400; elsewhere the
default tenant answers, so `flask up` works on whatever address a newcomer types. Either way no URL the
portal emits carries an untrusted host: redirects are relative (`app/web/security.py`).
"""

from __future__ import annotations

from flask import Flask, abort, current_app, g, request

from app.models import TenantRef
from app.selectors.tenants import is_hostname, normalize_host, tenant_by_slug, tenant_cache, tenant_for_host

UNKNOWN_HOST = "This portal does not answer on this address."


def load_tenant() -> None:
    if request.endpoint == "static":
        return
    host = normalize_host(request.host)
    if not is_hostname(host):
        abort(400, UNKNOWN_HOST)
    resolved = tenant_cache().get(host, _resolve)
    if resolved is None:
        if current_app.config["PORTAL_ENV"] == "production" and host not in current_app.config["EXTRA_HOSTS"]:
            abort(400, UNKNOWN_HOST)
        abort(404, "No portal is configured for this address.")
    g.tenant = resolved
    g.tenant_name = resolved.name  # for the last-resort error page, which must not read the database


def _resolve(host: str) -> TenantRef | None:
    """The tenant listing `host`; else, for a host no tenant lists, the default tenant (outside production,
    or in it for `EXTRA_HOSTS`). None when neither applies."""
    tenant = tenant_for_host(host)
    if tenant is None:
        config = current_app.config
        if config["PORTAL_ENV"] == "production" and host not in config["EXTRA_HOSTS"]:
            return None
        tenant = tenant_by_slug(config["DEFAULT_TENANT"])
    return TenantRef.of(tenant) if tenant is not None else None


def init_app(app: Flask) -> None:
    app.before_request(load_tenant)
    app.context_processor(lambda: {"tenant": g.get("tenant")})
