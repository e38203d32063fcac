"""The customer's SSH keys: list, add, rename, preselect for orders, remove (app/services/ssh_keys.py)."""

from __future__ import annotations

from collections.abc import Callable

from flask import Response, abort, flash, g, redirect, render_template, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import BooleanField, StringField, TextAreaField
from wtforms.validators import InputRequired, Length, Optional

from app.blueprints.account import bp
from app.domain.ssh_keys import MAX_KEY_LENGTH, MAX_NAME_LENGTH
from app.selectors.ssh_keys import customer_keys
from app.services import ssh_keys
from app.services.errors import NotFound, ServiceError
from app.web import htmx
from app.web.access import current_actor, customer_required


class KeyForm(FlaskForm):
    public_key = TextAreaField("Public key", validators=[InputRequired("Paste your public key."),
                                                         Length(max=MAX_KEY_LENGTH + 100)],
                               description="The contents of your .pub file, e.g. ~/.ssh/id_ed25519.pub. "
                                           "Never paste the private key.",
                               render_kw={"rows": 4, "spellcheck": "false", "autocomplete": "off"})
    name = StringField("Name", validators=[Optional(), Length(max=MAX_NAME_LENGTH)],
                       description="Optional: the key's comment is used otherwise.")
    default = BooleanField("Preselect this key when I order a server", default=True)


class RenameForm(FlaskForm):
    name = StringField("Name", validators=[InputRequired("Give the key a name."), Length(max=MAX_NAME_LENGTH)])


class DefaultForm(FlaskForm):
    default = BooleanField()


class RemoveForm(FlaskForm):
    """Only the CSRF token."""


def _page(form: KeyForm | None = None, status: int = 200) -> tuple[str, int]:
    return render_template("account/keys.html", form=form or KeyForm(), rename=RenameForm(),
                           keys=customer_keys(g.tenant, current_user)), status


def _back() -> Response:
    target = url_for("account.keys")
    return htmx.redirect(target) if htmx.wants_fragment() else redirect(target, 303)


@bp.get("/keys")
@customer_required
def keys() -> tuple[str, int]:
    return _page()


@bp.post("/keys")
@customer_required
def add_key() -> tuple[str, int] | Response:
    form = KeyForm()
    if not form.validate_on_submit():
        return _page(form, 400)
    try:
        key = ssh_keys.add_key(tenant=g.tenant, actor=current_actor(), public_key=form.public_key.data,
                               name=form.name.data or "", default=form.default.data)
    except ServiceError as error:
        target = form[error.field] if error.field in ("public_key", "name") else None
        if target is not None:
            target.errors = [*target.errors, error.message]
        else:
            form.form_errors.append(error.message)
        return _page(form, error.status_code)
    flash(f"Key “{key.name}” added ({key.fingerprint}).", "success")
    return _back()


@bp.post("/keys/<int:key_id>/rename")
@customer_required
def rename_key(key_id: int) -> Response:
    form = RenameForm()
    if not form.validate_on_submit():
        flash(" ".join(form.name.errors) or "The form is out of date. Please try again.", "error")
        return _back()
    return _act(lambda: ssh_keys.rename_key(tenant=g.tenant, actor=current_actor(), key_id=key_id,
                                            name=form.name.data), "Key renamed.")


@bp.post("/keys/<int:key_id>/default")
@customer_required
def default_key(key_id: int) -> Response:
    form = DefaultForm()
    if not form.validate_on_submit():
        abort(400)
    done = ("The key is preselected for new orders." if form.default.data
            else "The key is no longer preselected for new orders.")
    return _act(lambda: ssh_keys.set_default(tenant=g.tenant, actor=current_actor(), key_id=key_id,
                                             default=form.default.data), done)


@bp.post("/keys/<int:key_id>/remove")
@customer_required
def remove_key(key_id: int) -> Response:
    if not RemoveForm().validate_on_submit():
        abort(400)
    try:
        name = ssh_keys.remove_key(tenant=g.tenant, actor=current_actor(), key_id=key_id)
    except NotFound:
        abort(404)
    except ServiceError as error:
        flash(error.message, "error")
        return _back()
    flash(f"Key “{name}” removed. Servers made with it keep it until they are deleted.", "success")
    return _back()


def _act(change: Callable[[], object], done: str) -> Response:
    try:
        change()
    except NotFound:
        abort(404)
    except ServiceError as error:
        flash(error.message, "error")
    else:
        flash(done, "success")
    return _back()
