"""The tenant admin edits the catalogue: service types, products and plans, and publishes drafts (through the
catalogue lifecycle, as the lifecycle actions do)."""

from __future__ import annotations

import json

from flask import Response, abort, flash, g, redirect, render_template, request, url_for
from wtforms import Field

from app.blueprints.admin import bp
from app.blueprints.admin.forms import PlanForm, ProductForm, ServiceTypeForm
from app.domain.catalogue import ChangeRule, Interval, Provider
from app.domain.plan_offers import OfferSyntaxError, format_locations, format_prices, parse_locations, parse_prices
from app.models import Plan
from app.selectors import catalogue as selectors
from app.services import catalogue_editing as editing
from app.services import catalogue_lifecycle as lifecycle
from app.services.errors import ServiceError
from app.web.access import current_actor, tenant_admin_required


def attach(form: object, error: ServiceError) -> None:
    """The service's message on its field, or on the form when it names none the form has."""
    target: Field | None = getattr(form, error.field, None) if error.field else None
    if isinstance(target, Field):
        target.errors = [*target.errors, error.message]
    else:
        form.form_errors = [*getattr(form, "form_errors", []), error.message]  # type: ignore[attr-defined]


# Service types ---------------------------------------------------------------------------------------------

def _service_type_input(form: ServiceTypeForm) -> editing.ServiceTypeInput:
    return editing.ServiceTypeInput(slug=form.slug.data or "", name=form.name.data or "",
                                    provider=Provider(form.provider.data), config_schema=form.config_schema.data or "",
                                    cloud_init_template=form.cloud_init_template.data or "")


@bp.route("/catalogue/service-types/new", methods=["GET", "POST"])
@tenant_admin_required
def new_service_type() -> Response | tuple[str, int]:
    form = ServiceTypeForm()
    if form.validate_on_submit():
        try:
            row = editing.create_service_type(tenant=g.tenant, actor=current_actor(), values=_service_type_input(form))
        except ServiceError as error:
            attach(form, error)
        else:
            flash(f"The service type {row.name} is created.", "success")
            return redirect(url_for(".edit_service_type", service_type_id=row.id), 303)
    return render_template("admin/catalogue/service_type.html", form=form, service_type=None,
                           changes=[]), 400 if form.is_submitted() else 200


@bp.route("/catalogue/service-types/<int:service_type_id>", methods=["GET", "POST"])
@tenant_admin_required
def edit_service_type(service_type_id: int) -> Response | tuple[str, int]:
    row = selectors.service_type_for_admin(g.tenant, service_type_id) or abort(404)
    form = ServiceTypeForm()
    if not form.is_submitted():
        form = ServiceTypeForm(obj=row, formdata=None)
        form.provider.data = row.provider.value
        form.config_schema.data = json_text(row.config_schema)
    elif form.validate():
        try:
            editing.update_service_type(tenant=g.tenant, actor=current_actor(), service_type_id=row.id,
                                        values=_service_type_input(form))
        except ServiceError as error:
            attach(form, error)
        else:
            flash("The service type is saved.", "success")
            return redirect(url_for(".edit_service_type", service_type_id=row.id), 303)
    changes = selectors.catalogue_changes(g.tenant, "service_type", row.id)
    return render_template("admin/catalogue/service_type.html", form=form, service_type=row,
                           changes=changes), 400 if form.is_submitted() else 200


def json_text(value: object) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


# Products --------------------------------------------------------------------------------------------------

def _product_input(form: ProductForm) -> editing.ProductInput:
    return editing.ProductInput(slug=form.slug.data or "", name=form.name.data or "",
                                description=form.description.data or "", version=form.version.data or 1)


@bp.route("/catalogue/products/new", methods=["GET", "POST"])
@tenant_admin_required
def new_product() -> Response | tuple[str, int]:
    form = ProductForm()
    if form.validate_on_submit():
        try:
            row = editing.create_product(tenant=g.tenant, actor=current_actor(), values=_product_input(form))
        except ServiceError as error:
            attach(form, error)
        else:
            flash(f"The product {row.name} is created as a draft. Add its plans, then publish it.", "success")
            return redirect(url_for(".edit_product", product_id=row.id), 303)
    return render_template("admin/catalogue/product.html", form=form, product=None, changes=[],
                           service_types=[]), 400 if form.is_submitted() else 200


@bp.route("/catalogue/products/<int:product_id>", methods=["GET", "POST"])
@tenant_admin_required
def edit_product(product_id: int) -> Response | tuple[str, int]:
    row = selectors.product_for_admin(g.tenant, product_id) or abort(404)
    form = ProductForm() if request.method == "POST" else ProductForm(obj=row, formdata=None)
    if form.validate_on_submit():
        try:
            editing.update_product(tenant=g.tenant, actor=current_actor(), product_id=row.id,
                                   values=_product_input(form))
        except ServiceError as error:
            attach(form, error)
        else:
            flash("The product is saved.", "success")
            return redirect(url_for(".edit_product", product_id=row.id), 303)
    return render_template("admin/catalogue/product.html", form=form, product=row,
                           changes=selectors.catalogue_changes(g.tenant, "product", row.id),
                           service_types=selectors.service_types(g.tenant)), 400 if form.is_submitted() else 200


@bp.post("/catalogue/products/<int:product_id>/publish")
@tenant_admin_required
def publish_product(product_id: int) -> Response:
    try:  # CSRFProtect has checked the form's token already
        operation = lifecycle.publish_product(tenant=g.tenant, actor=current_actor(), product_id=product_id)
    except ServiceError as error:
        if error.status_code == 404:
            abort(404)
        flash(error.message, "error")
        return redirect(url_for(".edit_product", product_id=product_id), 303)
    drafts = len(operation.plan_ids)
    flash(f"The product is published, with {drafts} draft plan{'' if drafts == 1 else 's'}: customers can order "
          "its published plans.", "success")
    return redirect(url_for(".edit_product", product_id=product_id), 303)


# Plans -----------------------------------------------------------------------------------------------------

class _Unreadable(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field, self.message = field, message


def _plan_input(form: PlanForm) -> editing.PlanInput:
    try:
        prices = parse_prices(form.prices.data or "", form.default_server_type.data or "")
    except OfferSyntaxError as error:
        raise _Unreadable("prices", str(error)) from None
    try:
        locations = parse_locations(form.locations.data or "", form.default_location.data or "")
    except OfferSyntaxError as error:
        raise _Unreadable("locations", str(error)) from None
    images = tuple(image.strip() for image in (form.images.data or "").split(",") if image.strip())
    return editing.PlanInput(
        slug=form.slug.data or "", name=form.name.data or "", description=form.description.data or "",
        interval=Interval(form.interval.data), price_minor=form.price_minor.data or 0,
        quantity_allowed=form.quantity_allowed.data, max_quantity=form.max_quantity.data,
        allow_customer_location_selection=form.allow_customer_location_selection.data,
        cancellation_rule=ChangeRule(form.cancellation_rule.data), downgrade_rule=ChangeRule(form.downgrade_rule.data),
        free_plan_limit=form.free_plan_limit.data, price_notice_days=form.price_notice_days.data or 0,
        prices=prices, locations=locations, images=images, default_image=form.default_image.data or "",
        features=tuple((form.features.data or "").splitlines()),
    )


def _fill(form: PlanForm, plan: Plan) -> None:
    """The form from the plan as it is."""
    form.process(obj=plan)
    form.interval.data, form.cancellation_rule.data = plan.interval.value, plan.cancellation_rule.value
    form.downgrade_rule.data = plan.downgrade_rule.value
    offers = plan.offers
    form.prices.data = format_prices(offers.prices)
    form.default_server_type.data = next((p.server_type for p in offers.prices if p.is_default), "")
    form.locations.data = format_locations(offers.locations)
    form.default_location.data = next((loc.location for loc in offers.locations if loc.is_default), "")
    form.images.data = ", ".join(offers.images)
    form.default_image.data = (plan.config_defaults or {}).get("image", "") if offers.images else ""
    form.features.data = "\n".join(plan.features or [])
    form.confirm_price_change.data = False


def _plan_page(form: PlanForm, plan: Plan | None, product_id: int, service_type_id: int | None, status: int,
               pending: list[editing.PendingPriceChange] | None = None) -> tuple[str, int]:
    service_type = plan.service_type if plan else selectors.service_type_for_admin(g.tenant, service_type_id or 0)
    return render_template(
        "admin/catalogue/plan.html", form=form, plan=plan, product_id=product_id, service_type=service_type,
        pending=pending or [], changes=selectors.catalogue_changes(g.tenant, "plan", plan.id) if plan else [],
        scheduled=selectors.scheduled_price_changes(g.tenant, plan.id) if plan else []), status


@bp.route("/catalogue/products/<int:product_id>/plans/new", methods=["GET", "POST"])
@tenant_admin_required
def new_plan(product_id: int) -> Response | tuple[str, int]:
    product = selectors.product_for_admin(g.tenant, product_id) or abort(404)
    service_type_id = request.args.get("service_type_id", type=int)
    service_type = selectors.service_type_for_admin(g.tenant, service_type_id or 0) or abort(404)
    form = PlanForm()
    if form.validate_on_submit():
        try:
            row = editing.create_plan(tenant=g.tenant, actor=current_actor(), product_id=product.id,
                                      service_type_id=service_type.id, values=_plan_input(form))
        except _Unreadable as error:
            getattr(form, error.field).errors.append(error.message)
        except ServiceError as error:
            attach(form, error)
        else:
            flash(f"The plan {row.name} is created as a draft. Publish it when it is ready.", "success")
            return redirect(url_for(".edit_plan", plan_id=row.id), 303)
    return _plan_page(form, None, product.id, service_type.id, 400 if form.is_submitted() else 200)


@bp.route("/catalogue/plans/<int:plan_id>", methods=["GET", "POST"])
@tenant_admin_required
def edit_plan(plan_id: int) -> Response | tuple[str, int]:
    plan = selectors.plan_for_admin(g.tenant, plan_id) or abort(404)
    form = PlanForm()
    if not form.is_submitted():
        _fill(form, plan)
        return _plan_page(form, plan, plan.product_id, plan.service_type_id, 200)
    pending = None
    if form.validate():
        try:
            editing.update_plan(tenant=g.tenant, actor=current_actor(), plan_id=plan.id, values=_plan_input(form),
                                confirmed=form.confirm_price_change.data)
        except _Unreadable as error:
            getattr(form, error.field).errors.append(error.message)
        except editing.ConfirmPriceChange as error:
            pending = error.changes
        except ServiceError as error:
            attach(form, error)
        else:
            flash("The plan is saved.", "success")
            return redirect(url_for(".edit_plan", plan_id=plan.id), 303)
    return _plan_page(form, selectors.plan_for_admin(g.tenant, plan_id), plan.product_id, plan.service_type_id,
                      400, pending)


@bp.post("/catalogue/plans/<int:plan_id>/publish")
@tenant_admin_required
def publish_plan(plan_id: int) -> Response:
    try:  # CSRFProtect has checked the form's token already
        lifecycle.publish_plan(tenant=g.tenant, actor=current_actor(), plan_id=plan_id)
    except ServiceError as error:
        if error.status_code == 404:
            abort(404)
        flash(error.message, "error")
        return redirect(url_for(".edit_plan", plan_id=plan_id), 303)
    flash("The plan is published: customers can order it.", "success")
    return redirect(url_for(".edit_plan", plan_id=plan_id), 303)
