"""Register, log in, log out."""

from __future__ import annotations

from flask import Response, current_app, flash, g, redirect, render_template, request, session, url_for
from flask_login import current_user, login_user, logout_user

from app.blueprints.auth import bp
from app.blueprints.auth.forms import LoginForm, RegisterForm
from app.domain.accounts import normalize_email
from app.extensions import limiter, tenant_scope_key
from app.models import User
from app.services import accounts
from app.services.errors import AuthenticationFailed, InvalidInput
from app.web.access import home_for
from app.web.redirects import safe_next


def _account_key() -> str:
    return f"login:{tenant_scope_key()}:{normalize_email(request.form.get('email', ''))}"


def _failed(response: Response) -> bool:
    return response.status_code == 401


def _enter(user: User, welcome: str | None = None) -> Response:
    session.clear()  # a fresh session at every login: nothing from before survives
    login_user(user)
    if welcome:
        flash(welcome, "success")
    target = safe_next(request.args.get("next")) or url_for(home_for(user.role))
    return redirect(target, 303)


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["LOGIN_LIMIT_ADDRESS"], methods=["POST"], deduct_when=_failed)
@limiter.limit(lambda: current_app.config["LOGIN_LIMIT_ACCOUNT"], key_func=_account_key, methods=["POST"],
               deduct_when=_failed)
def login() -> Response | tuple[str, int]:
    if current_user.is_authenticated:
        return redirect(url_for(home_for(current_user.role)))
    form = LoginForm()
    if not form.validate_on_submit():
        return render_template("auth/login.html", form=form), 400 if form.errors else 200
    try:
        user = accounts.log_in(tenant=g.tenant, email=form.email.data, password=form.password.data,
                               remote_addr=request.remote_addr, user_agent=request.user_agent.string)
    except AuthenticationFailed as error:
        form.form_errors.append(error.message)
        return render_template("auth/login.html", form=form), 401
    return _enter(user)


@bp.route("/register", methods=["GET", "POST"])
@limiter.limit("10 per hour", methods=["POST"])
def register() -> Response | tuple[str, int]:
    if current_user.is_authenticated:
        return redirect(url_for(home_for(current_user.role)))
    form = RegisterForm()
    if not form.validate_on_submit():
        return render_template("auth/register.html", form=form), 400 if form.errors else 200
    try:
        user = accounts.register_customer(tenant=g.tenant, name=form.name.data, email=form.email.data,
                                          password=form.password.data)
    except InvalidInput as error:
        getattr(form, error.field or "email").errors.append(error.message)
        return render_template("auth/register.html", form=form), 400
    accounts.start_session(user=user, remote_addr=request.remote_addr, user_agent=request.user_agent.string)
    return _enter(user, welcome="Welcome! Your account is ready.")


@bp.post("/logout")
def logout() -> Response:
    if current_user.is_authenticated:
        accounts.log_out(user=current_user._get_current_object())
    logout_user()
    session.clear()
    flash("You have been logged out.", "info")
    return redirect(url_for("auth.login"), 303)
