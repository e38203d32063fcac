"""Factories: the smallest valid rows, with overrides. Each commits (a savepoint inside the test)."""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

from app.clock import now
from app.domain.accounts import Role
from app.domain.billing import ChargeKind, InvoiceStatus
from app.domain.catalogue import CatalogueState, Interval, Provider
from app.domain.subscriptions import SubscriptionStatus
from app.extensions import db
from app.models import (
    Charge,
    Invoice,
    PaymentMethod,
    Plan,
    Product,
    ServiceType,
    Subscription,
    Tenant,
    TenantHost,
    User,
)
from app.services.passwords import hash_password

PASSWORD = "correct horse battery staple"
_seq = itertools.count(1)


def _save(row: Any) -> Any:
    db.session.add(row)
    db.session.commit()
    return row


def tenant(slug: str | None = None, name: str = "Tenant", hosts: list[str] | None = None) -> Tenant:
    slug = slug or f"tenant-{next(_seq)}"
    row = Tenant(slug=slug, name=name, hosts=[TenantHost(hostname=h) for h in hosts or []])
    return _save(row)


def user(tenant: Tenant, *, email: str | None = None, name: str = "Test User", role: Role = Role.CUSTOMER,
         password: str = PASSWORD, is_active: bool = True, verified: bool = True) -> User:
    """A user whose address is confirmed (unless `verified=False`: registered, not confirmed yet)."""
    email = email or f"user{next(_seq)}@example.com"
    return _save(User(tenant_id=tenant.id, email=email, name=name, role=role, is_active=is_active,
                      password_hash=hash_password(password), email_verified_at=now() if verified else None))


HETZNER_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["serverType", "location"],
    "properties": {
        "serverType": {"type": "string", "enum": ["cx22", "cx32"]},
        "location": {"type": "string", "enum": ["fsn1", "nbg1", "hel1"]},
        "image": {"type": "string", "enum": ["ubuntu-24.04", "debian-12"]},
    },
}


def service_type(tenant: Tenant, **values: Any) -> ServiceType:
    n = next(_seq)
    values = {"slug": f"st-{n}", "name": f"Servers {n}", "provider": Provider.HETZNER,
              "config_schema": HETZNER_SCHEMA, **values}
    return _save(ServiceType(tenant_id=tenant.id, **values))


def product(tenant: Tenant, **values: Any) -> Product:
    n = next(_seq)
    values = {"slug": f"product-{n}", "name": f"Product {n}", "state": CatalogueState.PUBLISHED, **values}
    return _save(Product(tenant_id=tenant.id, **values))


def plan(tenant: Tenant, *, product_: Product | None = None, service_type_: ServiceType | None = None,
         **values: Any) -> Plan:
    n = next(_seq)
    product_ = product_ or product(tenant)
    service_type_ = service_type_ or service_type(tenant)
    values = {"slug": f"plan-{n}", "name": f"Plan {n}", "price_minor": 990, "currency": "EUR",
              "interval": Interval.MONTH, "state": CatalogueState.PUBLISHED,
              "config_defaults": {"serverType": "cx22", "location": "nbg1"}, **values}
    return _save(Plan(tenant_id=tenant.id, product_id=product_.id, service_type_id=service_type_.id, **values))


def subscription(tenant: Tenant, user: User, plan_: Plan, **values: Any) -> Subscription:
    """An active monthly subscription to `plan_` at 9.90 EUR, its period ending in 30 days; no items."""
    values = {"status": SubscriptionStatus.ACTIVE, "quantity": 1, "price_minor": 990, "currency": "EUR",
              "interval": Interval.MONTH, "current_period_end": now() + timedelta(days=30), **values}
    return _save(Subscription(tenant_id=tenant.id, user_id=user.id, plan_id=plan_.id, **values))


def invoice(subscription_: Subscription, *, status: InvoiceStatus = InvoiceStatus.OPEN, number: str | None = None,
            **values: Any) -> Invoice:
    """A finalized invoice billing one period of `subscription_` at its price (no tax), due now, unpaid."""
    moment = now()
    amount = subscription_.price_minor
    row = _save(Invoice(
        tenant_id=subscription_.tenant_id, user_id=subscription_.user_id, status=status, currency=subscription_.currency,
        number=number if number is not None or status is InvoiceStatus.DRAFT else f"INV-{moment.year}-{next(_seq):06d}",
        subtotal_minor=amount, tax_minor=0, total_minor=amount, amount_due_minor=amount, created_at=moment,
        finalized_at=None if status is InvoiceStatus.DRAFT else moment,
        due_at=None if status is InvoiceStatus.DRAFT else moment, **values))
    _save(Charge(tenant_id=subscription_.tenant_id, subscription_id=subscription_.id, user_id=subscription_.user_id,
                 invoice_id=row.id, kind=ChargeKind.RENEWAL, description="Plan, month", amount_minor=amount,
                 currency=subscription_.currency, period_start=moment,
                 period_end=moment + timedelta(days=30), created_at=moment))
    return row


def payment_method(tenant: Tenant, user: User, *, provider: str = "sandbox", default: bool = True,
                   number: str = "4242424242424242", **values: Any) -> PaymentMethod:
    """A saved card (a Visa ending in 4242 unless told), known to the in-process payment sandbox as the test card
    `number`, so the billing run can charge it as it would a card saved on the hosted page."""
    from app.providers.payments.base import Card
    from app.sandbox.payments import ledger

    values = {"brand": "visa", "last4": number[-4:], "exp_month": 12, "exp_year": now().year + 3, **values}
    external_id = f"pm_test{next(_seq):08d}"
    if provider == "sandbox":
        ledger(tenant.id).cards[external_id] = (number, Card(external_id, values["brand"], values["last4"],
                                                             values["exp_month"], values["exp_year"]))
    return _save(PaymentMethod(tenant_id=tenant.id, user_id=user.id, provider=provider, external_id=external_id,
                               is_default=default, created_at=now(), **values))
