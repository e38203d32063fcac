"""Endpoints being built: each answers 404 until its module replaces its line here (TEMPORARY)."""

from flask import abort

from app.blueprints.webhooks import bp


@bp.post("/webhooks/stripe/<tenant_slug>")
def stripe(tenant_slug: str) -> None:
    abort(404)
