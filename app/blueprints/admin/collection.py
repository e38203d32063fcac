"""The tenant admin's payments (every try and why it failed) and overdue subscriptions, with extending one's grace
period."""

from __future__ import annotations

from flask import Response, abort, flash, g, redirect, render_template, request, url_for

from app.blueprints.admin import bp
from app.blueprints.admin.billing_forms import ExtendGraceForm, PaymentFilterForm
from app.domain.subscriptions import format_day
from app.selectors import collection as selectors
from app.services import dunning
from app.services.errors import NotFound, ServiceError
from app.web.access import current_actor, tenant_admin_required


@bp.get("/payments")
@tenant_admin_required
def payments() -> str:
    form = PaymentFilterForm(request.args)
    status = form.chosen()
    page = request.args.get("page", 1, type=int) or 1
    return render_template("admin/payments.html", form=form, status=status,
                           results=selectors.payments_page(g.tenant, status=status, page=page),
                           params={"status": status.value} if status else {})


def _overdue_page(failed: tuple[int, ExtendGraceForm] | None = None, problem: str | None = None,
                  status: int = 200) -> tuple[str, int]:
    rows = selectors.overdue(g.tenant)
    forms = {row.subscription_id: ExtendGraceForm(prefix=f"grace-{row.subscription_id}", formdata=None)
             for row in rows if row.cancels_at is not None}
    if failed is not None and failed[0] in forms:
        forms[failed[0]] = failed[1]
    return render_template("admin/overdue.html", rows=rows, forms=forms, problem=problem), status


@bp.get("/overdue")
@tenant_admin_required
def overdue() -> tuple[str, int]:
    return _overdue_page()


@bp.post("/subscriptions/<int:subscription_id>/grace")
@tenant_admin_required
def extend_grace(subscription_id: int) -> Response | tuple[str, int]:
    form = ExtendGraceForm(prefix=f"grace-{subscription_id}")
    if not form.validate_on_submit():
        return _overdue_page((subscription_id, form), status=400)
    try:
        changed = dunning.extend_grace(tenant=g.tenant, actor=current_actor(), subscription_id=subscription_id,
                                       until=form.until_at, reason=form.reason.data or "")
    except NotFound:
        abort(404)
    except ServiceError as error:
        field = getattr(form, error.field, None) if error.field else None
        if field is not None:
            field.errors = [*field.errors, error.message]
            return _overdue_page((subscription_id, form), status=error.status_code)
        return _overdue_page(problem=error.message, status=error.status_code)
    assert changed.effective_at is not None
    flash(f"Subscription #{changed.id} is now canceled on {format_day(changed.effective_at)} unless paid before.",
          "success")
    return redirect(url_for(".overdue"), 303)
