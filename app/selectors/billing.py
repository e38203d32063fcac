"""Reads of a tenant's billing setup."""

from __future__ import annotations

from sqlalchemy import select

from app.domain.dunning import UNPAID_INVOICE
from app.extensions import db
from app.models import BillingSettings, SubscriptionEvent, TenantLike


def settings_for(tenant: TenantLike) -> BillingSettings:
    """The tenant's billing settings; the defaults (not stored) for a tenant that never changed them."""
    row = db.session.get(BillingSettings, tenant.id)
    if row is None:
        row = BillingSettings(tenant_id=tenant.id, seller_name=tenant.name, seller_address="", seller_vat_id="",
                              seller_country="DE", invoice_prefix="INV", tax_rates={}, reverse_charge=True,
                              payment_terms_days=0, retry_days=[3, 5, 7], suspend_after_days=14, grace_days=30)
    return row


def suspension_invoice(subscription_id: int) -> int | None:
    """The invoice whose non-payment suspended the subscription the last time it was suspended (None when that
    suspension was someone's decision, not dunning's, or it was never suspended)."""
    data = db.session.scalar(select(SubscriptionEvent.data).where(
        SubscriptionEvent.subscription_id == subscription_id, SubscriptionEvent.kind == "suspend")
        .order_by(SubscriptionEvent.created_at.desc(), SubscriptionEvent.id.desc()).limit(1))
    value = (data or {}).get(UNPAID_INVOICE)
    return int(value) if isinstance(value, int) else None


def suspended_once_for(subscription_id: int, invoice_id: int) -> bool:
    """Whether this invoice's non-payment has suspended the subscription before (dunning suspends once)."""
    rows = db.session.scalars(select(SubscriptionEvent.data).where(
        SubscriptionEvent.subscription_id == subscription_id, SubscriptionEvent.kind == "suspend"))
    return any((data or {}).get(UNPAID_INVOICE) == invoice_id for data in rows)
