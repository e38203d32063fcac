"""Endpoints being built: each answers 404 until its module replaces its line here (TEMPORARY: removed before
anything links to it is released)."""

from flask import abort

from app.blueprints.billing import bp

PENDING = {
    "methods": "/billing/payment-methods",
    "add_method": "/billing/payment-methods/add",
    "method_added": "/billing/payment-methods/added",
    "make_default": "/billing/payment-methods/<int:method_id>/default",
    "remove_method": "/billing/payment-methods/<int:method_id>/remove",
}


def _pending(**_: object) -> None:
    abort(404)


for _endpoint, _rule in PENDING.items():
    bp.add_url_rule(_rule, _endpoint, _pending, methods=["GET", "POST"])
