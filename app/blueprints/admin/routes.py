"""The tenant admin's area: the catalogue in every state, and the tenant's numbers."""

from __future__ import annotations

from flask import Response, abort, flash, g, redirect, render_template, url_for

from app.blueprints.admin import bp
from app.blueprints.admin.forms import CloudTokenForm
from app.domain.catalogue import Provider
from app.selectors.catalogue import catalogue_overview
from app.selectors.credentials import cloud_settings
from app.selectors.operations import items_needing_attention
from app.services import credentials
from app.services.errors import ServiceError
from app.web.access import current_actor, tenant_admin_required


@bp.get("/")
@tenant_admin_required
def index() -> str:
    return render_template("admin/index.html", overview=catalogue_overview(g.tenant))


def _cloud(provider: str) -> Provider:
    try:
        chosen = Provider(provider)
    except ValueError:
        abort(404)
    if chosen not in credentials.CLOUDS:
        abort(404)
    return chosen


def _clouds_page(**forms: CloudTokenForm) -> str:
    all_forms = {p.value: forms.get(p.value) or CloudTokenForm(prefix=p.value) for p in credentials.CLOUDS}
    return render_template("admin/clouds.html", clouds=cloud_settings(g.tenant), forms=all_forms)


@bp.get("/clouds")
@tenant_admin_required
def clouds() -> str:
    return _clouds_page()


@bp.post("/clouds/<provider>")
@tenant_admin_required
def set_cloud_token(provider: str) -> Response | tuple[str, int]:
    chosen = _cloud(provider)
    form = CloudTokenForm(prefix=chosen.value)
    if form.validate_on_submit():
        try:
            credentials.set_token(tenant=g.tenant, actor=current_actor(), provider=chosen, token=form.token.data)
        except ServiceError as error:
            form.token.errors = [*form.token.errors, error.message]
        else:
            flash(f"The {chosen.label} token is saved. New servers are created with it.", "success")
            return redirect(url_for(".clouds"), 303)
    return _clouds_page(**{chosen.value: form}), 400


@bp.post("/clouds/<provider>/clear")
@tenant_admin_required
def clear_cloud_token(provider: str) -> Response:
    chosen = _cloud(provider)  # CSRFProtect has checked the form's token already
    credentials.clear_token(tenant=g.tenant, actor=current_actor(), provider=chosen)
    flash(f"The {chosen.label} token is removed.", "info")
    return redirect(url_for(".clouds"), 303)


@bp.get("/servers")
@tenant_admin_required
def servers() -> str:
    """Servers that need staff: provisioning gave up, or the server vanished at the cloud."""
    return render_template("admin/servers.html", items=items_needing_attention(g.tenant))
