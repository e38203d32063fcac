"""A STACKIT plan change: the customer buys the new plan at STACKIT, which arrives as a new subscription id; the
tenant admin links it to the portal subscription it continues (app/services/marketplace_stackit.py `relink`), so
servers, data and history carry over and the old subscription id is retired."""

from __future__ import annotations

from flask import Response, abort, flash, g, redirect, url_for

from app.blueprints.admin import bp
from app.blueprints.admin.marketplace_forms import RelinkForm
from app.blueprints.admin.marketplaces import purchase_page
from app.services import marketplace_stackit
from app.services.errors import NotFound, ServiceError
from app.web.access import current_actor, tenant_admin_required


@bp.post("/marketplaces/subscriptions/<int:purchase_id>/link")
@tenant_admin_required
def link_marketplace_purchase(purchase_id: int) -> Response | tuple[str, int]:
    form = RelinkForm()
    try:
        if not form.validate_on_submit():
            return purchase_page(purchase_id, relink=form, status=400)
        subscription = marketplace_stackit.relink(tenant=g.tenant, actor=current_actor(), new_purchase_id=purchase_id,
                                                  subscription_id=form.subscription_id.data)
    except NotFound as missing:  # the purchase is not this tenant's: its page is not either
        try:
            return purchase_page(purchase_id, relink=form, problem=missing.message, status=404)
        except NotFound:
            abort(404)
    except ServiceError as error:
        return purchase_page(purchase_id, relink=form, problem=error.message, status=error.status_code)
    flash(f"Linked: subscription #{subscription.id} continues on this STACKIT subscription, now on "
          f"{subscription.plan.name}; the one it replaces is retired.", "success")
    return redirect(url_for(".marketplace_subscription", purchase_id=purchase_id), 303)
