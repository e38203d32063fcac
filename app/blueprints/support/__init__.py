from flask import Blueprint

bp = Blueprint("support", __name__)

from app.blueprints.support import routes  # noqa: E402, F401  (routes register themselves on bp)
