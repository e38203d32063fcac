"""Cards saved at the in-process payment sandbox, as the card pages would save them, for collection tests."""

from __future__ import annotations

from sqlalchemy import select, update

from app.clock import now
from app.extensions import db
from app.models import PaymentCustomer, PaymentMethod, Tenant, User
from app.sandbox.payments import SandboxPayments

GOOD = "4242424242424242"
FAILS_EVERY_CHARGE = "4000000000000341"


def save_card(tenant: Tenant, user: User, number: str = GOOD, *, default: bool = True) -> PaymentMethod:
    """Save `number` for `user` at the sandbox and keep it as a payment method (the default one unless told)."""
    sandbox = SandboxPayments(tenant.id)
    customer = db.session.scalar(select(PaymentCustomer).where(PaymentCustomer.user_id == user.id,
                                                               PaymentCustomer.provider == "sandbox"))
    if customer is None:
        external = sandbox.create_customer(email=user.email, name=user.name, reference=str(user.id),
                                           idempotency_key=f"customer-{user.id}")
        customer = PaymentCustomer(tenant_id=tenant.id, user_id=user.id, provider="sandbox", external_id=external,
                                   created_at=now())
        db.session.add(customer)
    page = sandbox.start_card_setup(customer_id=customer.external_id, success_url="https://portal.test/done",
                                    cancel_url="https://portal.test/cancel", metadata={})
    assert sandbox.complete_setup(page.external_id, number)
    card = sandbox.setup_result(page.external_id).card
    assert card is not None
    if default:
        db.session.execute(update(PaymentMethod).where(PaymentMethod.user_id == user.id).values(is_default=False))
    method = PaymentMethod(tenant_id=tenant.id, user_id=user.id, provider="sandbox", external_id=card.external_id,
                           brand=card.brand, last4=card.last4, exp_month=card.exp_month, exp_year=card.exp_year,
                           is_default=default, created_at=now())
    db.session.add(method)
    db.session.commit()
    return method
