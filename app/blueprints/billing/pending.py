"""Endpoints being built: each answers 404 until its module replaces its line here (TEMPORARY: removed before
anything links to it is released)."""

from flask import abort

from app.blueprints.billing import bp

PENDING = {
    "index": "/billing",
    "invoice": "/billing/invoices/<int:invoice_id>",
    "invoice_pdf": "/billing/invoices/<int:invoice_id>.pdf",
    "pay": "/billing/invoices/<int:invoice_id>/pay",
    "usage": "/subscriptions/<int:subscription_id>/usage",
}


def _pending(**_: object) -> None:
    abort(404)


for _endpoint, _rule in PENDING.items():
    bp.add_url_rule(_rule, _endpoint, _pending, methods=["GET", "POST"])
