"""The tenant admin's billing settings: seller, invoice numbering, tax rates per country, dunning schedule."""

from __future__ import annotations

from itertools import zip_longest

from flask import Response, flash, g, redirect, render_template, request, url_for

from app.blueprints.admin import bp
from app.blueprints.admin.billing_forms import BillingSettingsForm
from app.selectors.billing import settings_for
from app.services import billing_settings as service
from app.services.errors import ServiceError
from app.web.access import current_actor, tenant_admin_required

EMPTY_TAX_ROWS = 3
MAX_TAX_ROWS = 300


def _rate_text(points: int) -> str:
    return f"{points / 100:.2f}".rstrip("0").rstrip(".")


def _page(form: BillingSettingsForm | None = None, rates: list[tuple[str, str]] | None = None,
          problem: str | None = None, status: int = 200) -> tuple[str, int]:
    current = settings_for(g.tenant)
    if form is None:
        form = BillingSettingsForm(formdata=None, data={
            "seller_name": current.seller_name, "seller_address": current.seller_address,
            "seller_vat_id": current.seller_vat_id, "seller_country": current.seller_country,
            "invoice_prefix": current.invoice_prefix, "reverse_charge": current.reverse_charge,
            "payment_terms_days": str(current.payment_terms_days),
            "retry_days": ", ".join(str(day) for day in current.retry_days or []),
            "suspend_after_days": str(current.suspend_after_days), "grace_days": str(current.grace_days)})
    if rates is None:
        rates = [(country, _rate_text(points)) for country, points in sorted((current.tax_rates or {}).items())]
    rows = [*rates, *[("", "")] * EMPTY_TAX_ROWS]
    return render_template("admin/billing_settings.html", form=form, tax_rows=rows, problem=problem,
                           settings=current), status


@bp.route("/billing", methods=["GET", "POST"])
@tenant_admin_required
def billing_settings() -> Response | tuple[str, int]:
    if request.method == "GET":
        return _page()
    form = BillingSettingsForm()
    countries = request.form.getlist("tax_country")[:MAX_TAX_ROWS]
    percents = request.form.getlist("tax_rate")[:MAX_TAX_ROWS]
    rates = [(c.strip(), p.strip()) for c, p in zip_longest(countries, percents, fillvalue="")
             if c.strip() or p.strip()]
    if not form.validate_on_submit():
        return _page(form, rates, status=400)
    try:
        tax_rates: dict[str, str] = {}
        for country, percent in rates:
            if not country or not percent:
                raise ServiceError("Give each tax rate a country code and a percent.", field="tax_rates")
            if country.upper() in {key.upper() for key in tax_rates}:
                raise ServiceError(f"{country.upper()} is listed twice.", field="tax_rates")
            tax_rates[country] = percent
        service.update(
            tenant=g.tenant, actor=current_actor(), seller_name=form.seller_name.data or "",
            seller_address=form.seller_address.data or "", seller_vat_id=form.seller_vat_id.data or "",
            seller_country=form.seller_country.data or "", invoice_prefix=form.invoice_prefix.data or "",
            tax_rates=tax_rates, reverse_charge=bool(form.reverse_charge.data),
            payment_terms_days=form.payment_terms_days.data or "", retry_days=form.retry_days.data or "",
            suspend_after_days=form.suspend_after_days.data or "", grace_days=form.grace_days.data or "")
    except ServiceError as error:
        target = form[error.field] if error.field and error.field in form else None
        if target is not None:
            target.errors = [*target.errors, error.message]
            return _page(form, rates, status=error.status_code)
        return _page(form, rates, problem=error.message, status=error.status_code)
    flash("The billing settings are saved. They apply to invoices finalized and payments tried from now on.",
          "success")
    return redirect(url_for(".billing_settings"), 303)
