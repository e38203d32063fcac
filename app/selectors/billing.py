"""Reads of a tenant's billing setup."""

from __future__ import annotations

from app.extensions import db
from app.models import BillingSettings, TenantLike


def settings_for(tenant: TenantLike) -> BillingSettings:
    """The tenant's billing settings; the defaults (not stored) for a tenant that never changed them."""
    row = db.session.get(BillingSettings, tenant.id)
    if row is None:
        row = BillingSettings(tenant_id=tenant.id, seller_name=tenant.name, seller_address="", seller_vat_id="",
                              seller_country="DE", invoice_prefix="INV", tax_rates={}, reverse_charge=True,
                              payment_terms_days=0, retry_days=[3, 5, 7], suspend_after_days=14, grace_days=30)
    return row
