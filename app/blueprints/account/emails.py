"""The customer's emails: the log of every email the portal sent them, and which optional ones they get."""

from __future__ import annotations

from flask import Response, abort, flash, g, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm

from app.blueprints.account import bp
from app.domain.notifications import EVENTS, WHY_ALWAYS_SENT, status_label
from app.selectors import emails as selectors
from app.services import email_settings
from app.services.errors import ServiceError
from app.web.access import current_actor, customer_required, not_while_impersonating


@bp.get("/emails")
@customer_required
def emails() -> str:
    page = request.args.get("page", 1, type=int) or 1
    return render_template("account/emails.html", results=selectors.user_emails(g.tenant, current_user, page=page))


@bp.get("/emails/<int:email_id>")
@customer_required
def email(email_id: int) -> str:
    message = selectors.user_email(g.tenant, current_user, email_id)
    if message is None:
        abort(404)
    impersonated = g.get("impersonator") is not None
    return render_template("account/email.html", message=message, status=status_label(message.status, message.attempts),
                           body_shown=selectors.body_shown(message, impersonated=impersonated))


class PreferencesForm(FlaskForm):
    """The checkboxes are read by name (`wanted`, one per optional email); the form carries the CSRF token."""


def _preferences_page(form: PreferencesForm, status: int = 200) -> tuple[str, int]:
    page = render_template("account/notifications.html", form=form, events=EVENTS, why=WHY_ALWAYS_SENT,
                           opted_out=set(current_user.email_opt_outs or []),
                           impersonated=g.get("impersonator") is not None)
    return page, status


@bp.get("/notifications")
@customer_required
def notifications() -> tuple[str, int]:
    return _preferences_page(PreferencesForm())


@bp.post("/notifications")
@customer_required
@not_while_impersonating("email choices")
def save_notifications() -> Response | tuple[str, int]:
    form = PreferencesForm()
    if not form.validate_on_submit():
        return _preferences_page(form, 400)
    try:
        email_settings.save_preferences(actor=current_actor(), wanted=request.form.getlist("wanted"))
    except ServiceError as error:
        form.form_errors.append(error.message)
        return _preferences_page(form, error.status_code)
    flash("Your email choices are saved.", "success")
    return redirect(url_for(".notifications"), 303)
