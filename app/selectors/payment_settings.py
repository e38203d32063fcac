"""What the tenant admin's Stripe page shows: where the keys come from and their last four characters."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from flask import current_app
from sqlalchemy import select

from app.extensions import db
from app.models import BillingSettings, TenantLike, User


@dataclass(frozen=True)
class StripeKeys:
    source: str  # "tenant" (set on the page), "environment" (the default tenant's STRIPE_SECRET_KEY), "sandbox"
    secret_hint: str | None
    webhook_hint: str | None
    webhook_from_environment: bool
    updated_at: datetime | None
    updated_by: str | None


def stripe_keys(tenant: TenantLike) -> StripeKeys:
    row = db.session.execute(
        select(BillingSettings.stripe_secret_hint, BillingSettings.stripe_webhook_secret_hint,
               BillingSettings.updated_at, User.name)
        .outerjoin(User, User.id == BillingSettings.updated_by_id)
        .where(BillingSettings.tenant_id == tenant.id)).first()
    secret_hint, webhook_hint, updated_at, updated_by = row if row is not None else (None, None, None, None)
    config = current_app.config
    default = tenant.slug == config["DEFAULT_TENANT"]
    source = "tenant" if secret_hint else "environment" if default and config.get("STRIPE_SECRET_KEY") else "sandbox"
    return StripeKeys(source, secret_hint, webhook_hint,
                      bool(default and not webhook_hint and config.get("STRIPE_WEBHOOK_SECRET")), updated_at,
                      updated_by)
