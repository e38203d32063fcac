"""The support area: find the tenant's customers."""

from __future__ import annotations

from flask import g, request

from app.blueprints.support import bp
from app.selectors.customers import find_customers
from app.web import htmx
from app.web.access import support_required


@bp.get("/")
@support_required
def index() -> str:
    query = request.args.get("q", "")[:200]
    page = request.args.get("page", 1, type=int) or 1
    results = find_customers(g.tenant, query=query, page=page)
    return htmx.render("support/index.html", "support/_results.html", results=results, query=query)
