"""Endpoints being built: each answers 404 until its module replaces its line here (TEMPORARY)."""

from flask import abort

from app.blueprints.admin import bp

PENDING = {
    "payment_settings": "/billing/stripe",
}


def _pending(**_: object) -> None:
    abort(404)


for _endpoint, _rule in PENDING.items():
    bp.add_url_rule(_rule, _endpoint, _pending, methods=["GET", "POST"])
