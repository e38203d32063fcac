"""Access checks, in one place. Views declare who may call them; nothing else checks roles."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from functools import wraps
from typing import ParamSpec, TypeVar
from urllib.parse import urlsplit

from flask import Response, abort, current_app, flash, g, redirect, request, session, url_for
from flask_login import current_user

from app.domain.accounts import Role
from app.models import User
from app.selectors.accounts import user_for_session
from app.services.actors import Actor
from app.web import htmx
from app.web.redirects import safe_next

log = logging.getLogger(__name__)

SESSION_ENDED = "Your session has ended. Please log in again."
SESSION_ENDED_ARG = "ended"  # on the login page's address: it says SESSION_ENDED

P = ParamSpec("P")
R = TypeVar("R")


def load_user(token: str) -> User | None:
    """Flask-Login's loader: the cookie holds a session token, valid only on its own tenant."""
    tenant = g.get("tenant")
    if tenant is None:
        return None
    lifetime = timedelta(hours=current_app.config.get("SESSION_LIFETIME_HOURS", 12))
    return user_for_session(token, tenant=tenant, lifetime=lifetime)


def current_actor() -> Actor:
    """The logged-in user as a service sees them (with the support user behind them, when impersonating)."""
    return Actor(user=current_user._get_current_object(), impersonator=g.get("impersonator"))


def to_login(message: str | None = None) -> Response:
    """To the login page, and back here afterwards.

    An htmx request without a login comes from a page whose session ended (logged out in another tab,
    expired): the whole page goes to the login page, and back to that page afterwards.
    """
    if htmx.wants_fragment():
        # Several parts of a page may ask at once (a change refreshes the price and the availability): say it once.
        flash_once(message or SESSION_ENDED, "info")
        # Said in the address too: when two parts' redirects race, the browser may drop the page that showed the
        # flash and load the login page again (SESSION_ENDED_ARG makes that one say it).
        return htmx.redirect(url_for("auth.login", next=_current_page() or "/",
                                     **({} if message else {SESSION_ENDED_ARG: "1"})))
    if message:
        flash(message, "info")
    return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))


def flash_once(message: str, category: str) -> None:
    """Flash `message` unless it is already waiting to be shown."""
    if (category, message) not in session.get("_flashes", []):
        flash(message, category)


def _current_page() -> str | None:
    """The page an htmx request was made from (htmx sends its URL), if it is on this site."""
    return _local_path(request.headers.get("HX-Current-URL"))


def login_required(view: Callable[P, R]) -> Callable[P, R]:
    @wraps(view)
    def wrapped(*args: P.args, **kwargs: P.kwargs) -> R:
        if not current_user.is_authenticated:
            return to_login()  # type: ignore[return-value]
        return view(*args, **kwargs)

    return wrapped


def roles_required(*roles: Role) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Logged in with one of `roles`, else 403 (a forged HX-Request header changes nothing)."""

    def decorator(view: Callable[P, R]) -> Callable[P, R]:
        @wraps(view)
        def wrapped(*args: P.args, **kwargs: P.kwargs) -> R:
            if not current_user.is_authenticated:
                return to_login()  # type: ignore[return-value]
            if current_user.role not in roles:
                abort(403)
            return view(*args, **kwargs)

        return wrapped

    return decorator


customer_required = roles_required(Role.CUSTOMER)
tenant_admin_required = roles_required(Role.TENANT_ADMIN)
support_required = roles_required(Role.SUPPORT)


def home_for(role: Role) -> str:
    """Where each role lands after logging in."""
    return {
        Role.CUSTOMER: "catalogue.index",
        Role.TENANT_ADMIN: "admin.index",
        Role.SUPPORT: "support.index",
    }[role]


# --- impersonation --------------------------------------------------------------------------------------------
# app/web/impersonation.py sets g.impersonation (the record) and g.impersonator (the support user) on every
# request of a session in which support acts as a customer.

IMPERSONATION_REFUSAL = ("Not while impersonating: {what} can only be changed by the customer, logged in as "
                         "themselves. Nothing was changed.")


def not_while_impersonating(what: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Refuse the view, whatever the method, while support impersonates the customer; nothing runs.

    For what only the account owner may do: password, email, payment methods, deleting the account.
    `what` completes the message ("the password and email", "payment methods"). A page answers 403 with
    the message; an htmx request gets it as a flash message and is sent back where it came from.
    """

    def decorator(view: Callable[P, R]) -> Callable[P, R]:
        @wraps(view)
        def wrapped(*args: P.args, **kwargs: P.kwargs) -> R:
            if g.get("impersonator") is not None:
                message = IMPERSONATION_REFUSAL.format(what=what)
                log.warning("refused while impersonating: %s %s", request.method, request.path)
                if htmx.wants_fragment():
                    flash(message, "error")
                    return htmx.redirect(_referring_path() or "/")  # type: ignore[return-value]
                abort(403, message)
            return view(*args, **kwargs)

        return wrapped

    return decorator


def impersonating_required(view: Callable[P, R]) -> Callable[P, R]:
    """Only while support impersonates a customer (Stop, the banner); else 404."""

    @wraps(view)
    def wrapped(*args: P.args, **kwargs: P.kwargs) -> R:
        if g.get("impersonation") is None:
            abort(404)
        return view(*args, **kwargs)

    return wrapped


def _referring_path() -> str | None:
    return _local_path(request.referrer)


def _local_path(url: str | None) -> str | None:
    """The path and query of `url` when it points at this site, else None."""
    parts = urlsplit(url or "")
    if parts.netloc and parts.netloc != request.host:
        return None
    return safe_next(parts.path + (f"?{parts.query}" if parts.query else ""))
