"""The plan catalogue, open to everyone on the tenant's host."""

from __future__ import annotations

from flask import g, render_template

from app.blueprints.catalogue import bp
from app.selectors.catalogue import published_offers


@bp.get("/")
def index() -> str:
    return render_template("catalogue/index.html", offers=published_offers(g.tenant))
