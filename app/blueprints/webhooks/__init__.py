from flask import Blueprint

bp = Blueprint("webhooks", __name__)

from app.blueprints.webhooks import pending  # noqa: E402, F401  (routes register themselves on bp)
