"""The catalogue's lifecycle in the admin area: each action on a plan or a product shows what it would do first
(a preview, no writes), then applies it on confirmation; replace and retire run as operations whose progress
and per-subscription outcomes have pages of their own."""

from __future__ import annotations

from flask import Response, abort, flash, g, redirect, render_template, request, url_for
from flask_wtf import FlaskForm

from app.blueprints.admin import bp
from app.clock import now
from app.domain.catalogue import CatalogueState
from app.domain.plan_lifecycle import CatalogueAction, allowed_actions
from app.models import Plan, Product
from app.selectors import catalogue_operations as selectors
from app.services import catalogue_lifecycle as service
from app.services.errors import InvalidInput, ServiceError
from app.web.access import current_actor, tenant_admin_required
from app.web.inputs import MAX_ID

A = CatalogueAction
PLAN_ACTIONS = {A.PUBLISH.value: A.PUBLISH, A.DEPRECATE.value: A.DEPRECATE, A.SET_TARGET.value: A.SET_TARGET,
                A.CLEAR_TARGET.value: A.CLEAR_TARGET, A.REPLACE.value: A.REPLACE, A.RETIRE.value: A.RETIRE}
NEXT_VERSION = "next_version"
PRODUCT_ACTIONS = ("publish", NEXT_VERSION, "supersede", "replace", "retire")
NEEDS_TARGET = {"set_target", "replace", "supersede"}  # a target for each plan is required
MAY_TARGET = {"deprecate"}  # optional


@bp.app_template_global()
def plan_lifecycle_actions(plan: Plan) -> list[str]:
    """The lifecycle links of a plan on the catalogue page: what the transition table allows from its state."""
    allowed = allowed_actions(plan.state)
    return [name for name, action in PLAN_ACTIONS.items() if action in allowed
            and (action is not A.CLEAR_TARGET or plan.migration_target_id is not None)]


@bp.app_template_global()
def product_lifecycle_actions(product: Product) -> list[str]:
    """The lifecycle links of a product: its allowed actions, and its next version once it has been published."""
    allowed = {action.value for action in allowed_actions(product.state)}
    extra = [NEXT_VERSION] if product.state in (CatalogueState.PUBLISHED, CatalogueState.DEPRECATED) else []
    return [name for name in PRODUCT_ACTIONS if name in allowed] + extra


class ConfirmForm(FlaskForm):
    """The confirmation: only its CSRF token; the targets are read per plan (`target-<plan id>`)."""


def _targets(plans: list[Plan], required: bool) -> tuple[dict[int, int], str | None]:
    """The chosen target of each plan from the request, and what is wrong with them, if anything."""
    mapping: dict[int, int] = {}
    for plan in plans:
        raw = (request.values.get(f"target-{plan.id}") or "").strip()
        if not raw:
            continue
        if not raw.isdigit() or not 0 < int(raw) <= MAX_ID:
            return {}, "Choose a plan from the list for every plan."
        mapping[plan.id] = int(raw)
    if required and request.method == "POST" and len(mapping) < len(plans):
        return mapping, "Choose a target for every plan."
    return mapping, None


def _page(*, action: str, plans: list[Plan], product: Product | None) -> tuple[str, int] | Response:
    form = ConfirmForm()
    required = action in NEEDS_TARGET
    mapping, problem = _targets(plans, required) if required or action in MAY_TARGET else ({}, None)
    status = 400 if problem else 200
    if request.method == "POST" and problem is None:
        if not form.validate_on_submit():
            problem, status = "The form expired. Please confirm again.", 400
        else:
            try:
                return _apply(action, plans, product, mapping)
            except ServiceError as error:
                problem, status = error.message, error.status_code if error.status_code != 404 else 400
    preview = None
    if action == "replace" and len(mapping) == len(plans):
        try:
            service.check_replace(g.tenant, mapping)
            preview = selectors.preview_replace(g.tenant, mapping, at=now())
        except InvalidInput as error:
            problem = problem or error.message
    elif action == "retire":
        preview = selectors.preview_retire(g.tenant, [plan.id for plan in plans])
    return render_template(
        "admin/catalogue_operation_preview.html", action=action, plans=plans, product=product, form=form,
        mapping=mapping, preview=preview, problem=problem, choices=selectors.target_choices(g.tenant),
        needs_target=required, may_target=action in MAY_TARGET, subscribers=selectors.open_counts(g.tenant, plans),
    ), status


def _apply(action: str, plans: list[Plan], product: Product | None, mapping: dict[int, int]) -> Response:
    tenant, actor = g.tenant, current_actor()
    if action in ("replace", "retire"):
        if action == "replace":
            operation = service.start_replace(tenant=tenant, actor=actor, mapping=mapping,
                                              product_id=product.id if product else None)
        else:
            operation = service.start_retire(tenant=tenant, actor=actor, plan_ids=[plan.id for plan in plans],
                                             product_id=product.id if product else None)
        flash(f"{operation.kind.label} started for {operation.total} subscriptions.", "success")
        return redirect(url_for("admin.catalogue_operation", operation_id=operation.id))
    if product is not None:
        if action == "publish":
            service.publish_product(tenant=tenant, actor=actor, product_id=product.id)
        elif action == NEXT_VERSION:
            copy = service.next_version(tenant=tenant, actor=actor, product_id=product.id)
            flash(f"Version {copy.version} of {copy.name} was made as a draft: edit it and publish it, then "
                  f"supersede or replace this version with it.", "success")
            return redirect(url_for("admin.index"))
        else:
            service.supersede(tenant=tenant, actor=actor, product_id=product.id, mapping=mapping)
        flash(f"{product.name}: {action.replace('_', ' ')} done.", "success")
        return redirect(url_for("admin.index"))
    plan = plans[0]
    if action == "publish":
        service.publish_plan(tenant=tenant, actor=actor, plan_id=plan.id)
    elif action == "deprecate":
        service.deprecate_plan(tenant=tenant, actor=actor, plan_id=plan.id, target_id=mapping.get(plan.id))
    else:
        service.set_target(tenant=tenant, actor=actor, plan_id=plan.id, target_id=mapping.get(plan.id),
                           deprecate=request.form.get("deprecate") == "y")
    flash(f"{plan.name}: {PLAN_ACTIONS[action].label.lower()} done.", "success")
    return redirect(url_for("admin.index"))


@bp.route("/catalogue/plans/<int:plan_id>/<action>", methods=["GET", "POST"])
@tenant_admin_required
def plan_lifecycle(plan_id: int, action: str) -> tuple[str, int] | Response:
    plan = selectors.plans(g.tenant, [plan_id]).get(plan_id)
    if plan is None or action not in PLAN_ACTIONS:
        abort(404)
    return _page(action=action, plans=[plan], product=None)


@bp.route("/catalogue/products/<int:product_id>/<action>", methods=["GET", "POST"])
@tenant_admin_required
def product_lifecycle(product_id: int, action: str) -> tuple[str, int] | Response:
    product = selectors.product(g.tenant, product_id)
    if product is None or action not in PRODUCT_ACTIONS:
        abort(404)
    plans = [plan for plan in product.plans if plan.state in (CatalogueState.PUBLISHED, CatalogueState.DEPRECATED)]
    if action == "publish":
        plans = list(product.plans)
    return _page(action=action, plans=plans, product=product)


@bp.get("/catalogue/operations")
@tenant_admin_required
def catalogue_operations() -> str:
    page = request.args.get("page", 1, type=int) or 1
    return render_template("admin/catalogue_operations.html", results=selectors.operations_page(g.tenant, page))


@bp.get("/catalogue/operations/<int:operation_id>")
@tenant_admin_required
def catalogue_operation(operation_id: int) -> str:
    operation = selectors.operation(g.tenant, operation_id)
    if operation is None:
        abort(404)
    page = request.args.get("page", 1, type=int) or 1
    return render_template("admin/catalogue_operation.html", operation=operation, form=ConfirmForm(),
                           outcomes=selectors.outcomes_page(g.tenant, operation_id, page),
                           plans=selectors.plans(g.tenant, [*operation.plan_ids, *operation.mapping.values()]))


@bp.get("/catalogue/operations/<int:operation_id>/progress")
@tenant_admin_required
def catalogue_operation_progress(operation_id: int) -> str:
    operation = selectors.operation(g.tenant, operation_id)
    if operation is None:
        abort(404)
    return render_template("admin/_catalogue_operation_progress.html", operation=operation, form=ConfirmForm())


@bp.post("/catalogue/operations/<int:operation_id>/pause")
@tenant_admin_required
def catalogue_operation_pause(operation_id: int) -> Response:
    return _command(operation_id, "pause")


@bp.post("/catalogue/operations/<int:operation_id>/resume")
@tenant_admin_required
def catalogue_operation_resume(operation_id: int) -> Response:
    return _command(operation_id, "resume")


def _command(operation_id: int, command: str) -> Response:
    if not ConfirmForm().validate_on_submit():
        flash("The form expired. Please try again.", "error")
    else:
        try:
            call = service.pause if command == "pause" else service.resume
            call(tenant=g.tenant, actor=current_actor(), operation_id=operation_id)
            flash("Paused: it stops after the chunk under way." if command == "pause" else "Resumed.", "success")
        except ServiceError as error:
            if error.status_code == 404:
                abort(404)
            flash(error.message, "error")
    return redirect(url_for("admin.catalogue_operation", operation_id=operation_id))
