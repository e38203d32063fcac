"""An invoice as a PDF, with the content of the printable page (templates/billing/_invoice_document.html).

Presentation, so it sits in the web layer beside the money and date filters it shares with the page, and both
the customer's and the tenant admin's blueprint can use it. fpdf2's core font (Helvetica) keeps the file small and
needs no font file, but it only has Latin-1: `latin1` spells out what it lacks (€ as EUR, dashes and quotes as
ASCII, accents dropped where the letter itself is missing) rather than failing on a customer's name.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from typing import Any

from flask import Response
from fpdf import FPDF
from fpdf.enums import XPos, YPos

from app.domain.billing import InvoiceStatus
from app.models import CreditNote, Invoice
from app.web.formatting import date, invoice_totals, money, party_lines, tax_rate

# Written as escapes: the characters themselves look like the ASCII they become.
_SPELLED_OUT = str.maketrans({
    "\u20ac": "EUR ", "\u2013": "-", "\u2014": "-", "\u2212": "-", "\u2018": "'", "\u2019": "'", "\u201a": ",",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u2026": "...", "\u2022": "*", "\u00a0": " ", "\u202f": " ",
    "\u2122": "TM", "\u0141": "L", "\u0142": "l", "\u0110": "D", "\u0111": "d", "\u0131": "i",
})


def latin1(text: object) -> str:
    """`text` in the core font's Latin-1: what it lacks is spelled out, stripped of accents, or a `?`."""
    spelled = str(text).translate(_SPELLED_OUT)
    try:
        spelled.encode("latin-1")
        return spelled
    except UnicodeEncodeError:
        pass
    out = []
    for char in spelled:
        if ord(char) < 256:
            out.append(char)
            continue
        base = "".join(c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c))
        out.append(base if base and all(ord(c) < 256 for c in base) else "?")
    return "".join(out)


def filename(invoice: Invoice) -> str:
    """INV-2027-000001.pdf; a draft (no number yet) is named by its id."""
    stem = invoice.number or f"draft-{invoice.id}"
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in stem) + ".pdf"


def _money(amount: int, currency: str) -> str:
    return latin1(money(amount, currency))


def _party(pdf: FPDF, title: str, party: dict[str, Any], x: float, y: float) -> None:
    pdf.set_xy(x, y)
    pdf.set_font("helvetica", "B", 9)
    pdf.cell(85, 5, latin1(title), new_x=XPos.LEFT, new_y=YPos.NEXT)
    pdf.set_font("helvetica", "", 9)
    for line in party_lines(party):
        pdf.multi_cell(85, 4.5, latin1(line), new_x=XPos.LEFT, new_y=YPos.NEXT)


def _facts(pdf: FPDF, invoice: Invoice) -> None:
    facts = [("Invoice", invoice.number or "Draft"), ("Status", invoice.status.label),
             ("Date", date(invoice.finalized_at)), ("Due", date(invoice.due_at))]
    if invoice.paid_at:
        facts.append(("Paid", date(invoice.paid_at)))
    pdf.set_font("helvetica", "", 9)
    for label, value in facts:
        pdf.cell(30, 5, latin1(label))
        pdf.cell(0, 5, latin1(value), new_x=XPos.LMARGIN, new_y=YPos.NEXT)


def _lines(pdf: FPDF, invoice: Invoice) -> None:
    rate = tax_rate(invoice.tax_rate_bp)
    headings = ("Description", "Period", "Qty", "Unit price", "Net", "Tax rate", "Tax", "Gross")
    with pdf.table(col_widths=(52, 34, 10, 20, 20, 14, 18, 22), text_align=(
            "LEFT", "LEFT", "RIGHT", "RIGHT", "RIGHT", "RIGHT", "RIGHT", "RIGHT"), line_height=5,
            first_row_as_headings=True) as table:
        table.row([latin1(h) for h in headings])
        taxes = invoice.line_taxes
        for line in invoice.lines:
            tax = taxes.get(line.id, 0)
            table.row([latin1(line.description), latin1(f"{date(line.period_start)} - {date(line.period_end)}"),
                       str(line.quantity),
                       _money(line.unit_amount_minor, line.currency) if line.unit_amount_minor is not None else "",
                       _money(line.amount_minor, line.currency), latin1(rate), _money(tax, line.currency),
                       _money(line.amount_minor + tax, line.currency)])


def invoice_pdf(invoice: Invoice, credit_notes: Sequence[CreditNote] = ()) -> bytes:
    """The invoice as PDF bytes: seller, bill-to, dates, lines, totals, tax note, credit notes, status."""
    pdf = FPDF(format="A4")
    pdf.set_title(latin1(f"Invoice {invoice.number or 'draft'}"))
    pdf.set_compression(False)  # a few kilobytes more, and the text stays searchable as it is
    pdf.add_page()
    pdf.set_font("helvetica", "B", 16)
    pdf.cell(0, 10, latin1("Draft invoice" if invoice.status is InvoiceStatus.DRAFT else "Invoice"),
             new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    top = pdf.get_y() + 2
    _party(pdf, "From", invoice.seller or {}, pdf.l_margin, top)
    after_seller = pdf.get_y()
    _party(pdf, "Bill to", invoice.bill_to or {}, pdf.l_margin + 95, top)
    pdf.set_xy(pdf.l_margin, max(after_seller, pdf.get_y()) + 4)
    _facts(pdf, invoice)
    pdf.ln(4)
    _lines(pdf, invoice)
    pdf.ln(3)
    for label, amount in invoice_totals(invoice):
        pdf.set_font("helvetica", "B" if label in ("Total", "Amount due") else "", 9)
        pdf.cell(150, 5, latin1(label), align="R")
        pdf.cell(0, 5, _money(amount, invoice.currency), align="R", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font("helvetica", "", 9)
    if invoice.reverse_charge or invoice.tax_note:
        pdf.ln(3)
        note = invoice.tax_note or "Reverse charge: VAT to be accounted for by the recipient."
        pdf.multi_cell(0, 4.5, latin1(note), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    if credit_notes:
        pdf.ln(3)
        pdf.set_font("helvetica", "B", 9)
        pdf.cell(0, 5, "Credit notes", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.set_font("helvetica", "", 9)
        for note in credit_notes:
            pdf.cell(0, 5, latin1(f"{note.number}, {date(note.created_at)}: {note.reason.label}, "
                                  f"{money(note.total_minor, note.currency)}"), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    return bytes(pdf.output())


def download(invoice: Invoice, credit_notes: Sequence[CreditNote] = ()) -> Response:
    """The invoice's PDF as a file to save: `attachment; filename="INV-2027-000001.pdf"`, kept by no shared cache."""
    return Response(invoice_pdf(invoice, credit_notes), mimetype="application/pdf",
                    headers={"Content-Disposition": f'attachment; filename="{filename(invoice)}"',
                             "Cache-Control": "private, no-store"})
