from flask import Blueprint

bp = Blueprint("catalogue", __name__)

from app.blueprints.catalogue import routes  # noqa: E402, F401  (routes register themselves on bp)
