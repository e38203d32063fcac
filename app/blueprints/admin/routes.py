"""The tenant admin's area: the catalogue in every state, and the tenant's numbers."""

from __future__ import annotations

from flask import g, render_template

from app.blueprints.admin import bp
from app.selectors.catalogue import catalogue_overview
from app.web.access import tenant_admin_required


@bp.get("/")
@tenant_admin_required
def index() -> str:
    return render_template("admin/index.html", overview=catalogue_overview(g.tenant))
