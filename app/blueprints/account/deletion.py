"""Deleting the account: the customer confirms with their password; never while support impersonates them."""

from __future__ import annotations

from flask import Response, current_app, flash, g, redirect, render_template, session, url_for
from flask_login import current_user, logout_user

from app.blueprints.account import bp
from app.blueprints.account.forms import DeleteAccountForm
from app.domain.accounts import purge_delay
from app.extensions import limiter
from app.selectors.accounts import live_subscription_count
from app.services import deletion
from app.services.errors import ServiceError
from app.web.access import current_actor, customer_required, not_while_impersonating

OWNER_ONLY = "the account"


def _user_key() -> str:
    return f"account-delete:{getattr(current_user, 'id', '-')}"


def _refused(response: Response) -> bool:
    return response.status_code == 400


def _page(form: DeleteAccountForm, status: int = 200) -> tuple[str, int]:
    days = purge_delay(current_app.config["ACCOUNT_PURGE_DAYS"], g.tenant.retention_days).days
    page = render_template("account/delete.html", form=form, purge_days=days,
                           live=live_subscription_count(g.tenant, current_user._get_current_object()))
    return page, status


@bp.get("/delete")
@customer_required
@not_while_impersonating(OWNER_ONLY)
def delete_page() -> tuple[str, int]:
    return _page(DeleteAccountForm())


@bp.post("/delete")
@limiter.limit("10 per hour", key_func=_user_key, deduct_when=_refused)
@customer_required
@not_while_impersonating(OWNER_ONLY)
def delete_account() -> Response | tuple[str, int]:
    form = DeleteAccountForm()
    if not form.validate_on_submit():
        return _page(form, 400)
    try:
        user = deletion.delete_account(tenant=g.tenant, actor=current_actor(), password=form.password.data,
                                       purge_days=current_app.config["ACCOUNT_PURGE_DAYS"])
    except ServiceError as error:
        if error.field == "password":
            form.password.errors = [*form.password.errors, error.message]
        else:
            form.form_errors.append(error.message)
        return _page(form, error.status_code)
    logout_user()
    session.clear()
    flash(f"Your account is deleted and you are logged out everywhere. We sent a confirmation to {user.email}.",
          "info")
    return redirect(url_for("auth.login"), 303)
