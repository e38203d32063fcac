"""The tenant admin imports a plan's prices from its cloud: a markup, a preview, then apply (and confirm)."""

from __future__ import annotations

from flask import Response, abort, flash, g, redirect, render_template, url_for

from app.blueprints.admin import bp
from app.blueprints.admin.catalogue import attach
from app.blueprints.admin.forms import CloudPriceApplyForm, CloudPriceImportForm
from app.domain.plan_offers import SERVER_TYPE_KEY, enum_of
from app.models import Plan
from app.selectors import catalogue as selectors
from app.services import cloud_prices as service
from app.services.catalogue_editing import ConfirmPriceChange
from app.services.errors import ServiceError
from app.web.access import current_actor, tenant_admin_required

DEFAULT_MARKUP = "20"


def _choose(form: CloudPriceImportForm, plan: Plan) -> None:
    types = enum_of(plan.service_type.config_schema, SERVER_TYPE_KEY) or []
    form.server_types.choices = [(t, t) for t in types]


def _markup(plan: Plan) -> str:
    """The markup of the last import, as the admin would type it."""
    markup = next((p.markup_bp for p in plan.prices if p.markup_bp is not None), None)
    if markup is None:
        return DEFAULT_MARKUP
    return f"{markup // 100}" + (f".{markup % 100:02d}".rstrip("0") if markup % 100 else "")


def _page(form: CloudPriceImportForm, plan: Plan, preview: service.ImportPreview | None, status: int,
          apply_form: CloudPriceApplyForm | None = None) -> tuple[str, int]:
    if preview is not None and apply_form is None:
        apply_form = CloudPriceApplyForm(formdata=None, markup=form.markup.data, fingerprint=preview.fingerprint)
    return render_template("admin/catalogue/cloud_prices.html", form=form, plan=plan, preview=preview,
                           apply_form=apply_form), status


def _preview(form: CloudPriceImportForm, plan: Plan) -> tuple[service.ImportPreview | None, int]:
    try:
        markup = service.markup_from_percent(form.markup.data or "")
        return service.preview_import(tenant=g.tenant, actor=current_actor(), plan_id=plan.id, markup_bp=markup,
                                      server_types=form.server_types.data or ()), 200
    except ServiceError as error:
        attach(form, error)
        return None, 503 if isinstance(error, service.CloudUnavailable) else 400


@bp.route("/catalogue/plans/<int:plan_id>/cloud-prices", methods=["GET", "POST"])
@tenant_admin_required
def cloud_prices(plan_id: int) -> tuple[str, int]:
    plan = selectors.plan_for_admin(g.tenant, plan_id) or abort(404)
    form = CloudPriceImportForm()
    _choose(form, plan)
    if not form.is_submitted():
        form.markup.data = _markup(plan)
        form.server_types.data = [p.server_type for p in plan.prices]
        return _page(form, plan, None, 200)
    if not form.validate():
        return _page(form, plan, None, 400)
    preview, status = _preview(form, plan)
    return _page(form, plan, preview, status)


@bp.post("/catalogue/plans/<int:plan_id>/cloud-prices/apply")
@tenant_admin_required
def apply_cloud_prices(plan_id: int) -> Response | tuple[str, int]:
    plan = selectors.plan_for_admin(g.tenant, plan_id) or abort(404)
    form = CloudPriceApplyForm()
    _choose(form, plan)
    if not form.validate():
        return _page(form, plan, None, 400)
    try:
        service.apply_import(tenant=g.tenant, actor=current_actor(), plan_id=plan.id,
                             markup_bp=service.markup_from_percent(form.markup.data or ""),
                             server_types=form.server_types.data or (), fingerprint=form.fingerprint.data or "",
                             confirmed=form.confirm_price_change.data)
    except ConfirmPriceChange as error:
        form.confirm_price_change.errors = [error.message]
    except ServiceError as error:
        attach(form, error)
    else:
        flash("The cloud's prices are imported.", "success")
        return redirect(url_for(".edit_plan", plan_id=plan.id), 303)
    preview, status = _preview(form, selectors.plan_for_admin(g.tenant, plan_id) or plan)  # as it is now
    apply_form = form if preview is not None and preview.fingerprint == form.fingerprint.data else None
    return _page(form, plan, preview, 400 if status == 200 else status, apply_form)
