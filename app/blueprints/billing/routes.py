"""The customer's Billing: the overview (invoices, balance, default card, spend per month), the printable
invoice and its PDF."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Response, abort, g, render_template
from flask_login import current_user

from app.blueprints.billing import bp
from app.clock import now
from app.domain.charts import last_months, monthly_chart
from app.models import Invoice
from app.selectors import billing as selectors
from app.web import invoice_pdf as documents
from app.web.access import customer_required
from app.web.formatting import money

CHART_MONTHS = 12


@bp.get("/billing")
@customer_required
def index() -> str:
    today = now()
    months = last_months(today.year, today.month, CHART_MONTHS)
    since = datetime(months[0] // 100, months[0] % 100, 1, tzinfo=UTC)
    summary = selectors.account_summary(g.tenant, current_user, since=since)
    charts = [(currency, monthly_chart(f"Billed per month in {currency}, last {CHART_MONTHS} months", months, spend,
                                       lambda amount, currency=currency: money(amount, currency)))
              for currency, spend in sorted(summary.spend.items())]
    return render_template("billing/index.html", invoices=selectors.customer_invoices(g.tenant, current_user),
                           summary=summary, charts=charts)


def _own(invoice_id: int) -> Invoice:
    invoice = selectors.customer_invoice(g.tenant, current_user, invoice_id)
    if invoice is None:
        abort(404)
    return invoice


@bp.get("/billing/invoices/<int:invoice_id>")
@customer_required
def invoice(invoice_id: int) -> str:
    found = _own(invoice_id)
    return render_template("billing/invoice.html", invoice=found, credit_notes=selectors.credit_notes_of(found))


@bp.get("/billing/invoices/<int:invoice_id>.pdf")
@customer_required
def invoice_pdf(invoice_id: int) -> Response:
    found = _own(invoice_id)
    return documents.download(found, selectors.credit_notes_of(found))
