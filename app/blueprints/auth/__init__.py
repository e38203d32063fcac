from flask import Blueprint

bp = Blueprint("auth", __name__)

from app.blueprints.auth import links, routes  # noqa: E402, F401  (routes register themselves on bp)
