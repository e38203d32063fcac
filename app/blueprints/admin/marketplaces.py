"""The tenant admin's marketplaces: the settings for Microsoft and STACKIT (and the URLs to register with them),
the plan mappings, the marketplace subscriptions and the operations log."""

from __future__ import annotations

from flask import Response, abort, flash, g, redirect, render_template, request, url_for

from app.blueprints.admin import bp
from app.blueprints.admin.marketplace_forms import (
    ExternalFilterForm,
    MappingChangeForm,
    MappingForm,
    MicrosoftForm,
    OperationFilterForm,
    RelinkForm,
    StackitForm,
)
from app.domain.marketplaces import Marketplace
from app.selectors import marketplaces as selectors
from app.services import marketplace_connections as service
from app.services import marketplace_mappings as mappings
from app.services.errors import NotFound, ServiceError
from app.web import htmx
from app.web.access import current_actor, tenant_admin_required


def _marketplace(value: str) -> Marketplace:
    try:
        return Marketplace(value)
    except ValueError:
        abort(404)


def _warning() -> str | None:
    return service.secret_expiry_warning(g.tenant)


@bp.get("/marketplaces/warning")
@tenant_admin_required
def marketplace_warning() -> str:
    """The secrets' expiry warning alone (empty when all is well): the admin's home loads it as a region."""
    return render_template("admin/marketplaces/_secret_warning.html", warning=_warning())


# --- settings -------------------------------------------------------------------------------------------------------


def _addresses() -> dict[str, str]:
    """The URLs the publisher registers with each marketplace, on the host this tenant is served on."""
    base = f"https://{request.host}"
    return {"microsoft_landing": f"{base}/marketplace/microsoft/landing",
            "microsoft_webhook": f"{base}/webhooks/microsoft/{g.tenant.slug}",
            "stackit_signup": f"{base}/marketplace/stackit/signup"}


def _settings_page(microsoft: MicrosoftForm | None = None, stackit: StackitForm | None = None,
                   status: int = 200) -> tuple[str, int]:
    current = selectors.connections(g.tenant)
    ms, st = current.get(Marketplace.MICROSOFT), current.get(Marketplace.STACKIT)
    if microsoft is None:
        data = ms.settings if ms else {}
        microsoft = MicrosoftForm(prefix="microsoft", formdata=None, data={
            "entra_tenant_id": data.get("entra_tenant_id", ""), "client_id": data.get("client_id", ""),
            "offer_ids": ", ".join(data.get("offer_ids") or [])})
    if stackit is None:
        stackit = StackitForm(prefix="stackit", formdata=None,
                              data={"project_id": (st.settings.get("project_id", "") if st else "")})
    return render_template("admin/marketplaces/settings.html", microsoft=ms, stackit=st, microsoft_form=microsoft,
                           stackit_form=stackit, urls=_addresses(), warning=_warning()), status


@bp.get("/marketplaces")
@tenant_admin_required
def marketplace_settings() -> tuple[str, int]:
    return _settings_page()


def _field_error(form: MicrosoftForm | StackitForm, error: ServiceError, default: str) -> None:
    target = form[error.field] if error.field and error.field in form else form[default]
    target.errors = [*target.errors, error.message]


@bp.post("/marketplaces/microsoft")
@tenant_admin_required
def save_microsoft_settings() -> Response | tuple[str, int]:
    form = MicrosoftForm(prefix="microsoft")
    if not form.validate_on_submit():
        return _settings_page(microsoft=form, status=400)
    try:
        saved = service.save_microsoft(
            tenant=g.tenant, actor=current_actor(), entra_tenant_id=form.entra_tenant_id.data or "",
            client_id=form.client_id.data or "", client_secret=form.client_secret.data or "",
            secret_expires_on=form.secret_expires_on.data, offer_ids=form.offer_ids.data or "")
    except ServiceError as error:
        _field_error(form, error, "entra_tenant_id")
        return _settings_page(microsoft=form, status=error.status_code)
    flash(f"The Microsoft settings are saved: purchases are resolved and activated with this app. The client secret "
          f"ends on {saved.secret_expires_at:%Y-%m-%d}.", "success")
    return redirect(url_for(".marketplace_settings"), 303)


@bp.post("/marketplaces/stackit")
@tenant_admin_required
def save_stackit_settings() -> Response | tuple[str, int]:
    form = StackitForm(prefix="stackit")
    if not form.validate_on_submit():
        return _settings_page(stackit=form, status=400)
    try:
        service.save_stackit(tenant=g.tenant, actor=current_actor(), project_id=form.project_id.data or "",
                             service_account_key=form.service_account_key.data or "")
    except ServiceError as error:
        _field_error(form, error, "project_id")
        return _settings_page(stackit=form, status=error.status_code)
    flash("The STACKIT settings are saved: sign-ups are resolved and approved in this project.", "success")
    return redirect(url_for(".marketplace_settings"), 303)


@bp.post("/marketplaces/<marketplace>/switch")
@tenant_admin_required
def switch_marketplace(marketplace: str) -> Response:
    chosen = _marketplace(marketplace)  # CSRFProtect has checked the form's token already
    enabled = request.form.get("enabled") == "on"
    try:
        service.switch(tenant=g.tenant, actor=current_actor(), marketplace=chosen, enabled=enabled)
    except ServiceError as error:
        flash(error.message, "error")
    else:
        flash(f"The {chosen.label} connection is switched on: its purchases, webhooks and polls are served again."
              if enabled else f"The {chosen.label} connection is switched off: its purchases, webhooks and polls are "
              "refused until you switch it on.", "success" if enabled else "info")
    return redirect(url_for(".marketplace_settings"), 303)


@bp.post("/marketplaces/<marketplace>/disconnect")
@tenant_admin_required
def disconnect_marketplace(marketplace: str) -> Response:
    chosen = _marketplace(marketplace)  # CSRFProtect has checked the form's token already
    try:
        service.disconnect(tenant=g.tenant, actor=current_actor(), marketplace=chosen)
    except ServiceError as error:
        flash(error.message, "error")
    else:
        flash(f"The {chosen.label} settings are removed: the sandbox marketplace serves this portal again.", "info")
    return redirect(url_for(".marketplace_settings"), 303)


# --- plan mappings --------------------------------------------------------------------------------------------------


def _plan_choices() -> list[tuple[str, str]]:
    return [("", "Choose a plan"), *((str(p.id), p.label) for p in selectors.mappable_plans(g.tenant))]


def _mappings_page(form: MappingForm | None = None, problem: str | None = None, status: int = 200
                   ) -> tuple[str, int]:
    choices = _plan_choices()
    if form is None:
        form = MappingForm(formdata=None)
    form.plan_id.choices = choices
    change = MappingChangeForm(formdata=None)
    change.plan_id.choices = choices
    return render_template("admin/marketplaces/mappings.html", form=form, change_form=change, problem=problem,
                           mappings=selectors.mappings(g.tenant), warning=_warning()), status


@bp.route("/marketplaces/mappings", methods=["GET", "POST"])
@tenant_admin_required
def marketplace_mappings() -> Response | tuple[str, int]:
    if request.method == "GET":
        return _mappings_page()
    form = MappingForm()
    form.plan_id.choices = _plan_choices()
    form.plan_id.validate_choice = False  # a plan retired meanwhile is refused by the service, with its name
    if not form.validate_on_submit():
        return _mappings_page(form, status=400)
    try:
        mapping = mappings.add_mapping(tenant=g.tenant, actor=current_actor(), marketplace=form.marketplace.data,
                                      offer_id=form.offer_id.data or "", external_plan_id=form.external_plan_id.data
                                      or "", plan_id=form.plan_id.data or "")
    except ServiceError as error:
        if error.field and error.field in form:
            form[error.field].errors = [*form[error.field].errors, error.message]
            return _mappings_page(form, status=error.status_code)
        return _mappings_page(form, problem=error.message, status=error.status_code)
    flash(f"{mapping.marketplace.label} plan {mapping.external_plan_id} of {mapping.offer_id} now orders "
          f"{mapping.plan.name}.", "success")
    return redirect(url_for(".marketplace_mappings"), 303)


@bp.post("/marketplaces/mappings/<int:mapping_id>")
@tenant_admin_required
def change_marketplace_mapping(mapping_id: int) -> Response | tuple[str, int]:
    form = MappingChangeForm()
    form.plan_id.choices = _plan_choices()
    form.plan_id.validate_choice = False
    if not form.validate_on_submit():
        return _mappings_page(problem="Choose a plan.", status=400)
    try:
        mapping = mappings.change_mapping(tenant=g.tenant, actor=current_actor(), mapping_id=mapping_id,
                                         plan_id=form.plan_id.data or "")
    except ServiceError as error:
        return _mappings_page(problem=error.message, status=error.status_code)
    flash(f"{mapping.marketplace.label} plan {mapping.external_plan_id} of {mapping.offer_id} now orders "
          f"{mapping.plan.name} for purchases from now on; subscriptions set up already keep their plan.", "success")
    return redirect(url_for(".marketplace_mappings"), 303)


@bp.post("/marketplaces/mappings/<int:mapping_id>/remove")
@tenant_admin_required
def remove_marketplace_mapping(mapping_id: int) -> Response:
    try:  # CSRFProtect has checked the form's token already
        mappings.remove_mapping(tenant=g.tenant, actor=current_actor(), mapping_id=mapping_id)
    except ServiceError as error:
        flash(error.message, "error")
    else:
        flash("The mapping is removed: new purchases of that plan cannot be set up until it is mapped again. "
              "Subscriptions set up already run on.", "info")
    return redirect(url_for(".marketplace_mappings"), 303)


# --- marketplace subscriptions and the operations log ---------------------------------------------------------------


@bp.get("/marketplaces/subscriptions")
@tenant_admin_required
def marketplace_subscriptions() -> str:
    form = ExternalFilterForm(request.args)
    marketplace, state = form.chosen()
    page = request.args.get("page", 1, type=int) or 1
    return htmx.render("admin/marketplaces/subscriptions.html", "admin/marketplaces/_subscription_results.html",
                       form=form, params=form.params(), warning=_warning(),
                       results=selectors.external_subscriptions(g.tenant, marketplace=marketplace, state=state,
                                                                page=page))


def purchase_page(purchase_id: int, relink: RelinkForm | None = None, problem: str | None = None,
                 status: int = 200) -> tuple[str, int]:
    ext = selectors.external_subscription(g.tenant, purchase_id)
    if ext is None:
        raise NotFound("There is no such marketplace subscription.")
    replaced_by, replaced = selectors.neighbours(g.tenant, ext)
    can_link = ext.linkable
    return render_template(
        "admin/marketplaces/subscription.html", ext=ext, replaced_by=replaced_by, replaced=replaced,
        operations=selectors.operations(g.tenant, marketplace=ext.marketplace, external_id=ext.external_id,
                                        per_page=50),
        can_link=can_link, relink_form=relink or RelinkForm(formdata=None),
        choices=selectors.relink_choices(g.tenant, ext) if can_link else [], problem=problem,
        warning=_warning()), status


@bp.get("/marketplaces/subscriptions/<int:purchase_id>")
@tenant_admin_required
def marketplace_subscription(purchase_id: int) -> tuple[str, int]:
    try:
        return purchase_page(purchase_id)
    except NotFound:
        abort(404)


@bp.get("/marketplaces/operations")
@tenant_admin_required
def marketplace_operations() -> str:
    form = OperationFilterForm(request.args)
    marketplace, ok = form.chosen()
    page = request.args.get("page", 1, type=int) or 1
    return htmx.render("admin/marketplaces/operations.html", "admin/marketplaces/_operation_results.html",
                       form=form, params=form.params(), warning=_warning(),
                       results=selectors.operations(g.tenant, marketplace=marketplace, ok=ok, page=page))
