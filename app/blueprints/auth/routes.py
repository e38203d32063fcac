"""Register, log in, log out. The links sent by email (reset, confirm) are in `links.py`."""

from __future__ import annotations

from flask import Response, abort, current_app, flash, g, redirect, render_template, request, session, url_for
from flask_login import current_user, login_user, logout_user

from app.blueprints.auth import bp
from app.blueprints.auth.forms import LoginForm, RegisterForm
from app.domain.accounts import VERIFY_LINK_LIFETIME, Role, normalize_email
from app.extensions import limiter, tenant_scope_key
from app.models import User
from app.services import accounts, confirmation
from app.services.errors import AuthenticationFailed, InvalidInput, NotConfirmed
from app.web.access import SESSION_ENDED, SESSION_ENDED_ARG, flash_once, home_for
from app.web.marketplace_purchases import waiting_page
from app.web.redirects import safe_next
from app.web.throttle import TOO_MANY_EMAILS, TOO_MANY_REQUESTS, account_email_allowed

CHECK_INBOX = "registered_email"  # the session key the "check your inbox" page reads


def _account_key() -> str:
    return f"login:{tenant_scope_key()}:{normalize_email(request.form.get('email', ''))}"


def _failed(response: Response) -> bool:
    return response.status_code == 401


def enter(user: User, welcome: str | None = None) -> Response:
    session.clear()  # a fresh session at every login: nothing from before survives
    login_user(user)
    if welcome:
        flash(welcome, "success")
    waiting = waiting_page() if user.role is Role.CUSTOMER else None  # a marketplace purchase to set up
    target = safe_next(request.args.get("next")) or waiting or url_for(home_for(user.role))
    return redirect(target, 303)


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["LOGIN_LIMIT_ADDRESS"], methods=["POST"], deduct_when=_failed)
@limiter.limit(lambda: current_app.config["LOGIN_LIMIT_ACCOUNT"], key_func=_account_key, methods=["POST"],
               deduct_when=_failed)
def login() -> Response | tuple[str, int]:
    if current_user.is_authenticated:
        return redirect(url_for(home_for(current_user.role)))
    form = LoginForm()
    if request.method == "GET" and not form.email.data:
        form.email.data = (request.args.get("email") or "")[:254] or None
    if not form.validate_on_submit():
        if request.method == "GET" and request.args.get(SESSION_ENDED_ARG) == "1":
            flash_once(SESSION_ENDED, "info")
        return render_template("auth/login.html", form=form), 400 if form.errors else 200
    try:
        user = accounts.log_in(tenant=g.tenant, email=form.email.data, password=form.password.data,
                               remote_addr=request.remote_addr, user_agent=request.user_agent.string)
    except AuthenticationFailed as error:
        form.form_errors.append(error.message)
        return render_template("auth/login.html", form=form), 401
    except NotConfirmed as error:
        form.form_errors.append(_confirm_first(error))
        return render_template("auth/login.html", form=form), 403
    return enter(user)


def _confirm_first(error: NotConfirmed) -> str:
    """The right password for an account whose address is not confirmed: a new link, unless one went lately."""
    if not account_email_allowed(error.email):
        return (f"Confirm your email address first: open the link we sent to {error.email} (look in the spam "
                "folder too). You can ask for a new link again in a while.")
    confirmation.resend(tenant=g.tenant, user_id=error.user_id)
    hours = int(VERIFY_LINK_LIFETIME.total_seconds() // 3600)
    return f"Confirm your email address first: we sent a new link to {error.email}. It works for {hours} hours."


@bp.route("/register", methods=["GET", "POST"])
@limiter.limit("10 per hour", methods=["POST"], error_message=TOO_MANY_REQUESTS)
def register() -> Response | tuple[str, int]:
    """Whether the address is new or has an account, the answer is the same: to the "check your inbox" page
    (the service emails either a confirmation link or a notice to the address's owner)."""
    if current_user.is_authenticated:
        return redirect(url_for(home_for(current_user.role)))
    form = RegisterForm()
    if request.method == "GET" and not form.email.data:  # from a marketplace purchase: its purchaser's address
        form.email.data = (request.args.get("email") or "")[:254] or None
    if not form.validate_on_submit():
        return render_template("auth/register.html", form=form), 400 if form.errors else 200
    if not account_email_allowed(form.email.data):
        abort(429, TOO_MANY_EMAILS)
    try:
        accounts.register_customer(tenant=g.tenant, name=form.name.data, email=form.email.data,
                                   password=form.password.data)
    except InvalidInput as error:
        getattr(form, error.field or "email").errors.append(error.message)
        return render_template("auth/register.html", form=form), 400
    session[CHECK_INBOX] = normalize_email(form.email.data)
    return redirect(url_for("auth.check_inbox"), 303)


@bp.get("/register/check-your-inbox")
def check_inbox() -> Response | str:
    if current_user.is_authenticated:
        return redirect(url_for(home_for(current_user.role)))
    hours = int(VERIFY_LINK_LIFETIME.total_seconds() // 3600)
    return render_template("auth/check_inbox.html", email=session.get(CHECK_INBOX), hours=hours)


@bp.post("/logout")
def logout() -> Response:
    if current_user.is_authenticated:
        accounts.log_out(user=current_user._get_current_object())
    logout_user()
    session.clear()
    flash("You have been logged out.", "info")
    return redirect(url_for("auth.login"), 303)
