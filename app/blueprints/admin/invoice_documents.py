"""An invoice of the tenant as a PDF, for its admins: the document the customer downloads (drafts too, marked)."""

from __future__ import annotations

from flask import Response, abort, g

from app.blueprints.admin import bp
from app.selectors import billing as selectors
from app.web.access import tenant_admin_required
from app.web.invoice_pdf import filename
from app.web.invoice_pdf import invoice_pdf as render_pdf


@bp.get("/invoices/<int:invoice_id>.pdf")
@tenant_admin_required
def invoice_pdf(invoice_id: int) -> Response:
    invoice = selectors.tenant_invoice(g.tenant, invoice_id)
    if invoice is None:
        abort(404)
    return Response(render_pdf(invoice, selectors.credit_notes_of(invoice)), mimetype="application/pdf",
                    headers={"Content-Disposition": f'attachment; filename="{filename(invoice)}"',
                             "Cache-Control": "private"})
