from flask import Blueprint

bp = Blueprint("admin", __name__)

from app.blueprints.admin import (  # noqa: E402, F401  (routes register themselves on bp)
    audit,
    billing_settings,
    catalogue,
    catalogue_lifecycle,
    cloud_prices,
    collection,
    emails,
    invoice_documents,
    invoices,
    marketplace_relink,
    marketplaces,
    routes,
    stripe_settings,
    subscriptions,
    usage,
)
