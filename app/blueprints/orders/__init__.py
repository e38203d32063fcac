from flask import Blueprint

bp = Blueprint("orders", __name__)

from app.blueprints.orders import routes  # noqa: E402, F401  (routes register themselves on bp)
