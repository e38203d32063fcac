from flask import Blueprint

bp = Blueprint("admin", __name__)

from app.blueprints.admin import audit, billing_settings, collection, emails, pending, routes, subscriptions  # noqa: E402, F401  (routes register themselves on bp)
