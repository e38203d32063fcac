"""Personal API tokens on the account page: create (shown once), list, revoke (app/services/api_tokens.py).

A new token is shown in the answer to the form that made it, never put in the session or a redirect, so it
exists only on that one page.
"""

from __future__ import annotations

from flask import Response, abort, flash, g, redirect, render_template, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import BooleanField, SelectChoice, SelectField, StringField
from wtforms.validators import InputRequired, Length

from app.blueprints.account import bp
from app.domain.accounts import Role
from app.domain.api_tokens import EXPIRY_DAYS, NAME_MAX_LENGTH, Scope, parse_scopes
from app.services import api_tokens
from app.services.errors import NotFound, ServiceError
from app.web.access import current_actor, roles_required

people_with_tokens = roles_required(Role.CUSTOMER, Role.TENANT_ADMIN)


class TokenForm(FlaskForm):
    name = StringField("Name", validators=[InputRequired("Give the token a name, so you recognise it later."),
                                           Length(max=NAME_MAX_LENGTH)],
                       description="What uses it, e.g. “deploy script” or “laptop”.")
    read = BooleanField("Read: list and view subscriptions and servers", default=True)
    write = BooleanField("Write: order, cancel, resume, start, stop and restart (includes read)")
    admin = BooleanField("Administration: the tenant's administration endpoints")
    expires_in_days = SelectField("Expires after", default="90",
                                  choices=[SelectChoice(str(days), f"{days} days") for days in EXPIRY_DAYS])


class RevokeForm(FlaskForm):
    """Only the CSRF token."""


def _page(form: TokenForm | None = None, secret: str | None = None, status: int = 200) -> tuple[str, int]:
    offered = api_tokens.offered_scopes(current_user)
    return render_template("account/tokens.html", form=form or TokenForm(), secret=secret, offered=offered,
                           tokens=api_tokens.open_tokens(g.tenant, current_user), parse_scopes=parse_scopes,
                           revoke=RevokeForm()), status


@bp.get("/tokens")
@people_with_tokens
def tokens() -> tuple[str, int]:
    return _page()


@bp.post("/tokens")
@people_with_tokens
def create_token() -> tuple[str, int]:
    form = TokenForm()
    if not form.validate_on_submit():
        return _page(form, status=400)
    scopes = frozenset(scope for scope in Scope if form[scope.value].data)
    try:
        created = api_tokens.create(tenant=g.tenant, actor=current_actor(), name=form.name.data, scopes=scopes,
                                    expires_in_days=int(form.expires_in_days.data))
    except ServiceError as error:
        target = {"name": form.name, "scopes": form.read, "expires_in_days": form.expires_in_days}.get(
            error.field or "")
        if target is not None:
            target.errors = [*target.errors, error.message]
        else:
            form.form_errors.append(error.message)
        return _page(form, status=error.status_code)
    return _page(secret=created.secret)


@bp.post("/tokens/<int:token_id>/revoke")
@people_with_tokens
def revoke_token(token_id: int) -> Response:
    if not RevokeForm().validate_on_submit():
        abort(400)
    try:
        row = api_tokens.revoke(tenant=g.tenant, actor=current_actor(), token_id=token_id)
    except NotFound:
        abort(404)
    except ServiceError as error:
        flash(error.message, "error")
    else:
        flash(f"Token “{row.name}” revoked: it no longer works.", "success")
    return redirect(url_for("account.tokens"), 303)
