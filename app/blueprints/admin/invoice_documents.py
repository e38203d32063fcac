"""An invoice of the tenant as a PDF, for its admins: the document the customer downloads (drafts too, marked)."""

from __future__ import annotations

from flask import Response, abort, g

from app.blueprints.admin import bp
from app.selectors import billing as selectors
from app.selectors import invoices
from app.web import invoice_pdf as documents
from app.web.access import tenant_admin_required


@bp.get("/invoices/<int:invoice_id>.pdf")
@tenant_admin_required
def invoice_pdf(invoice_id: int) -> Response:
    detail = invoices.tenant_invoice(g.tenant, invoice_id)  # the admin's invoice page reads the same
    if detail is None:
        abort(404)
    return documents.download(detail.invoice, selectors.credit_notes_of(detail.invoice))
