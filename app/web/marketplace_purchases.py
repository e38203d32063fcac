"""The marketplace purchase a browser arrived with, remembered across signing in and registering.

Signing in starts a fresh session (nothing of the old one survives), and a new account is confirmed from a
link in an email, maybe hours later. So the purchase the landing page resolved is remembered in a signed
cookie of its own (a day at most): it is what allows this browser to open the purchase's page before it is
set up, and it brings the customer back to it right after they sign in (`waiting_page`).
"""

from __future__ import annotations

from flask import Response, current_app, g, request, url_for
from itsdangerous import BadSignature, URLSafeTimedSerializer

COOKIE = "marketplace_purchase"
MAX_AGE = 24 * 3600


def _signer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="marketplace-purchase")


def remember(response: Response, purchase_id: int) -> Response:
    """Let this browser continue with the tenant's purchase `purchase_id`."""
    value = _signer().dumps({"tenant": g.tenant.id, "purchase": purchase_id})
    response.set_cookie(COOKIE, value, max_age=MAX_AGE, httponly=True, samesite="Lax", secure=request.is_secure)
    return response


def remembered() -> int | None:
    """The purchase this browser arrived with, for the current tenant, if it is recent and signed by us."""
    value = request.cookies.get(COOKIE)
    if not value or len(value) > 500:
        return None
    try:
        data = _signer().loads(value, max_age=MAX_AGE)
    except BadSignature:
        return None
    if not isinstance(data, dict) or data.get("tenant") != g.tenant.id or not isinstance(data.get("purchase"), int):
        return None
    return int(data["purchase"])


def forget(response: Response) -> Response:
    response.delete_cookie(COOKIE, httponly=True, samesite="Lax", secure=request.is_secure)
    return response


def waiting_page() -> str | None:
    """The page of the purchase this browser is setting up, if any: where signing in leads."""
    purchase_id = remembered()
    return url_for("marketplace.purchase", purchase_id=purchase_id) if purchase_id is not None else None
