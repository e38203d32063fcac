from flask import Blueprint

bp = Blueprint("webhooks", __name__)

from app.blueprints.webhooks import microsoft, stripe  # noqa: E402, F401  (routes register themselves on bp)
