"""A customer's saved cards, as their payment methods page shows them; always by tenant and owner."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, select

from app.extensions import db
from app.models import PaymentMethod, TenantLike, User

BRANDS = {"visa": "Visa", "mastercard": "Mastercard", "amex": "American Express", "discover": "Discover",
          "diners": "Diners Club", "jcb": "JCB", "unionpay": "UnionPay"}


@dataclass(frozen=True, slots=True)
class CardRow:
    id: int
    brand: str
    last4: str
    exp_month: int
    exp_year: int
    is_default: bool
    created_at: datetime

    @property
    def brand_label(self) -> str:
        return BRANDS.get(self.brand, self.brand.title() or "Card")

    @property
    def expiry(self) -> str:
        return f"{self.exp_month:02d}/{self.exp_year}"

    def expired(self, today: datetime) -> bool:
        return (self.exp_year, self.exp_month) < (today.year, today.month)


_CARDS = (select(PaymentMethod.id, PaymentMethod.brand, PaymentMethod.last4, PaymentMethod.exp_month,
                 PaymentMethod.exp_year, PaymentMethod.is_default, PaymentMethod.created_at)
          .where(PaymentMethod.tenant_id == bindparam("tenant_id"), PaymentMethod.user_id == bindparam("user_id"),
                 PaymentMethod.removed_at.is_(None))
          .order_by(PaymentMethod.is_default.desc(), PaymentMethod.created_at, PaymentMethod.id))


def customer_cards(tenant: TenantLike, customer: User) -> list[CardRow]:
    """The customer's saved cards, the default first (one statement)."""
    return [CardRow(*row) for row in db.session.execute(_CARDS, {"tenant_id": tenant.id, "user_id": customer.id})]
