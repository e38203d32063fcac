"""The tenant admin's emails: the sender they go out from, and the ones that could not be delivered."""

from __future__ import annotations

from flask import Response, abort, current_app, flash, g, redirect, render_template, request, url_for
from flask_wtf import FlaskForm

from app.blueprints.admin import bp
from app.blueprints.admin.forms import SenderForm
from app.selectors import emails as selectors
from app.services import email_settings, notifications
from app.services.errors import NotFound, ServiceError
from app.web.access import current_actor, tenant_admin_required


def _page(form: SenderForm | None = None, status: int = 200) -> tuple[str, int]:
    sender = selectors.sender_of(g.tenant)
    form = form or SenderForm(data={"name": sender.name or "", "address": sender.address or ""})
    page = request.args.get("page", 1, type=int) or 1
    return render_template("admin/emails.html", form=form, sender=sender, resend=FlaskForm(),
                           default_address=current_app.config["MAIL_DEFAULT_SENDER"],
                           failures=selectors.failed_emails(g.tenant, page=page)), status


@bp.get("/emails")
@tenant_admin_required
def emails() -> tuple[str, int]:
    return _page()


@bp.post("/emails/sender")
@tenant_admin_required
def set_sender() -> Response | tuple[str, int]:
    form = SenderForm()
    if not form.validate_on_submit():
        return _page(form, 400)
    try:
        email_settings.set_sender(tenant=g.tenant, actor=current_actor(), name=form.name.data or "",
                                  address=form.address.data or "")
    except ServiceError as error:
        target = form[error.field] if error.field in ("name", "address") else None
        if target is not None:
            target.errors = [*target.errors, error.message]
        else:
            form.form_errors.append(error.message)
        return _page(form, error.status_code)
    flash("The sender is saved. New emails go out from it.", "success")
    return redirect(url_for(".emails"), 303)


@bp.post("/emails/<int:email_id>/send-again")
@tenant_admin_required
def send_again(email_id: int) -> Response:
    try:  # CSRFProtect has checked the form's token already
        message = notifications.send_again(tenant=g.tenant, actor=current_actor(), message_id=email_id)
    except NotFound:
        abort(404)
    except ServiceError as error:
        flash(error.message, "error")
    else:
        flash(f"The email to {message.to_address} is queued again.", "success")
    return redirect(url_for(".emails"), 303)
