"""Access checks, in one place. Views declare who may call them; nothing else checks roles."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from functools import wraps
from typing import ParamSpec, TypeVar

from flask import abort, current_app, g, redirect, request, url_for
from flask_login import current_user

from app.domain.accounts import Role
from app.models import User
from app.selectors.accounts import user_for_session
from app.services.actors import Actor
from app.web import htmx

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


def _to_login() -> object:
    target = url_for("auth.login", next=request.full_path.rstrip("?"))
    return htmx.redirect(target) if htmx.wants_fragment() else redirect(target)


def login_required(view: Callable[P, R]) -> Callable[P, R]:
    @wraps(view)
    def wrapped(*args: P.args, **kwargs: P.kwargs) -> R:
        if not current_user.is_authenticated:
            return _to_login()  # type: ignore[return-value]
        return view(*args, **kwargs)

    return wrapped


def roles_required(*roles: Role) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Logged in with one of `roles`, else 403 (a forged HX-Request header changes nothing)."""

    def decorator(view: Callable[P, R]) -> Callable[P, R]:
        @wraps(view)
        def wrapped(*args: P.args, **kwargs: P.kwargs) -> R:
            if not current_user.is_authenticated:
                return _to_login()  # type: ignore[return-value]
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
