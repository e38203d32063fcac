"""Payment methods over the API: the saved cards (brand, last four, expiry, default and nothing more), choosing
the default, removing one, the last card kept while it is needed, and nothing offered to add a card."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.blueprints.api.ids import encode
from app.domain.api_tokens import Scope
from app.extensions import db
from app.models import PaymentMethod
from app.services import api_tokens
from app.services.actors import Actor
from tests import factories


def _headers(tenant, user, *scopes: Scope) -> dict[str, str]:  # type: ignore[no-untyped-def]
    secret = api_tokens.create(tenant=tenant, actor=Actor(user), name="ci", scopes=frozenset(scopes or (Scope.WRITE,)),
                               expires_in_days=30).secret
    return {"Authorization": f"Bearer {secret}"}


def _id(app, card: PaymentMethod) -> str:  # type: ignore[no-untyped-def]
    with app.test_request_context():
        return encode("payment_method", card.id)


def _state(*cards: PaymentMethod) -> list[tuple[bool, bool]]:
    """(default, removed) of each card, as stored."""
    db.session.expire_all()
    return [(row.is_default, row.removed_at is not None)
            for row in (db.session.get(PaymentMethod, card.id) for card in cards)]


@pytest.fixture
def cards(tenant, customer):  # type: ignore[no-untyped-def]
    first = factories.payment_method(tenant, customer)
    second = factories.payment_method(tenant, customer, default=False, number="5555555555554444", brand="mastercard",
                                      exp_month=3, exp_year=2031)
    return first, second


def test_the_list_shows_brand_last4_expiry_and_default_only(app, client, tenant, customer, cards) -> None:  # type: ignore[no-untyped-def]
    first, second = cards
    factories.payment_method(tenant, factories.user(tenant, email="n@example.com"))  # another customer's
    response = client.get("/api/v1/payment-methods", headers=_headers(tenant, customer, Scope.READ))
    assert response.status_code == 200, response.json
    assert response.json["data"] == [
        {"id": _id(app, first), "brand": "visa", "last4": "4242", "expMonth": 12, "expYear": first.exp_year,
         "default": True},
        {"id": _id(app, second), "brand": "mastercard", "last4": "4444", "expMonth": 3, "expYear": 2031,
         "default": False}]


def test_make_default_then_remove(app, client, tenant, customer, cards) -> None:  # type: ignore[no-untyped-def]
    first, second = cards
    headers = _headers(tenant, customer)
    made = client.post(f"/api/v1/payment-methods/{_id(app, second)}/default", headers=headers, json={"x": 1})
    assert made.status_code == 200, made.json
    assert made.json["default"] is True and made.json["id"] == _id(app, second)
    assert _state(first, second) == [(False, False), (True, False)]
    removed = client.delete(f"/api/v1/payment-methods/{_id(app, second)}", headers=headers)
    assert removed.status_code == 204 and removed.data == b""
    assert _state(first, second) == [(True, False), (False, True)]  # the other card took over as the default
    again = client.delete(f"/api/v1/payment-methods/{_id(app, second)}", headers=headers)
    assert again.status_code == 404


def test_the_only_card_stays_while_a_paid_subscription_runs(app, client, tenant, customer) -> None:  # type: ignore[no-untyped-def]
    only = factories.payment_method(tenant, customer)
    factories.subscription(tenant, customer, factories.plan(tenant))
    refused = client.delete(f"/api/v1/payment-methods/{_id(app, only)}", headers=_headers(tenant, customer))
    assert refused.status_code == 422 and refused.json["type"].endswith("/rule-refused")
    assert "only card" in refused.json["detail"]
    assert _state(only) == [(True, False)]


def test_another_customers_card_is_404_and_unchanged(app, client, tenant, customer, cards) -> None:  # type: ignore[no-untyped-def]
    neighbour = factories.user(tenant, email="n@example.com")
    theirs = factories.payment_method(tenant, neighbour, default=False)
    factories.payment_method(tenant, neighbour)
    headers = _headers(tenant, customer)
    for response in (client.post(f"/api/v1/payment-methods/{_id(app, theirs)}/default", headers=headers),
                     client.delete(f"/api/v1/payment-methods/{_id(app, theirs)}", headers=headers),
                     client.delete("/api/v1/payment-methods/crd_zzzzzzz", headers=headers),
                     client.delete("/api/v1/payment-methods/42", headers=headers)):
        assert response.status_code == 404 and response.json["type"].endswith("/not-found")
    assert _state(theirs) == [(False, False)]


def test_the_read_scope_cannot_change_cards(app, client, tenant, customer, cards) -> None:  # type: ignore[no-untyped-def]
    first, second = cards
    headers = _headers(tenant, customer, Scope.READ)
    for response in (client.post(f"/api/v1/payment-methods/{_id(app, second)}/default", headers=headers),
                     client.delete(f"/api/v1/payment-methods/{_id(app, first)}", headers=headers)):
        assert response.status_code == 403 and response.json["requiredScope"] == "write"
    assert _state(first, second) == [(True, False), (False, False)]


def test_adding_a_card_is_not_offered_and_the_document_says_where_it_is(client, tenant, customer) -> None:  # type: ignore[no-untyped-def]
    response = client.post("/api/v1/payment-methods", json={"number": "4242424242424242"},
                           headers=_headers(tenant, customer))
    assert response.status_code == 405
    assert db.session.scalar(select(PaymentMethod)) is None
    [tag] = [tag for tag in client.get("/api/v1/openapi.json").json["tags"] if tag["name"] == "api_payment_methods"]
    assert "browser" in tag["description"]
