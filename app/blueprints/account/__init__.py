from flask import Blueprint

bp = Blueprint("account", __name__)

from app.blueprints.account import deletion, emails, keys, routes, tokens  # noqa: E402, F401  (routes register themselves on bp)
