"""The links sent by email: ask for a password reset link, set a new password through it, confirm an address.

A link's page (GET) only shows a form; the change happens when it is sent (POST), so that a mail scanner that
opens links changes nothing. A link that does not work, for whatever reason, gets the same page.
"""

from __future__ import annotations

from flask import Response, abort, flash, g, make_response, redirect, render_template, request, session, url_for
from flask_login import current_user

from app.blueprints.auth import bp
from app.blueprints.auth.forms import ConfirmForm, ForgotPasswordForm, ResetPasswordForm
from app.blueprints.auth.routes import enter
from app.domain.accounts import RESET_LINK_LIFETIME, TokenPurpose, normalize_email
from app.extensions import limiter
from app.selectors.accounts import usable_link
from app.services import accounts, confirmation, recovery
from app.services.account_links import LINK_INVALID
from app.services.errors import Conflict, InvalidInput, NotFound
from app.web.throttle import TOO_MANY_EMAILS, TOO_MANY_REQUESTS, account_email_allowed, address_limit

RESET_ASKED = "reset_email"  # the session key the "link sent" page reads
MINUTES = int(RESET_LINK_LIFETIME.total_seconds() // 60)


@bp.route("/forgot-password", methods=["GET", "POST"])
@limiter.limit(address_limit, methods=["POST"], error_message=TOO_MANY_REQUESTS)
def forgot_password() -> Response | tuple[str, int]:
    """The same answer whether or not the address has an account: to the "link sent" page."""
    form = ForgotPasswordForm()
    if not form.validate_on_submit():
        return render_template("auth/forgot_password.html", form=form), 400 if form.errors else 200
    if not account_email_allowed(form.email.data):
        abort(429, TOO_MANY_EMAILS)
    recovery.request_reset(tenant=g.tenant, email=form.email.data)
    session[RESET_ASKED] = normalize_email(form.email.data)
    return redirect(url_for("auth.reset_sent"), 303)


@bp.get("/forgot-password/sent")
def reset_sent() -> str:
    return render_template("auth/reset_sent.html", email=session.get(RESET_ASKED), minutes=MINUTES)


@bp.route("/reset-password/<token>", methods=["GET", "POST"])
def reset_password(token: str) -> Response:
    link = usable_link(g.tenant, token, TokenPurpose.RESET_PASSWORD)
    if link is None:
        return _link_invalid()
    form = ResetPasswordForm()
    if not form.validate_on_submit():
        return _private(render_template("auth/reset_password.html", form=form, email=link.user.email),
                        400 if form.errors else 200)
    try:
        user = recovery.reset_password(tenant=g.tenant, secret=token, password=form.password.data,
                                       remote_addr=request.remote_addr, user_agent=request.user_agent.string)
    except NotFound:
        return _link_invalid()
    except InvalidInput as error:
        form.password.errors = [*form.password.errors, error.message]
        return _private(render_template("auth/reset_password.html", form=form, email=link.user.email), 400)
    _leave_this_session()
    return enter(user, welcome="Your new password is set. Every other session of your account was logged out.")


@bp.route("/confirm-email/<token>", methods=["GET", "POST"])
def verify_email(token: str) -> Response:
    link = usable_link(g.tenant, token, TokenPurpose.VERIFY_EMAIL)
    if link is None:
        return _link_invalid()
    form = ConfirmForm()
    if not form.validate_on_submit():
        return _private(render_template("auth/verify_email.html", form=form, link=link), 400 if form.errors else 200)
    try:
        done = confirmation.confirm(tenant=g.tenant, secret=token, remote_addr=request.remote_addr,
                                    user_agent=request.user_agent.string)
    except NotFound:
        return _link_invalid()
    except Conflict as error:
        return _private(render_template("auth/link_problem.html", title="Your email was not changed",
                                        message=error.message), 409)
    if done.previous_email is None:  # a registration: confirmed, and logged in
        _leave_this_session()
        return enter(done.user, welcome="Your address is confirmed. Welcome!")
    flash(f"Your login email is now {done.user.email}. Use it the next time you log in.", "success")
    if current_user.is_authenticated and current_user.id == done.user.id:
        return redirect(url_for("account.security"), 303)
    return redirect(url_for("auth.login"), 303)


def _link_invalid() -> Response:
    page = render_template("auth/link_problem.html", title="This link does not work", message=LINK_INVALID)
    return _private(page, 404)


def _private(page: str, status: int) -> Response:
    """Pages reached through a secret link are never kept by a browser or a proxy."""
    response = make_response(page, status)
    response.headers["Cache-Control"] = "no-store"
    return response


def _leave_this_session() -> None:
    """Whoever this browser was logged in as is logged out before the link's user is logged in."""
    if current_user.is_authenticated:
        accounts.log_out(user=current_user._get_current_object())
