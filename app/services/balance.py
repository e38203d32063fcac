"""The customer balance: credit in the customer's favour, per currency, used before a card is charged.

The balance is the sum of the customer's balance entries in a currency (positive: owed to the customer).
Credit notes and downgrades add to it, finalized invoices take from it (app/services/invoicing.py), and a
tenant admin may adjust it with a reason. Whoever changes a customer's balance locks the customer's row
first, so two changes never both spend the same credit.
"""

from __future__ import annotations

import logging

from sqlalchemy import func, select

from app.clock import now
from app.domain.accounts import Role
from app.domain.billing import BalanceEntryKind
from app.domain.policy import ActorKind
from app.extensions import db
from app.models import BalanceEntry, TenantLike, User
from app.services.actors import Actor
from app.services.errors import Forbidden, InvalidInput, NotFound

log = logging.getLogger(__name__)

REASON_MAX = 300
ADJUSTMENT_MAX = 100_000_000  # a million in a two-decimal currency: a typo guard, not a rule


def balance_of(tenant: TenantLike, user_id: int, currency: str) -> int:
    """The customer's balance in `currency`, in minor units (0 when they have none)."""
    return db.session.scalar(
        select(func.coalesce(func.sum(BalanceEntry.amount_minor), 0))
        .where(BalanceEntry.tenant_id == tenant.id, BalanceEntry.user_id == user_id,
               BalanceEntry.currency == currency)) or 0


def lock_customer(tenant: TenantLike, user_id: int) -> User:
    """The tenant's customer, locked for this transaction (FOR UPDATE on PostgreSQL): the balance's lock."""
    user = db.session.scalar(select(User).where(User.id == user_id, User.tenant_id == tenant.id,
                                                User.role == Role.CUSTOMER).with_for_update())
    if user is None:
        raise NotFound("There is no such customer.")
    return user


def adjust(*, tenant: TenantLike, actor: Actor, user_id: int, amount_minor: int, currency: str,
           reason: str) -> BalanceEntry:
    """Add `amount_minor` (negative: take away) to the customer's balance in `currency`, with a reason.

    Tenant admins only, never while impersonating. A balance never goes below zero (InvalidInput)."""
    if actor.kind is not ActorKind.TENANT_ADMIN or actor.impersonator is not None:
        raise Forbidden("Only the tenant's admins adjust a customer's balance.")
    reason = " ".join(reason.split())
    if not reason:
        raise InvalidInput("Say why the balance changes.", field="reason")
    if len(reason) > REASON_MAX:
        raise InvalidInput(f"Keep the reason under {REASON_MAX} characters.", field="reason")
    if isinstance(amount_minor, bool) or not isinstance(amount_minor, int) or amount_minor == 0:
        raise InvalidInput("Enter an amount other than zero.", field="amount")
    if not (len(currency) == 3 and currency.isascii() and currency.isupper()):
        raise InvalidInput("Choose a currency.", field="currency")
    if abs(amount_minor) > ADJUSTMENT_MAX:
        raise InvalidInput("This amount is too large for an adjustment.", field="amount")
    customer = lock_customer(tenant, user_id)
    if balance_of(tenant, customer.id, currency) + amount_minor < 0:
        raise InvalidInput("The balance cannot go below zero.", field="amount")
    entry = BalanceEntry(tenant_id=tenant.id, user_id=customer.id, kind=BalanceEntryKind.ADJUSTMENT,
                         amount_minor=amount_minor, currency=currency, description=reason, created_at=now(),
                         created_by_id=actor.user_id)
    db.session.add(entry)
    db.session.commit()
    log.info("balance adjusted", extra={"tenant_id": tenant.id, "user_id": customer.id, "amount": amount_minor,
                                        "currency": currency, "actor_id": actor.user_id})
    return entry
