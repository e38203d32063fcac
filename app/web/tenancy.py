"""The current tenant comes from the request's host; every request has one or answers 404."""

from __future__ import annotations

from flask import Flask, abort, current_app, g, request

from app.selectors.tenants import tenant_for_host


def load_tenant() -> None:
    if request.endpoint == "static":
        return
    tenant = tenant_for_host(request.host, default_slug=current_app.config["DEFAULT_TENANT"])
    if tenant is None:
        abort(404, "No portal is configured for this address.")
    g.tenant = tenant


def init_app(app: Flask) -> None:
    app.before_request(load_tenant)
    app.context_processor(lambda: {"tenant": g.get("tenant")})
