"""The tenant admin's audit of support impersonations: who acted as whom, why, when, how it ended, what they did."""

from __future__ import annotations

from flask import abort, g, render_template, request

from app.blueprints.admin import bp
from app.selectors import impersonation as selectors
from app.services import impersonation
from app.web.access import tenant_admin_required


@bp.get("/audit")
@tenant_admin_required
def audit() -> str:
    impersonation.close_finished(tenant=g.tenant)  # those whose browser never came back
    page = request.args.get("page", 1, type=int) or 1
    return render_template("admin/audit.html", results=selectors.audit_page(g.tenant, page=page))


@bp.get("/audit/<int:impersonation_id>")
@tenant_admin_required
def audit_detail(impersonation_id: int) -> str:
    record = selectors.audit_record(g.tenant, impersonation_id)
    if record is None:
        abort(404)
    return render_template("admin/audit_detail.html", record=record)
