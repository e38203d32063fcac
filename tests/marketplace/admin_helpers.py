"""Rows for the tenant admin's marketplace pages: external subscriptions and operations log lines."""

from __future__ import annotations

from datetime import timedelta
from itertools import count
from typing import Any

from app.clock import now
from app.domain.marketplaces import ExternalState, Marketplace
from app.extensions import db
from app.models import MarketplaceOperation, MarketplaceSubscription, Subscription, Tenant

ENTRA_TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
CLIENT_ID = "3f2504e0-4f89-41d3-9a0c-0305e82c3301"
PROJECT_ID = "b7c8d2f0-1a2b-4c3d-9e8f-001122334455"
STACKIT_KEY = ('{"id": "k1", "validUntil": "2027-06-30T00:00:00Z", "credentials": {"kid": "k1", '
               '"iss": "portal@sa.stackit.cloud", "sub": "6e4c5a1d-0000-4000-8000-000000000001", '
               '"aud": "https://stackit-service-account-prod.apps.01.cf.eu01.stackit.cloud", '
               '"privateKey": "-----BEGIN PRIVATE KEY-----\\nMIIB\\n-----END PRIVATE KEY-----"}}')

_seq = count(1)
RAW = {Marketplace.MICROSOFT: {ExternalState.PENDING: "PendingFulfillmentStart", ExternalState.ACTIVE: "Subscribed",
                               ExternalState.SUSPENDED: "Suspended", ExternalState.CANCELLED: "Unsubscribed"},
       Marketplace.STACKIT: {ExternalState.PENDING: "SUBSCRIPTION_PENDING", ExternalState.ACTIVE: "SUBSCRIPTION_ACTIVE",
                             ExternalState.SUSPENDED: "SUBSCRIPTION_INACTIVE",
                             ExternalState.CANCELLING: "SUBSCRIPTION_CANCELLING",
                             ExternalState.CANCELLED: "SUBSCRIPTION_CANCELLED"}}


def external(tenant: Tenant, marketplace: Marketplace = Marketplace.MICROSOFT, *,
             state: ExternalState = ExternalState.ACTIVE, subscription: Subscription | None = None,
             offer_id: str = "portal-saas", external_plan_id: str = "basic", **values: Any) -> MarketplaceSubscription:
    n = next(_seq)
    row = MarketplaceSubscription(
        tenant_id=tenant.id, marketplace=marketplace, external_id=values.pop("external_id", f"ext-{n:04d}"),
        offer_id=offer_id, external_plan_id=external_plan_id, quantity=values.pop("quantity", 1),
        name=values.pop("name", f"Purchase {n}"), raw_state=RAW[marketplace][state], state=state,
        purchaser_email=values.pop("purchaser_email", f"buyer{n}@example.com"),
        customer_ref=values.pop("customer_ref", f"customer-{n}"),
        subscription_id=subscription.id if subscription else None,
        created_at=values.pop("created_at", now() - timedelta(minutes=1000 - n)), **values)
    db.session.add(row)
    db.session.commit()
    return row


def operation(tenant: Tenant, marketplace: Marketplace = Marketplace.MICROSOFT, *, ok: bool = True,
              **values: Any) -> MarketplaceOperation:
    n = next(_seq)
    row = MarketplaceOperation(
        tenant_id=tenant.id, marketplace=marketplace, source=values.pop("source", "webhook"),
        action=values.pop("action", "Suspend"), external_id=values.pop("external_id", None), ok=ok,
        outcome=values.pop("outcome", "applied" if ok else "refused"), http_status=values.pop("http_status", 200),
        duration_ms=values.pop("duration_ms", 42), received_at=values.pop("received_at", now() - timedelta(
            minutes=1000 - n)), detail={}, **values)
    db.session.add(row)
    db.session.commit()
    return row
