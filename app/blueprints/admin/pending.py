"""Endpoints being built: each answers 404 until its module replaces its line here (TEMPORARY)."""

from flask import abort

from app.blueprints.admin import bp

PENDING = {
    "invoices": "/invoices",
    "invoice": "/invoices/<int:invoice_id>",
    "invoice_pdf": "/invoices/<int:invoice_id>.pdf",
    "credit_note": "/invoices/<int:invoice_id>/credit-notes",
    "payments": "/payments",
    "overdue": "/overdue",
    "extend_grace": "/subscriptions/<int:subscription_id>/grace",
    "billing_settings": "/billing",
    "usage_upload": "/usage",
}


def _pending(**_: object) -> None:
    abort(404)


for _endpoint, _rule in PENDING.items():
    bp.add_url_rule(_rule, _endpoint, _pending, methods=["GET", "POST"])
