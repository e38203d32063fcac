"""/api/v1/payment-methods: the customer's saved cards (brand, last four digits, expiry, default; the portal keeps
nothing more), making one the default and removing one, by the services the Payment methods page calls.

Adding a card is not offered here: the card number is typed only on the payment provider's hosted page, in a
browser, so that it never passes through the portal."""

from __future__ import annotations

from typing import Any

from flask import g
from marshmallow import Schema, fields

from app.blueprints.api.base import actor, api_blueprint
from app.blueprints.api.ids import OpaqueId
from app.models import PaymentMethod
from app.selectors.payment_methods import customer_cards
from app.services import payment_methods

blp = api_blueprint(
    "payment_methods", __name__, url_prefix="/payment-methods",
    description="The saved cards: list them, choose the default, remove one. A card is added only in a browser, "
                "on the Payment methods page (the payment provider's hosted card page): the API cannot add one.")

METHOD = "/<opaque(kind='payment_method'):method_id>"


class CardSchema(Schema):
    id = OpaqueId("payment_method", required=True)
    brand = fields.String(required=True, metadata={"example": "visa"})
    last4 = fields.String(required=True, metadata={"example": "4242"})
    expMonth = fields.Integer(attribute="exp_month", required=True)
    expYear = fields.Integer(attribute="exp_year", required=True)
    default = fields.Boolean(attribute="is_default", required=True,
                             metadata={"description": "the card invoices are charged to"})


class CardListSchema(Schema):
    data = fields.List(fields.Nested(CardSchema), required=True)


@blp.route("")
@blp.response(200, CardListSchema)
def list_cards() -> dict[str, Any]:
    """The saved cards, the default first (a customer has a few: not paged)."""
    return {"data": customer_cards(g.tenant, g.api_user)}


@blp.route(METHOD + "/default", methods=["POST"])
@blp.response(200, CardSchema)
def make_default(method_id: int) -> PaymentMethod:
    """Charge this card from now on (invoices finalized from now on, and retries of open ones)."""
    return payment_methods.make_default(tenant=g.tenant, actor=actor(), method_id=method_id)


@blp.route(METHOD, methods=["DELETE"])
@blp.response(204)
def remove(method_id: int) -> None:
    """Remove the card. The only card stays while an invoice is open or a paid subscription runs (a
    `rule-refused` problem says so); when the default goes, the newest other card becomes the default."""
    payment_methods.remove(tenant=g.tenant, actor=actor(), method_id=method_id)
