from flask import Blueprint

bp = Blueprint("subscriptions", __name__)

from app.blueprints.subscriptions import routes  # noqa: E402, F401  (routes register themselves on bp)
