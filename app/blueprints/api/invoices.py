"""/api/v1/invoices: the customer's invoices as the Billing page shows them (drafts never), one invoice with its
lines, tax and credit notes, its PDF (the document the page downloads), and paying an open one with the default
card (the service Pay now calls)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Response, g
from marshmallow import Schema, fields

from app.blueprints.api.base import (
    ApiRefusal,
    PageArgs,
    actor,
    api_blueprint,
    decode_cursor,
    encode_cursor,
    idempotent,
    page_schema,
)
from app.blueprints.api.ids import OpaqueId
from app.domain.billing import PaymentStatus
from app.models import Invoice
from app.selectors import billing as selectors
from app.services import collection
from app.services.errors import NotFound
from app.web import invoice_pdf as documents
from app.web.api import problem

blp = api_blueprint("invoices", __name__, url_prefix="/invoices",
                    description="The customer's invoices (never drafts), their PDFs, and paying an open one.")

INVOICE = "/<opaque(kind='invoice'):invoice_id>"
MINOR = {"description": "in minor units (cents) of the invoice's currency"}


class InvoiceSummarySchema(Schema):
    id = OpaqueId("invoice", required=True)
    number = fields.String(required=True, metadata={"example": "INV-2027-000042"})
    status = fields.String(required=True, metadata={"description": "open, paid, void or uncollectible"})
    currency = fields.String(required=True, metadata={"example": "EUR"})
    subtotal = fields.Integer(attribute="subtotal_minor", required=True, metadata={"description": "net, in minor "
                                                                                   "units"})
    tax = fields.Integer(attribute="tax_minor", required=True, metadata=MINOR)
    total = fields.Integer(attribute="total_minor", required=True, metadata=MINOR)
    amountDue = fields.Integer(attribute="amount_due_minor", required=True, metadata=MINOR)
    createdAt = fields.AwareDateTime(attribute="created_at", required=True)
    issuedAt = fields.AwareDateTime(attribute="issued_at", allow_none=True, required=True,
                                    metadata={"description": "when it was finalized (its date)"})
    dueAt = fields.AwareDateTime(attribute="due_at", allow_none=True, required=True)
    paidAt = fields.AwareDateTime(attribute="paid_at", allow_none=True, required=True)


class LineSchema(Schema):
    description = fields.String(required=True)
    kind = fields.String(required=True, metadata={"description": "first_period, renewal, proration_credit, "
                                                                 "proration_debit, usage or one_off"})
    periodStart = fields.AwareDateTime(attribute="period_start", required=True)
    periodEnd = fields.AwareDateTime(attribute="period_end", required=True)
    quantity = fields.Integer(required=True)
    unitAmount = fields.Integer(attribute="unit_amount_minor", allow_none=True, required=True, metadata=MINOR)
    net = fields.Integer(required=True, metadata=MINOR)
    tax = fields.Integer(required=True, metadata={"description": "this line's share of the invoice's tax"})
    gross = fields.Integer(required=True, metadata=MINOR)


class CreditNoteSchema(Schema):
    number = fields.String(required=True, metadata={"example": "INV-2027-000042-CN01"})
    reason = fields.String(required=True)
    memo = fields.String(required=True)
    method = fields.String(required=True, metadata={"description": "balance or refund: where the money went"})
    subtotal = fields.Integer(attribute="subtotal_minor", required=True, metadata=MINOR)
    tax = fields.Integer(attribute="tax_minor", required=True, metadata=MINOR)
    total = fields.Integer(attribute="total_minor", required=True, metadata=MINOR)
    currency = fields.String(required=True)
    createdAt = fields.AwareDateTime(attribute="created_at", required=True)


class InvoiceSchema(InvoiceSummarySchema):
    voidedAt = fields.AwareDateTime(attribute="voided_at", allow_none=True, required=True)
    taxRateBasisPoints = fields.Integer(attribute="tax_rate_bp", required=True,
                                        metadata={"description": "1900 is 19 %"})
    reverseCharge = fields.Boolean(attribute="reverse_charge", required=True)
    taxNote = fields.String(attribute="tax_note", required=True)
    balanceApplied = fields.Integer(attribute="balance_applied_minor", required=True, metadata=MINOR)
    credited = fields.Integer(attribute="credited_minor", required=True, metadata=MINOR)
    amountPaid = fields.Integer(attribute="amount_paid_minor", required=True, metadata=MINOR)
    seller = fields.Dict(required=True, metadata={"description": "as it was when the invoice was finalized"})
    billTo = fields.Dict(attribute="bill_to", required=True)
    lines = fields.List(fields.Nested(LineSchema), required=True)
    creditNotes = fields.List(fields.Nested(CreditNoteSchema), attribute="credit_notes", required=True)


class PaymentSchema(Schema):
    status = fields.String(required=True, metadata={"description": "succeeded, or pending while the provider has "
                                                                   "not answered (the invoice shows it when it does)"})
    amount = fields.Integer(required=True, metadata=MINOR)
    currency = fields.String(required=True)
    invoice = fields.Nested(InvoiceSchema, required=True, metadata={"description": "the invoice after the payment"})


InvoicePageSchema = page_schema(InvoiceSummarySchema)


def _own(invoice_id: int) -> Invoice:
    invoice = selectors.customer_invoice(g.tenant, g.api_user, invoice_id)
    if invoice is None:
        raise NotFound("There is no such invoice.")
    return invoice


def _after(cursor: str | None) -> tuple[datetime, int] | None:
    key = decode_cursor(cursor)
    if key is None:
        return None
    try:
        created, last_id = key
        return datetime.fromisoformat(created), int(last_id)
    except (TypeError, ValueError):  # signed by this API, so only a cursor of another endpoint gets here
        raise ApiRefusal(problem(422, "This cursor is not one this endpoint gave.",
                                 errors={"cursor": ["Not a cursor of this list; start without one."]})) from None


@blp.route("")
@blp.arguments(PageArgs, location="query", as_kwargs=True)
@blp.response(200, InvoicePageSchema)
def list_invoices(cursor: str | None, limit: int) -> dict[str, Any]:
    """The token's user's invoices, newest first, drafts left out, a page at a time (follow `nextCursor`)."""
    rows = selectors.customer_invoice_page(g.tenant, g.api_user, after=_after(cursor), limit=limit + 1)
    page, more = rows[:limit], len(rows) > limit
    last = page[-1] if page else None
    return {"data": page,
            "nextCursor": encode_cursor([last.created_at.isoformat(), last.id]) if more and last else None}


@blp.route(INVOICE)
@blp.response(200, InvoiceSchema)
def get_invoice(invoice_id: int) -> dict[str, Any]:
    """One invoice: its lines with their share of the tax, its totals and the credit notes against it."""
    return _detail(_own(invoice_id))


def _detail(invoice: Invoice) -> dict[str, Any]:
    """The invoice with each line's share of its tax (as the invoice page shows them) and its credit notes."""
    taxes = invoice.line_taxes
    lines = [{"description": line.description, "kind": line.kind, "period_start": line.period_start,
              "period_end": line.period_end, "quantity": line.quantity, "unit_amount_minor": line.unit_amount_minor,
              "net": line.amount_minor, "tax": tax, "gross": line.amount_minor + tax}
             for line in invoice.lines for tax in (taxes.get(line.id, 0),)]
    fields_ = {name: getattr(invoice, name) for name in (
        "id", "number", "status", "currency", "subtotal_minor", "tax_minor", "total_minor", "amount_due_minor",
        "created_at", "due_at", "paid_at", "voided_at", "tax_rate_bp", "reverse_charge", "tax_note",
        "balance_applied_minor", "credited_minor", "amount_paid_minor", "seller", "bill_to")}
    return {**fields_, "issued_at": invoice.finalized_at, "lines": lines,
            "credit_notes": selectors.credit_notes_of(invoice)}


@blp.route(INVOICE + "/pdf")
@blp.doc(responses={"200": {"description": "The invoice as a PDF, the document the invoice page downloads",
                            "content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}}}}})
def get_invoice_pdf(invoice_id: int) -> Response:
    """The invoice's PDF (`attachment; filename="INV-2027-000042.pdf"`)."""
    invoice = _own(invoice_id)
    return documents.download(invoice, selectors.credit_notes_of(invoice))


@blp.route(INVOICE + "/pay", methods=["POST"])
@idempotent
@blp.response(200, PaymentSchema)
@blp.alt_response(402, description="payment-failed: the card was declined (the reason in detail)")
@blp.doc(parameters=[{"in": "header", "name": "Idempotency-Key", "required": True, "schema": {"type": "string"},
                      "description": "a new one per payment; a retry with the same one is answered as the first"}])
def pay(invoice_id: int) -> Any:
    """Pay an open invoice now with the default card, as Pay now on the invoice's page does. A paid invoice:
    `conflict`; no card: `rule-refused` (cards are added in a browser, on the Payment methods page). Charged at
    most once: a payment still waiting for the provider is asked again, never sent twice."""
    payment = collection.pay_invoice(tenant=g.tenant, actor=actor(), invoice_id=invoice_id)
    if payment.status is PaymentStatus.FAILED:
        return problem(402, f"The card was declined: {payment.failure_message or 'no reason given'}",
                       code="payment-failed")
    return {"status": payment.status.value, "amount": payment.amount_minor, "currency": payment.currency,
            "invoice": _detail(_own(invoice_id))}
