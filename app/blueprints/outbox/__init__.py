from flask import Blueprint

bp = Blueprint("outbox", __name__)

from app.blueprints.outbox import routes  # noqa: E402, F401  (routes register themselves on bp)
