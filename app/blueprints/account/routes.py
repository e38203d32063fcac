"""The customer's own account: the billing profile that ordering requires, the password and the login email."""

from __future__ import annotations

from flask import Response, current_app, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_user

from app.blueprints.account import bp
from app.blueprints.account.forms import EmailForm, PasswordForm, ProfileForm
from app.domain.profiles import LABELS
from app.extensions import limiter
from app.models import CustomerProfile, User
from app.selectors.accounts import pending_email_change
from app.selectors.profiles import profile_for
from app.services import accounts, profiles
from app.services.errors import Conflict, InvalidInput, ServiceError
from app.web.access import current_actor, customer_required, not_while_impersonating
from app.web.redirects import safe_next

OWNER_ONLY = "the password and the login email"


def _initial(user: User, profile: CustomerProfile | None) -> dict[str, str]:
    """What the form shows first: the saved profile, else what the account already tells us."""
    values = {name: getattr(profile, name, "") for name in LABELS}
    return {**values, "full_name": values["full_name"] or user.name,
            "billing_email": values["billing_email"] or user.email}


@bp.route("/profile", methods=["GET", "POST"])
@customer_required
def profile() -> Response | tuple[str, int]:
    user = current_user._get_current_object()
    # `next` brings the customer back to an order left half-way, its query string (the choices) intact.
    next_url = safe_next(request.args.get("next"))
    form = ProfileForm() if request.method == "POST" else ProfileForm(data=_initial(user, profile_for(user)))
    if not form.validate_on_submit():
        return _page(form, next_url), 400 if form.errors else 200
    try:
        profiles.save_profile(actor=current_actor(), **form.values())
    except (InvalidInput, Conflict) as error:
        if error.field in LABELS:
            form[error.field].errors.append(error.message)
        else:
            form.form_errors.append(error.message)
        return _page(form, next_url), error.status_code
    flash("Your profile is saved.", "success")
    return redirect(next_url or url_for("account.profile"), 303)


def _page(form: ProfileForm, next_url: str | None) -> str:
    return render_template("account/profile.html", form=form, next_url=next_url)


# --- password and email ------------------------------------------------------------------------------------

def _user_key() -> str:
    """Wrong current passwords are throttled per account, whatever the address."""
    return f"account-security:{getattr(current_user, 'id', '-')}"


def _refused(response: Response) -> bool:
    return response.status_code == 400


def _email_change_key() -> str:
    """Every email change asked for sends an email (to the new address, or to its owner): counted per account."""
    return f"email-change:{getattr(current_user, 'id', '-')}"


TOO_MANY_EMAIL_CHANGES = "You asked to change your email several times in a short while. Please wait an hour."


def _security_page(password_form: PasswordForm | None = None, email_form: EmailForm | None = None,
                   status: int = 200) -> tuple[str, int]:
    page = render_template("account/security.html", password_form=password_form or PasswordForm(prefix="password"),
                           email_form=email_form or EmailForm(prefix="email"),
                           pending=pending_email_change(current_user._get_current_object()))
    return page, status


def _refusal(form: PasswordForm | EmailForm, error: ServiceError) -> None:
    if error.field and error.field in form:
        form[error.field].errors = [*form[error.field].errors, error.message]
    else:
        form.form_errors.append(error.message)


@bp.get("/security")
@customer_required
@not_while_impersonating(OWNER_ONLY)
def security() -> tuple[str, int]:
    return _security_page()


@bp.post("/security/password")
@limiter.limit("10 per hour", key_func=_user_key, deduct_when=_refused)
@customer_required
@not_while_impersonating(OWNER_ONLY)
def change_password() -> Response | tuple[str, int]:
    form = PasswordForm(prefix="password")
    if not form.validate_on_submit():
        return _security_page(password_form=form, status=400)
    try:
        user = accounts.change_password(actor=current_actor(), current_password=form.current_password.data,
                                        new_password=form.new_password.data, remote_addr=request.remote_addr,
                                        user_agent=request.user_agent.string)
    except ServiceError as error:
        _refusal(form, error)
        return _security_page(password_form=form, status=error.status_code)
    session.clear()  # the renewed session gets a fresh cookie, as at login
    login_user(user)
    flash("Your password is changed. Any other sessions of yours are logged out.", "success")
    return redirect(url_for(".security"), 303)


@bp.post("/security/email")
@limiter.limit("10 per hour", key_func=_user_key, deduct_when=_refused)
@limiter.limit(lambda: current_app.config["ACCOUNT_EMAIL_LIMIT"], key_func=_email_change_key,
               error_message=TOO_MANY_EMAIL_CHANGES)
@customer_required
@not_while_impersonating(OWNER_ONLY)
def change_email() -> Response | tuple[str, int]:
    form = EmailForm(prefix="email")
    if not form.validate_on_submit():
        return _security_page(email_form=form, status=400)
    try:
        email = accounts.change_email(actor=current_actor(), password=form.password.data, new_email=form.email.data)
    except ServiceError as error:
        _refusal(form, error)
        return _security_page(email_form=form, status=error.status_code)
    # The same words whether or not the address has an account (its owner is told by email instead).
    flash(f"We sent a link to {email}. Your login email changes when you open it; until then it stays "
          f"{current_user.email}.", "success")
    return redirect(url_for(".security"), 303)
