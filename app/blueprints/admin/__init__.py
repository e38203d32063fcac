from flask import Blueprint

bp = Blueprint("admin", __name__)

from app.blueprints.admin import audit, emails, payments, pending, routes, subscriptions  # noqa: E402, F401  (routes register themselves on bp)
