"""Customers arriving from a marketplace: each marketplace's entry page resolves the purchase, `purchase`
has the pages where the customer signs in (or registers) and sets it up."""

from flask import Blueprint

bp = Blueprint("marketplace", __name__)

from app.blueprints.marketplace import microsoft, purchase, stackit  # noqa: E402, F401  (routes register themselves on bp)
