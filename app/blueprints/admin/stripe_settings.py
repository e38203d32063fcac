"""The tenant admin's Stripe keys (app/services/payment_settings.py) and the webhook address for Stripe."""

from __future__ import annotations

from flask import Response, flash, g, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from wtforms import PasswordField
from wtforms.validators import Length, Optional

from app.blueprints.admin import bp
from app.selectors.payment_settings import stripe_keys
from app.services import payment_settings as stripe_settings
from app.services.errors import ServiceError
from app.web.access import current_actor, tenant_admin_required


class StripeKeysForm(FlaskForm):
    secret_key = PasswordField("Secret key", validators=[Optional(), Length(max=255)],
                               description="From Stripe's dashboard, Developers → API keys (sk_live_… or a "
                                           "restricted rk_live_… key). Checked with Stripe, then stored encrypted.",
                               render_kw={"autocomplete": "off"})
    webhook_secret = PasswordField("Webhook signing secret", validators=[Optional(), Length(max=255)],
                                   description="whsec_…, shown by Stripe once you add the endpoint below.",
                                   render_kw={"autocomplete": "off"})


def _page(form: StripeKeysForm, status: int = 200) -> tuple[str, int]:
    webhook_url = f"https://{request.host}{url_for('webhooks.stripe', tenant_slug=g.tenant.slug)}"
    return render_template("admin/payment_settings.html", form=form, keys=stripe_keys(g.tenant),
                           webhook_url=webhook_url), status


@bp.route("/billing/stripe", methods=["GET", "POST"])
@tenant_admin_required
def payment_settings() -> Response | tuple[str, int]:
    form = StripeKeysForm()
    if request.method == "GET":
        return _page(form)
    if request.form.get("action") == "clear":  # CSRFProtect has checked the form's token already
        try:
            stripe_settings.clear_stripe_keys(tenant=g.tenant, actor=current_actor())
        except ServiceError as error:
            flash(error.message, "error")
        else:
            flash("The Stripe keys are removed: cards are saved and charged in the sandbox again.", "info")
        return redirect(url_for(".payment_settings"), 303)
    if not form.validate_on_submit():
        return _page(form, 400)
    try:
        stripe_settings.set_stripe_keys(tenant=g.tenant, actor=current_actor(), secret_key=form.secret_key.data or "",
                                        webhook_secret=form.webhook_secret.data or "")
    except ServiceError as error:
        target = form[error.field] if error.field in ("secret_key", "webhook_secret") else form.secret_key
        target.errors = [*target.errors, error.message]
        return _page(form, error.status_code)
    flash("The Stripe keys are saved. Customers' cards are saved and charged in this Stripe account.", "success")
    return redirect(url_for(".payment_settings"), 303)

