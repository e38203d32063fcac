"""A tenant's Stripe account: its secret key and webhook signing secret, set by the tenant's admins.

Both are sealed at rest (app/services/secrets.py) and shown only by their last four characters. A secret key
is checked with Stripe (one cheap read) before it is stored, so a mistyped or revoked key is never kept.
Without a key of its own a tenant collects through the sandbox's fake Stripe (demo and tests only).
"""

from __future__ import annotations

import logging

from sqlalchemy import select

from app.clock import now
from app.domain.accounts import Role
from app.extensions import db
from app.models import BillingSettings, TenantLike
from app.providers.payments.base import PaymentError, PaymentErrorKind
from app.services.actors import Actor
from app.services.errors import Forbidden, InvalidInput, ServiceError
from app.services.payments import stripe_adapter
from app.services.secrets import seal

log = logging.getLogger(__name__)

SECRET_KEY_PREFIXES = ("sk_live_", "sk_test_", "rk_live_", "rk_test_")


def _require_admin(tenant: TenantLike, actor: Actor) -> None:
    user = actor.user
    if user is None or user.role is not Role.TENANT_ADMIN or user.tenant_id != tenant.id or actor.impersonator:
        raise Forbidden("Only the tenant's admins can change the Stripe keys.")


def _settings(tenant: TenantLike) -> BillingSettings:
    row = db.session.scalar(select(BillingSettings).where(BillingSettings.tenant_id == tenant.id))
    if row is None:
        row = BillingSettings(tenant_id=tenant.id, seller_name=tenant.name)
        db.session.add(row)
    return row


def _shape(value: str, prefixes: tuple[str, ...], what: str, field: str) -> str:
    value = (value or "").strip()
    if not value.startswith(prefixes) or not 16 <= len(value) <= 255 or any(ch.isspace() for ch in value):
        raise InvalidInput(f"This does not look like a Stripe {what} (it starts with {prefixes[0]}).", field=field)
    return value


def _check(secret_key: str) -> None:
    try:
        stripe_adapter(secret_key).check()
    except PaymentError as error:
        if error.kind in (PaymentErrorKind.AUTH, PaymentErrorKind.INVALID):
            raise InvalidInput(f"Stripe refused this key: {error.message}", field="secret_key") from None
        raise ServiceError("Stripe could not be reached to check the key. Nothing was changed; try again in a "
                           "minute.") from None


def set_stripe_keys(*, tenant: TenantLike, actor: Actor, secret_key: str = "", webhook_secret: str = "") -> None:
    """Store the tenant's Stripe secret key and/or webhook signing secret (a blank one is left as it is).
    Tenant admins only, never while impersonated; the secret key is checked with Stripe first."""
    _require_admin(tenant, actor)
    secret_key, webhook_secret = (secret_key or "").strip(), (webhook_secret or "").strip()
    if not secret_key and not webhook_secret:
        raise InvalidInput("Enter the secret key, the webhook signing secret, or both.", field="secret_key")
    if secret_key:
        secret_key = _shape(secret_key, SECRET_KEY_PREFIXES, "secret key", "secret_key")
    if webhook_secret:
        webhook_secret = _shape(webhook_secret, ("whsec_",), "webhook signing secret", "webhook_secret")
    if secret_key:
        _check(secret_key)
    row = _settings(tenant)
    if secret_key:
        row.stripe_secret_ciphertext, row.stripe_secret_hint = seal(secret_key), secret_key[-4:]
    if webhook_secret:
        row.stripe_webhook_secret_ciphertext, row.stripe_webhook_secret_hint = seal(webhook_secret), webhook_secret[-4:]
    row.updated_at, row.updated_by_id = now(), actor.user_id
    db.session.commit()
    log.info("tenant %s: Stripe %s set by user %s", tenant.slug,
             " and ".join(n for n, v in (("secret key", secret_key), ("webhook secret", webhook_secret)) if v),
             actor.user_id)


def clear_stripe_keys(*, tenant: TenantLike, actor: Actor) -> None:
    """Forget both: the tenant collects through the sandbox again (saved cards of its Stripe account stay
    listed but cannot be charged from the sandbox)."""
    _require_admin(tenant, actor)
    row = _settings(tenant)
    row.stripe_secret_ciphertext = row.stripe_secret_hint = None
    row.stripe_webhook_secret_ciphertext = row.stripe_webhook_secret_hint = None
    row.updated_at, row.updated_by_id = now(), actor.user_id
    db.session.commit()
    log.info("tenant %s: Stripe keys removed by user %s", tenant.slug, actor.user_id)
