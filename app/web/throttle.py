"""A throttle that is not a route decorator: how many account emails one address receives.

Password reset links, confirmation links and notices to an address's owner ("someone tried to register with
your address") all count against `ACCOUNT_EMAIL_LIMIT` for that address in the tenant, whoever asks and whether
or not the address has an account, so nobody can flood a mailbox through the portal and the count reveals
nothing. Per client address, routes add `ACCOUNT_EMAIL_LIMIT_ADDRESS` with `limiter.limit`.
"""

from __future__ import annotations

from flask import current_app
from limits import parse_many

from app.domain.accounts import normalize_email
from app.extensions import limiter, tenant_scope_key

TOO_MANY_EMAILS = ("We sent several emails to this address a short while ago. Please look for them (the spam folder "
                   "too), or wait an hour and try again.")
TOO_MANY_REQUESTS = "Too many requests from your network in a short time. Please wait an hour and try again."


def account_email_allowed(email: str) -> bool:
    """Whether one more account email may go to `email` now; counts it when it may."""
    if not limiter.enabled:
        return True
    key = f"account-email:{tenant_scope_key()}:{normalize_email(email)}"
    items = parse_many(current_app.config["ACCOUNT_EMAIL_LIMIT"])
    strategy = limiter.limiter
    if not all(strategy.test(item, key) for item in items):
        return False
    for item in items:
        strategy.hit(item, key)
    return True


def address_limit() -> str:
    """For `limiter.limit`: account emails asked for per client address."""
    return str(current_app.config["ACCOUNT_EMAIL_LIMIT_ADDRESS"])
