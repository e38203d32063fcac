"""Which payment account serves a tenant, handed to the adapter as its credentials.

- A tenant with its own Stripe secret key (for the default tenant also STRIPE_SECRET_KEY from the
  environment) gets the Stripe adapter on Stripe's API (STRIPE_API_URL).
- A tenant without one gets the same adapter pointed at the sandbox's fake Stripe API, which `flask up`
  (or `flask fake-clouds`) serves on 127.0.0.1 (SANDBOX_STRIPE_URL), with a sandbox key naming the tenant.
- Only when no sandbox URL is configured and SANDBOX_IN_PROCESS is set (the fast tests) the in-process
  SandboxPayments stands in.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from flask import current_app
from sqlalchemy import select

from app.extensions import db
from app.models import BillingSettings, TenantLike
from app.providers.payments.base import PaymentError, PaymentErrorKind, PaymentProvider
from app.providers.payments.stripe_payments import StripePayments
from app.sandbox.payments import SandboxPayments
from app.sandbox.stripe_api import sandbox_key
from app.services.secrets import Unreadable, unseal

log = logging.getLogger(__name__)

SANDBOX_STRIPE = "stripe-sandbox"  # the provider name of the fake Stripe's ids


def _sealed(tenant: TenantLike, column: str) -> str | None:
    sealed = db.session.scalar(select(getattr(BillingSettings, column)).where(BillingSettings.tenant_id == tenant.id))
    if not sealed:
        return None
    try:
        return unseal(sealed)
    except Unreadable:
        log.error("the Stripe %s of tenant %s cannot be decrypted (key changed?)", column, tenant.slug)
        return None


def _from_env(tenant: TenantLike, setting: str) -> str | None:
    if tenant.slug == current_app.config["DEFAULT_TENANT"]:
        return current_app.config.get(setting) or None
    return None


def own_secret_key(tenant: TenantLike) -> str | None:
    """The tenant's own Stripe secret key (the environment's for the default tenant), or None."""
    return _sealed(tenant, "stripe_secret_ciphertext") or _from_env(tenant, "STRIPE_SECRET_KEY")


def webhook_secret(tenant: TenantLike) -> str | None:
    """The signing secret of the tenant's webhook endpoint: its own, or the sandbox's for a sandbox tenant."""
    if own_secret_key(tenant):
        return _sealed(tenant, "stripe_webhook_secret_ciphertext") or _from_env(tenant, "STRIPE_WEBHOOK_SECRET")
    return current_app.config.get("SANDBOX_STRIPE_WEBHOOK_SECRET") or None


def stripe_adapter(api_key: str, *, sandbox: bool = False) -> StripePayments:
    """The Stripe adapter for `api_key`, on Stripe's API or (sandbox) on the fake Stripe."""
    config = current_app.config
    endpoint = config["SANDBOX_STRIPE_URL"] if sandbox else config.get("STRIPE_API_URL") or "https://api.stripe.com"
    return StripePayments(api_key, endpoint=endpoint, timeout=float(config.get("CLOUD_TIMEOUT", 15.0)),
                          name=SANDBOX_STRIPE if sandbox else "stripe")


STRIPE_CHECKOUT_ORIGIN = "https://checkout.stripe.com"


def hosted_page_origin(tenant: TenantLike) -> str | None:
    """Where this tenant's hosted card page lives (a page whose form leads there must allow it in its
    Content-Security-Policy `form-action`: browsers apply it to the redirect too); None for the in-process one."""
    if own_secret_key(tenant):
        return STRIPE_CHECKOUT_ORIGIN
    if url := current_app.config.get("SANDBOX_STRIPE_URL"):
        parts = urlsplit(str(url))
        return f"{parts.scheme}://{parts.netloc}"
    return None


def provider_for(tenant: TenantLike) -> PaymentProvider:
    """The payment account that collects for this tenant, and no other tenant's."""
    config = current_app.config
    if key := own_secret_key(tenant):
        return stripe_adapter(key)
    if config.get("SANDBOX_STRIPE_URL"):
        return stripe_adapter(sandbox_key(tenant.slug), sandbox=True)
    if config.get("SANDBOX_IN_PROCESS"):
        return SandboxPayments(tenant.id)
    raise PaymentError(PaymentErrorKind.AUTH, "No payment account is set up for this portal yet. "
                                              "Please contact the operator.")
