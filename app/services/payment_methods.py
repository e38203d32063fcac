"""Customers' saved cards: added on the payment provider's hosted page, made the default, removed.

Card numbers never reach the portal: `start_setup` sends the customer to the provider's page, and
`finish_setup` reads back what they saved (ids, brand, last four digits, expiry). Finishing is idempotent:
the customer's return and the provider's `checkout.session.completed` webhook may both arrive, in any order,
and the card is stored once. The first card becomes the default.

Only the account owner changes their cards: support impersonating the customer is refused (as with the
password). A customer keeps at least one card while they owe money or have paid subscriptions running:
removing the last one is refused then, with the reason.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import url_for
from sqlalchemy import exists, select, update
from sqlalchemy.exc import IntegrityError

from app.clock import now
from app.domain.accounts import Role
from app.domain.billing import InvoiceStatus, SetupStatus
from app.domain.subscriptions import SubscriptionStatus
from app.extensions import db
from app.models import Invoice, PaymentCustomer, PaymentMethod, PaymentSetup, Subscription, TenantLike, User
from app.providers.payments.base import PaymentError, PaymentErrorKind, PaymentProvider
from app.services.accounts import NOT_WHILE_IMPERSONATING
from app.services.actors import Actor
from app.services.errors import Forbidden, InvalidInput, NotFound, ServiceError
from app.services.payments import provider_for

log = logging.getLogger(__name__)

UNAVAILABLE = "The payment provider could not be reached. Nothing was changed; please try again in a minute."
# Subscriptions that will be charged again: the last card cannot go while one of them runs.
_PAYING = (SubscriptionStatus.ACTIVE, SubscriptionStatus.PENDING_FULFILLMENT, SubscriptionStatus.SUSPENDED,
           SubscriptionStatus.PENDING_BACKORDER)
LAST_CARD = ("This is your only card, and {reason}: add another card first, then remove this one. "
             "(Cancel your paid subscriptions and settle open invoices to go without a card.)")


@dataclass(frozen=True)
class SetupOutcome:
    """What became of a hosted card page: the card saved (or None while the page is still open) and where
    the customer wanted to go next."""

    status: SetupStatus
    method: PaymentMethod | None
    next_url: str
    invoice_id: int | None


def _owner(actor: Actor, verb: str) -> User:
    """The customer acting for themselves; support acting as them is refused."""
    if actor.impersonator is not None:
        log.warning("refused while impersonating: %s a payment method", verb,
                    extra={"user_id": actor.user_id, "impersonator_id": actor.impersonator_id})
        raise Forbidden(NOT_WHILE_IMPERSONATING.format(what="payment methods"))
    if actor.user is None or actor.user.role is not Role.CUSTOMER:
        raise Forbidden("Only a customer has payment methods.")
    return actor.user


def local_path(target: str | None) -> str:
    """`target` if it is a path on this site (`/order/3?quantity=2`), else "" (no open redirects)."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")) or len(target) > 500:
        return ""
    if any(ord(ch) < 32 or ch == "\\" for ch in target) or urlsplit(target).scheme or urlsplit(target).netloc:
        return ""
    return target


def _unavailable(error: PaymentError) -> ServiceError:
    log.warning("payment provider: %s", error)
    if error.kind is PaymentErrorKind.AUTH:
        return ServiceError("Card payments are not set up for this portal right now. Please contact us.")
    return ServiceError(UNAVAILABLE)


def has_card(tenant: TenantLike, user: User) -> bool:
    """Whether the customer has a saved card (the order gate for paid plans asks this)."""
    return bool(db.session.scalar(select(exists().where(
        PaymentMethod.tenant_id == tenant.id, PaymentMethod.user_id == user.id, PaymentMethod.removed_at.is_(None)))))


def ensure_customer(*, tenant: TenantLike, actor: Actor, provider: PaymentProvider | None = None) -> PaymentCustomer:
    """The customer's record at the payment provider, made once (unique per user and provider)."""
    owner = _owner(actor, "add")
    provider = provider or provider_for(tenant)
    query = select(PaymentCustomer).where(PaymentCustomer.user_id == owner.id,
                                          PaymentCustomer.provider == provider.name)
    if (row := db.session.scalar(query)) is not None:
        return row
    try:  # the same key every time: two tabs, or a retry after a lost answer, make one customer there
        external_id = provider.create_customer(email=owner.email, name=owner.name, reference=str(owner.id),
                                               idempotency_key=f"customer-{tenant.id}-{owner.id}")
    except PaymentError as error:
        raise _unavailable(error) from None
    db.session.add(PaymentCustomer(tenant_id=tenant.id, user_id=owner.id, provider=provider.name,
                                   external_id=external_id, created_at=now()))
    try:
        db.session.commit()
    except IntegrityError:  # made a moment ago by another request
        db.session.rollback()
    return db.session.scalars(query).one()


def start_setup(*, tenant: TenantLike, actor: Actor, next_url: str | None = None, invoice_id: int | None = None,
                return_url: str | None = None) -> str:
    """Open a hosted card page for the acting customer; returns the URL to send their browser to.

    `next_url` (a local path, anything else is dropped) is where they go once the card is saved; `invoice_id`
    (one of their own invoices) is paid with the new card. `return_url` is the absolute address of the
    page they come back to (default: billing.method_added of this request's host)."""
    owner = _owner(actor, "add")
    if invoice_id is not None and db.session.scalar(select(Invoice.id).where(
            Invoice.id == invoice_id, Invoice.tenant_id == tenant.id, Invoice.user_id == owner.id)) is None:
        raise NotFound("There is no such invoice.")
    try:
        provider = provider_for(tenant)
    except PaymentError as error:
        raise _unavailable(error) from None
    customer = ensure_customer(tenant=tenant, actor=actor, provider=provider)
    back = return_url or url_for("billing.method_added", _external=True)
    try:
        page = provider.start_card_setup(
            customer_id=customer.external_id, success_url=f"{back}?session_id={{CHECKOUT_SESSION_ID}}",
            cancel_url=f"{back}?cancelled=1", metadata={"portal_user": str(owner.id), "tenant": tenant.slug})
    except PaymentError as error:
        raise _unavailable(error) from None
    db.session.add(PaymentSetup(tenant_id=tenant.id, user_id=owner.id, provider=provider.name,
                                external_id=page.external_id, status=SetupStatus.OPEN,
                                next_url=local_path(next_url), invoice_id=invoice_id, created_at=now()))
    db.session.commit()
    log.info("card setup started", extra={"user_id": owner.id, "setup": page.external_id})
    return page.url


def finish_setup(*, tenant: TenantLike, actor: Actor, session_id: str) -> SetupOutcome:
    """Store the card saved on hosted page `session_id`, once, however often this is called.

    The customer coming back (their own setup only) and the webhook (Actor.system) both call this."""
    owner = _owner(actor, "add") if actor.user is not None else None
    query = select(PaymentSetup).where(PaymentSetup.tenant_id == tenant.id, PaymentSetup.external_id == session_id)
    if owner is not None:
        query = query.where(PaymentSetup.user_id == owner.id)
    setup = db.session.scalar(query)
    if setup is None:
        raise NotFound("There is no such card setup.")
    if setup.status is SetupStatus.OPEN:
        _complete(tenant, setup)
    method = db.session.get(PaymentMethod, setup.payment_method_id) if setup.payment_method_id else None
    return SetupOutcome(setup.status, method, setup.next_url, setup.invoice_id)


def _complete(tenant: TenantLike, setup: PaymentSetup) -> None:
    try:
        provider = provider_for(tenant)
        if provider.name != setup.provider:  # the tenant changed accounts since: this page is gone
            raise PaymentError(PaymentErrorKind.NOT_FOUND, "the setup belongs to another account")
        result = provider.setup_result(setup.external_id)
    except PaymentError as error:
        if error.kind is PaymentErrorKind.NOT_FOUND:
            setup.status = SetupStatus.EXPIRED
            db.session.commit()
            return
        raise _unavailable(error) from None
    if result.status == "expired":
        setup.status = SetupStatus.EXPIRED
        db.session.commit()
        return
    if result.status != "complete" or result.card is None:
        return
    card = result.card
    method = db.session.scalar(select(PaymentMethod).where(PaymentMethod.provider == setup.provider,
                                                           PaymentMethod.external_id == card.external_id))
    if method is None:
        method = PaymentMethod(tenant_id=tenant.id, user_id=setup.user_id, provider=setup.provider,
                               external_id=card.external_id, brand=card.brand[:20], last4=card.last4[-4:],
                               exp_month=card.exp_month, exp_year=card.exp_year, created_at=now(),
                               is_default=not _has_default(setup.user_id))
        db.session.add(method)
    setup_id, method_external = setup.id, card.external_id
    try:
        db.session.flush()
        setup.status, setup.payment_method_id, setup.completed_at = SetupStatus.COMPLETE, method.id, now()
        db.session.commit()
    except IntegrityError:  # the other arrival (return page or webhook) stored it a moment ago
        db.session.rollback()
        db.session.expire_all()
        done = db.session.get(PaymentSetup, setup_id)
        if done is not None and done.status is SetupStatus.OPEN:
            stored = db.session.scalar(select(PaymentMethod.id).where(PaymentMethod.provider == done.provider,
                                                                      PaymentMethod.external_id == method_external))
            done.status, done.payment_method_id, done.completed_at = SetupStatus.COMPLETE, stored, now()
            db.session.commit()
        return
    log.info("card saved", extra={"user_id": setup.user_id, "payment_method_id": method.id})


def _has_default(user_id: int) -> bool:
    return bool(db.session.scalar(select(exists().where(
        PaymentMethod.user_id == user_id, PaymentMethod.is_default, PaymentMethod.removed_at.is_(None)))))


def cancelled_setup_next(*, tenant: TenantLike, actor: Actor) -> str:
    """Where a customer who left the hosted page without saving wanted to go (their latest open setup)."""
    owner = _owner(actor, "add")
    return db.session.scalar(select(PaymentSetup.next_url).where(
        PaymentSetup.tenant_id == tenant.id, PaymentSetup.user_id == owner.id,
        PaymentSetup.status == SetupStatus.OPEN).order_by(PaymentSetup.id.desc()).limit(1)) or ""


def _own_method(tenant: TenantLike, owner: User, method_id: int) -> PaymentMethod:
    row = db.session.scalar(select(PaymentMethod).where(
        PaymentMethod.id == method_id, PaymentMethod.tenant_id == tenant.id, PaymentMethod.user_id == owner.id,
        PaymentMethod.removed_at.is_(None)))
    if row is None:
        raise NotFound("There is no such card.")
    return row


def make_default(*, tenant: TenantLike, actor: Actor, method_id: int) -> PaymentMethod:
    """Charge this card from now on (invoices finalized from now on, and retries of open ones)."""
    owner = _owner(actor, "change")
    method = _own_method(tenant, owner, method_id)
    if not method.is_default:
        db.session.execute(update(PaymentMethod).where(PaymentMethod.user_id == owner.id, PaymentMethod.is_default)
                           .values(is_default=False).execution_options(synchronize_session=False))
        method.is_default = True
        db.session.commit()
        log.info("default card changed", extra={"user_id": owner.id, "payment_method_id": method.id})
    return method


def removal_problem(tenant: TenantLike, owner: User) -> str | None:
    """Why the customer's last card cannot be removed now, or None when it can."""
    owes = db.session.scalar(select(exists().where(
        Invoice.tenant_id == tenant.id, Invoice.user_id == owner.id, Invoice.status == InvoiceStatus.OPEN,
        Invoice.amount_due_minor > 0)))
    if owes:
        return "you have an open invoice"
    paying = db.session.scalar(select(exists().where(
        Subscription.tenant_id == tenant.id, Subscription.user_id == owner.id, Subscription.status.in_(_PAYING),
        Subscription.price_minor > 0)))
    return "you have paid subscriptions running" if paying else None


def remove(*, tenant: TenantLike, actor: Actor, method_id: int) -> PaymentMethod:
    """Detach the card at the provider and forget it here. The last card stays while the customer has an
    open invoice or a paid subscription (InvalidInput says so); when the default card goes, the newest
    other card becomes the default."""
    owner = _owner(actor, "remove")
    method = _own_method(tenant, owner, method_id)
    others = db.session.scalars(select(PaymentMethod).where(
        PaymentMethod.user_id == owner.id, PaymentMethod.removed_at.is_(None), PaymentMethod.id != method.id)
        .order_by(PaymentMethod.created_at.desc(), PaymentMethod.id.desc())).all()
    if not others and (reason := removal_problem(tenant, owner)):
        raise InvalidInput(LAST_CARD.format(reason=reason))
    try:
        provider = provider_for(tenant)
        if provider.name == method.provider:
            provider.detach(method.external_id)
    except PaymentError as error:
        if error.kind is not PaymentErrorKind.NOT_FOUND:  # gone there already: forget it here too
            raise _unavailable(error) from None
    was_default = method.is_default
    method.removed_at, method.is_default = now(), False
    db.session.flush()
    if was_default and others:
        others[0].is_default = True
    db.session.commit()
    log.info("card removed", extra={"user_id": owner.id, "payment_method_id": method.id})
    return method
