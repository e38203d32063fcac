from flask import Blueprint

bp = Blueprint("billing", __name__)

from app.blueprints.billing import (  # noqa: E402, F401  (routes register themselves on bp)
    methods,
    pay,
    routes,
    usage,
)
