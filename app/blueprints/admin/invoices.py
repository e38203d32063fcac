"""The tenant admin's invoices: the list with its filters, one invoice, and credit notes against it."""

from __future__ import annotations

from flask import Response, abort, flash, g, redirect, render_template, request, url_for

from app.blueprints.admin import bp
from app.blueprints.admin.forms import CreditNoteForm, InvoiceFilterForm
from app.domain.pricing import PricingError, parse_amount
from app.selectors import invoices as selectors
from app.services import credit_notes
from app.services.errors import NotFound, ServiceError
from app.web import htmx
from app.web.access import current_actor, tenant_admin_required

_FIELDS = ("amount", "reason", "memo", "method")


@bp.get("/invoices")
@tenant_admin_required
def invoices() -> str:
    form = InvoiceFilterForm(request.args)
    page = request.args.get("page", 1, type=int) or 1
    return htmx.render("admin/invoices.html", "admin/_invoice_results.html", form=form, params=form.params(),
                       results=selectors.tenant_invoices(g.tenant, page=page, **form.chosen()))  # type: ignore[arg-type]


@bp.get("/invoices/<int:invoice_id>")
@tenant_admin_required
def invoice(invoice_id: int) -> tuple[str, int]:
    return _page(invoice_id, CreditNoteForm(formdata=None))


@bp.post("/invoices/<int:invoice_id>/credit-notes")
@tenant_admin_required
def credit_note(invoice_id: int) -> Response | tuple[str, int]:
    detail = selectors.tenant_invoice(g.tenant, invoice_id)
    if detail is None:
        abort(404)
    form = CreditNoteForm()
    if not form.validate_on_submit():
        return _page(invoice_id, form, 400)
    try:
        amount = parse_amount(form.amount.data or "", detail.invoice.currency)
        note = credit_notes.issue(tenant=g.tenant, actor=current_actor(), invoice_id=invoice_id, amount_minor=amount,
                                  reason=form.reason.data or "", memo=form.memo.data or "",
                                  method=form.method.data or "")
    except PricingError as error:
        form.amount.errors = [*form.amount.errors, str(error)]
        return _page(invoice_id, form, 400)
    except NotFound:
        abort(404)
    except credit_notes.RefundFailed as error:  # the note stands; its refund can be tried again from the page
        flash(error.message, "error")
        return redirect(url_for(".invoice", invoice_id=invoice_id), 303)
    except ServiceError as error:
        target = form[error.field] if error.field in _FIELDS else None
        if target is not None:
            target.errors = [*target.errors, error.message]
        else:
            form.form_errors.append(error.message)
        return _page(invoice_id, form, error.status_code)
    flash(f"Credit note {note.number} is issued.", "success")
    return redirect(url_for(".invoice", invoice_id=invoice_id), 303)


def _page(invoice_id: int, form: CreditNoteForm, status: int = 200) -> tuple[str, int]:
    detail = selectors.tenant_invoice(g.tenant, invoice_id)
    if detail is None:
        abort(404)
    return render_template("admin/invoice.html", detail=detail, invoice=detail.invoice, form=form), status


@bp.post("/invoices/<int:invoice_id>/credit-notes/<int:credit_note_id>/refund")
@tenant_admin_required
def retry_refund(invoice_id: int, credit_note_id: int) -> Response:
    """Ask the provider again for a credit note's refund that was not confirmed (never refunds twice)."""
    try:  # CSRFProtect has checked the form's token already
        note = credit_notes.retry_refund(tenant=g.tenant, actor=current_actor(), credit_note_id=credit_note_id)
    except NotFound:
        abort(404)
    except ServiceError as error:
        flash(error.message, "error")
    else:
        flash(f"The refund of {note.number} is confirmed.", "success")
        invoice_id = note.invoice_id
    return redirect(url_for(".invoice", invoice_id=invoice_id), 303)
