"""Invoices over the API: the customer's list (paged, never drafts), one invoice with each line's tax and its
credit notes, its PDF (the page's document), and paying an open one with the default card, once."""

from __future__ import annotations

import re
import uuid

import pytest
from sqlalchemy import func, select

from app.blueprints.api.ids import encode
from app.clock import now
from app.domain.api_tokens import Scope
from app.domain.billing import ChargeKind, CreditNoteMethod, CreditNoteReason, InvoiceStatus
from app.extensions import db
from app.models import Charge, CreditNote, Invoice, Payment
from app.services import api_tokens
from app.services.actors import Actor
from tests import factories
from tests.services.cards import FAILS_EVERY_CHARGE, save_card


def _headers(tenant, user, *scopes: Scope) -> dict[str, str]:  # type: ignore[no-untyped-def]
    secret = api_tokens.create(tenant=tenant, actor=Actor(user), name="ci", scopes=frozenset(scopes or (Scope.WRITE,)),
                               expires_in_days=30).secret
    return {"Authorization": f"Bearer {secret}"}


def _key() -> dict[str, str]:
    return {"Idempotency-Key": str(uuid.uuid4())}


def _id(app, row: Invoice) -> str:  # type: ignore[no-untyped-def]
    with app.test_request_context():
        return encode("invoice", row.id)


def _undated(pdf: bytes) -> bytes:
    """The PDF without its creation time and the file id made from it (what two downloads of one invoice differ
    in when a second passes between them)."""
    return re.sub(rb"/ID \[<[0-9A-F]*><[0-9A-F]*>\]", b"", re.sub(rb"/CreationDate \(D:[^)]*\)", b"", pdf))


@pytest.fixture
def subscription(tenant, customer):  # type: ignore[no-untyped-def]
    return factories.subscription(tenant, customer, factories.plan(tenant))


@pytest.fixture
def taxed(subscription, clock):  # type: ignore[no-untyped-def]
    """An open invoice of two lines, 9.90 and 0.10 EUR net, 19 % tax (1.90) shared over them, and a credit note."""
    invoice = factories.invoice(subscription)
    moment = now()
    db.session.add(Charge(tenant_id=invoice.tenant_id, subscription_id=subscription.id, user_id=invoice.user_id,
                          invoice_id=invoice.id, kind=ChargeKind.ONE_OFF, description="Setup", amount_minor=10,
                          unit_amount_minor=10, currency="EUR", period_start=moment, period_end=moment,
                          created_at=moment))
    invoice.subtotal_minor, invoice.tax_minor, invoice.tax_rate_bp = 1000, 190, 1900
    invoice.total_minor, invoice.amount_due_minor, invoice.credited_minor = 1190, 1090, 100
    db.session.add(CreditNote(tenant_id=invoice.tenant_id, invoice_id=invoice.id, user_id=invoice.user_id, sequence=1,
                              number=f"{invoice.number}-CN01", reason=CreditNoteReason.OTHER, memo="goodwill",
                              method=CreditNoteMethod.BALANCE, subtotal_minor=84, tax_minor=16, total_minor=100,
                              currency="EUR", created_at=moment))
    db.session.commit()
    return invoice


def test_the_list_is_paged_newest_first_and_shows_no_drafts(app, client, tenant, customer, subscription, clock) -> None:  # type: ignore[no-untyped-def]
    shown = []
    for _ in range(5):
        shown.append(factories.invoice(subscription))
        clock.advance(days=1)
    factories.invoice(subscription, status=InvoiceStatus.DRAFT)
    neighbour = factories.user(tenant, email="n@example.com")
    factories.invoice(factories.subscription(tenant, neighbour, subscription.plan))
    headers = _headers(tenant, customer, Scope.READ)
    seen, cursor = [], None
    while True:
        page = client.get("/api/v1/invoices", query_string={"limit": 2, **({"cursor": cursor} if cursor else {})},
                          headers=headers)
        assert page.status_code == 200, page.json
        seen += page.json["data"]
        cursor = page.json["nextCursor"]
        if cursor is None:
            break
    assert [row["id"] for row in seen] == [_id(app, row) for row in reversed(shown)]
    first = seen[0]
    assert first["number"] == shown[-1].number and first["status"] == "open" and first["currency"] == "EUR"
    assert (first["subtotal"], first["tax"], first["total"], first["amountDue"]) == (990, 0, 990, 990)
    assert first["issuedAt"] == shown[-1].finalized_at.isoformat() and first["paidAt"] is None
    forged = client.get("/api/v1/invoices", query_string={"cursor": "abc.def"}, headers=headers)
    assert forged.status_code == 422 and "cursor" in forged.json["errors"]
    assert "limit" in client.get("/api/v1/invoices?limit=500", headers=headers).json["errors"]


def test_an_invoice_shows_each_lines_tax_its_totals_and_credit_notes(app, client, tenant, customer, taxed) -> None:  # type: ignore[no-untyped-def]
    response = client.get(f"/api/v1/invoices/{_id(app, taxed)}", headers=_headers(tenant, customer, Scope.READ))
    assert response.status_code == 200, response.json
    body = response.json
    taxes = taxed.line_taxes
    assert [(line["net"], line["tax"], line["gross"]) for line in body["lines"]] == [
        (line.amount_minor, taxes[line.id], line.amount_minor + taxes[line.id]) for line in taxed.lines]
    assert sum(line["tax"] for line in body["lines"]) == body["tax"] == 190
    assert (body["subtotal"], body["total"], body["credited"], body["amountDue"]) == (1000, 1190, 100, 1090)
    assert body["taxRateBasisPoints"] == 1900 and body["lines"][1]["kind"] == "one_off"
    [note] = body["creditNotes"]
    assert (note["number"], note["total"], note["method"]) == (f"{taxed.number}-CN01", 100, "balance")


def test_the_pdf_is_the_document_the_page_downloads(app, client, auth, tenant, customer, taxed) -> None:  # type: ignore[no-untyped-def]
    response = client.get(f"/api/v1/invoices/{_id(app, taxed)}/pdf", headers=_headers(tenant, customer, Scope.READ))
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    assert response.data.startswith(b"%PDF") and taxed.number in response.headers["Content-Disposition"]
    auth.login(customer.email)
    page = client.get(f"/billing/invoices/{taxed.id}.pdf")
    assert page.status_code == 200
    assert taxed.number.encode() in response.data
    assert _undated(response.data) == _undated(page.data)


def test_drafts_and_other_customers_invoices_are_404(app, client, tenant, customer, subscription, taxed,  # type: ignore[no-untyped-def]
                                                    clock) -> None:
    clock.advance(days=1)
    draft = factories.invoice(subscription, status=InvoiceStatus.DRAFT)
    neighbour = factories.user(tenant, email="n@example.com")
    save_card(tenant, neighbour)
    headers = _headers(tenant, neighbour)
    for invoice in (draft, taxed):
        base = f"/api/v1/invoices/{_id(app, invoice)}"
        for response in (client.get(base, headers=headers), client.get(f"{base}/pdf", headers=headers),
                         client.post(f"{base}/pay", headers={**headers, **_key()})):
            assert response.status_code == 404 and response.json["type"].endswith("/not-found")
    own = _headers(tenant, customer)
    assert client.get(f"/api/v1/invoices/{_id(app, draft)}", headers=own).status_code == 404
    assert client.get("/api/v1/invoices/inv_zzzzzzz", headers=own).status_code == 404
    assert db.session.scalar(select(func.count()).select_from(Payment)) == 0


def test_pay_charges_the_default_card_once_and_a_replay_answers_the_same(app, client, tenant, customer, taxed) -> None:  # type: ignore[no-untyped-def]
    save_card(tenant, customer)
    headers = {**_headers(tenant, customer), **_key()}
    path = f"/api/v1/invoices/{_id(app, taxed)}/pay"
    paid = client.post(path, headers=headers, json={"ignored": True})
    assert paid.status_code == 200, paid.json
    assert paid.json["status"] == "succeeded" and paid.json["amount"] == 1090
    assert paid.json["invoice"]["status"] == "paid" and paid.json["invoice"]["amountDue"] == 0
    again = client.post(path, headers=headers, json={"ignored": True})
    assert again.json == paid.json and again.headers["Idempotent-Replayed"] == "true"
    assert db.session.scalar(select(func.count()).select_from(Payment)) == 1
    twice = client.post(path, headers={**headers, **_key()})
    assert twice.status_code == 409 and "already paid" in twice.json["detail"]
    assert db.session.scalar(select(func.count()).select_from(Payment)) == 1


def test_a_declined_card_is_a_payment_failed_problem(app, client, tenant, customer, taxed) -> None:  # type: ignore[no-untyped-def]
    save_card(tenant, customer, FAILS_EVERY_CHARGE)
    response = client.post(f"/api/v1/invoices/{_id(app, taxed)}/pay", headers={**_headers(tenant, customer), **_key()})
    assert response.status_code == 402 and response.json["type"].endswith("/payment-failed")
    db.session.expire_all()
    assert db.session.get(Invoice, taxed.id).status is InvoiceStatus.OPEN


def test_pay_without_a_card_or_with_the_read_scope_is_refused(app, client, tenant, customer, taxed) -> None:  # type: ignore[no-untyped-def]
    path = f"/api/v1/invoices/{_id(app, taxed)}/pay"
    none = client.post(path, headers={**_headers(tenant, customer), **_key()})
    assert none.status_code == 422 and none.json["type"].endswith("/rule-refused")
    save_card(tenant, customer)
    reader = client.post(path, headers={**_headers(tenant, customer, Scope.READ), **_key()})
    assert reader.status_code == 403 and reader.json["requiredScope"] == "write"
    db.session.expire_all()
    assert db.session.get(Invoice, taxed.id).status is InvoiceStatus.OPEN
    assert db.session.scalar(select(func.count()).select_from(Payment)) == 0
