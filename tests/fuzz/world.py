"""The small world each fuzz test runs in: our tenant and another one, a customer with a running server, staff.

`World.ids` gives, for each id parameter of the URL map, a real id of our tenant and one of the other tenant.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import timedelta

from app.clock import FrozenClock, now
from app.domain.accounts import Role
from app.domain.api_tokens import Scope
from app.domain.billing import CreditNoteMethod, CreditNoteReason
from app.domain.catalogue import Interval
from app.domain.marketplaces import ExternalState, Marketplace
from app.domain.notifications import EmailStatus
from app.domain.plan_lifecycle import CatalogueAction
from app.domain.subscriptions import ItemStatus, SubscriptionStatus
from app.extensions import db
from app.models import (
    ApiToken,
    CatalogueOperation,
    CreditNote,
    CustomerProfile,
    EmailMessage,
    EndReason,
    Impersonation,
    Invoice,
    MarketplaceSubscription,
    OperationStatus,
    Subscription,
    SubscriptionItem,
    Tenant,
    User,
)
from app.sandbox.cloud import sandbox_for
from app.services import api_tokens, ordering, ssh_keys
from app.services.actors import Actor
from tests import factories
from tests.helpers import run_scheduled_tasks
from tests.sshkeys import ed25519_key

TENANT_NAME = "Nimbus Fuzz"
_keys = itertools.count(1)


@dataclass(frozen=True)
class World:
    tenant: Tenant
    customer: User
    admin: User
    support: User
    plan_id: int
    subscription_id: int
    item_id: int
    record_id: int  # a closed impersonation of our tenant, for the audit pages
    ids: dict[str, tuple[int, int]]  # URL parameter -> (ours, the other tenant's)


def build(clock: FrozenClock) -> World:
    tenant = factories.tenant(slug="default", name=TENANT_NAME, hosts=["localhost"])
    other = factories.tenant(slug="other", name="Other Hosting", hosts=["other.test"])
    customer = _customer(tenant, "casey@example.com")
    support = factories.user(tenant, email="sam@example.com", name="Sam Support", role=Role.SUPPORT)
    admin = factories.user(tenant, email="alex@example.com", name="Alex Admin", role=Role.TENANT_ADMIN)
    plan = factories.plan(tenant, name="Cloud S", allow_customer_location_selection=True)
    subscription = _running(tenant, customer, plan, clock)
    theirs = _customer(other, "olivia@example.com")
    their_plan = factories.plan(other, name="Elsewhere")
    their_subscription = _unprovisioned(other, theirs, their_plan)
    their_support = factories.user(other, email="sue@example.com", name="Sue Support", role=Role.SUPPORT)
    record, their_record = _audit(tenant, support, customer), _audit(other, their_support, theirs)
    item_id = subscription.items[0].id
    key, their_key = (ssh_keys.add_key(tenant=t, actor=Actor(owner), public_key=ed25519_key())
                      for t, owner in ((tenant, customer), (other, theirs)))
    invoice, their_invoice = factories.invoice(subscription), factories.invoice(their_subscription)
    return World(
        tenant=tenant, customer=customer, admin=admin, support=support, plan_id=plan.id,
        subscription_id=subscription.id, item_id=item_id, record_id=record.id,
        ids={"plan_id": (plan.id, their_plan.id), "product_id": (plan.product_id, their_plan.product_id),
             "service_type_id": (plan.service_type_id, their_plan.service_type_id),
             "subscription_id": (subscription.id, their_subscription.id),
             "item_id": (item_id, their_subscription.items[0].id), "customer_id": (customer.id, theirs.id),
             "impersonation_id": (record.id, their_record.id), "key_id": (key.id, their_key.id),
             "email_id": (_email(customer).id, _email(theirs).id),
             "invoice_id": (invoice.id, their_invoice.id),
             "credit_note_id": (_credit_note(invoice).id, _credit_note(their_invoice).id),
             "method_id": (factories.payment_method(tenant, customer).id,
                           factories.payment_method(other, theirs).id),
             "operation_id": (_operation(tenant, admin).id, _operation(other, their_support).id),
             "token_id": (_api_token(tenant, customer).id, _api_token(other, theirs).id),
             "purchase_id": (_purchase(tenant).id, _purchase(other).id)},
    )


def _purchase(tenant: Tenant) -> MarketplaceSubscription:
    """A purchase on the Microsoft marketplace that nobody has set up yet."""
    row = MarketplaceSubscription(tenant_id=tenant.id, marketplace=Marketplace.MICROSOFT, external_id=f"fuzz-{tenant.slug}",
                                  offer_id="servers", external_plan_id="standard", raw_state="PendingFulfillmentStart",
                                  state=ExternalState.PENDING)
    db.session.add(row)
    db.session.flush()
    return row


def _operation(tenant: Tenant, actor: User) -> CatalogueOperation:
    """A paused replace of a plan of its own, with no subscribers (pausing and resuming it touch nothing else)."""
    source, target = factories.plan(tenant, name="Old"), factories.plan(tenant, name="New")
    operation = CatalogueOperation(
        tenant_id=tenant.id, kind=CatalogueAction.REPLACE, actor_id=actor.id, actor_name=actor.email,
        plan_ids=[source.id], mapping={str(source.id): target.id}, details={}, status=OperationStatus.PAUSED,
        started_at=now(), updated_at=now())
    db.session.add(operation)
    db.session.flush()
    return operation


def _credit_note(invoice: Invoice) -> CreditNote:
    """A refund of 1.00 against `invoice` whose refund is not confirmed (so its page offers to try again)."""
    note = CreditNote(tenant_id=invoice.tenant_id, invoice_id=invoice.id, user_id=invoice.user_id, sequence=1,
                      number=f"{invoice.number}-CN01", reason=CreditNoteReason.OTHER, method=CreditNoteMethod.REFUND,
                      subtotal_minor=100, tax_minor=0, total_minor=100, currency=invoice.currency, created_at=now())
    db.session.add(note)
    db.session.commit()
    return note


def _customer(tenant: Tenant, email: str) -> User:
    user = factories.user(tenant, email=email, name="Casey Customer")
    db.session.add(CustomerProfile(user_id=user.id, full_name=user.name, billing_email=user.email,
                                   address="Hauptstrasse 1", city="Berlin", country="DE"))
    db.session.commit()
    factories.payment_method(tenant, user, default=False)  # paid plans are ordered with a card saved
    return user


def _running(tenant: Tenant, customer: User, plan, clock: FrozenClock) -> Subscription:  # type: ignore[no-untyped-def]
    """Ordered and provisioned in the sandbox cloud, as a worker would: one running server."""
    sandbox_for(tenant.id, "hetzner", now)
    subscription = ordering.place_order(tenant=tenant, actor=Actor(customer), plan_id=plan.id, requested_config={},
                                        quantity=1, auto_backorder=False, idempotency_key=f"fuzz-{next(_keys)}")
    clock.advance(seconds=30)
    run_scheduled_tasks()
    db.session.expire_all()
    subscription = db.session.get(Subscription, subscription.id)
    assert subscription.status == SubscriptionStatus.ACTIVE, subscription.status
    return subscription


def _unprovisioned(tenant: Tenant, customer: User, plan) -> Subscription:  # type: ignore[no-untyped-def]
    start = now()
    subscription = Subscription(
        tenant_id=tenant.id, user_id=customer.id, plan_id=plan.id, status=SubscriptionStatus.ACTIVE, quantity=1,
        price_minor=990, currency="EUR", interval=Interval.MONTH, requested_config=plan.config_defaults,
        activated_at=start, current_period_start=start, current_period_end=start + timedelta(days=30))
    db.session.add(subscription)
    db.session.flush()
    db.session.add(SubscriptionItem(tenant_id=tenant.id, subscription_id=subscription.id, status=ItemStatus.ACTIVE,
                                    provider="hetzner", config=plan.config_defaults, hostname="theirs-1"))
    db.session.commit()
    return subscription


def _audit(tenant: Tenant, support: User, customer: User) -> Impersonation:
    start = now() - timedelta(hours=2)
    record = Impersonation(tenant_id=tenant.id, support_user_id=support.id, customer_id=customer.id,
                           reason="Ticket #1: fuzz", started_at=start, ends_at=start + timedelta(hours=1),
                           ended_at=start + timedelta(minutes=5), end_reason=EndReason.STOPPED)
    db.session.add(record)
    db.session.commit()
    return record


def _email(customer: User) -> EmailMessage:
    """A failed email of the customer: one they read in their log, and an admin can send again."""
    message = EmailMessage(tenant_id=customer.tenant_id, user_id=customer.id, event="suspended",
                           to_address=customer.email, from_address="Fuzz <noreply@localhost>",
                           subject="Your subscription is suspended", text_body="See http://localhost/x",
                           html_body="<p>See</p>", status=EmailStatus.FAILED, attempts=5, created_at=now(),
                           failed_at=now(), last_error="SMTPServerDisconnected")
    db.session.add(message)
    db.session.commit()
    return message


def _api_token(tenant: Tenant, owner: User) -> ApiToken:
    """A personal API token (its account page lists it, with a revoke button)."""
    return api_tokens.create(tenant=tenant, actor=Actor(owner), name="fuzz", scopes=frozenset({Scope.READ}),
                             expires_in_days=30).token
