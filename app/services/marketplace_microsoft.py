"""What the Microsoft commercial marketplace tells the portal (its webhook), and the changes the portal asks of it.

The webhook (`verify_webhook_token`, then `handle_webhook`):

- The bearer token is checked before anything is read: an RS256 signature by a key of the published key set, not
  expired (a few seconds of clock skew), for the publisher's app (`aud`), from the publisher's Entra tenant (`tid`),
  issued to the marketplace (`appid` for v1 tokens, `azp` for v2). The issuer is not checked: it differs between
  token versions (research: Microsoft's own reference implementation does the same). Any failure: 401, logged.
- Each operation id is handled once: the log line that handles it holds the id under a unique constraint, in the
  same transaction as the change, so a replay or eight deliveries at once apply it once (the others are logged
  as duplicates). A failure to reach Microsoft rolls everything back, so the next delivery handles it.
- The payload is never trusted alone: the operation is read again from Microsoft (Get Operation), and the
  subscription where its state matters.
- ChangePlan and ChangeQuantity are decided at once, well within Microsoft's 10 seconds, by the portal's own
  plan-change rules (a mapped, orderable target; a quantity the plan allows; a disk never shrinks; ...): the
  operation is PATCHed Success and the change applied as the marketplace (no charges: Microsoft bills), or PATCHed
  Failure and the portal's state left as it was (the webhook is then also answered 400, which Microsoft treats as
  a refusal too). A change the portal asked for itself (`request_change`) is applied when its webhook confirms it.
- Suspend, Reinstate, Renew and Unsubscribe go through the lifecycle (`WEBHOOK_ACTIONS`) as the marketplace:
  suspended keeps the data (servers off) for Microsoft's 30-day grace period; unsubscribed ends the subscription
  now and keeps its servers for the tenant's retention, at least seven days (app/services/lifecycle.py).
- An action this code does not know is logged and answered 200.

The portal's own requests (`request_change`, `request_unsubscribe`) ask Microsoft first and change nothing else
until the webhook confirms them.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.attributes import flag_modified

from app.clock import now
from app.domain.marketplaces import WEBHOOK_ACTIONS, Marketplace, WebhookAction
from app.domain.plan_changes import ChangeAction, ChangeRefused, Current, preview_change
from app.domain.policy import Do
from app.domain.subscriptions import SubscriptionStatus
from app.extensions import db
from app.models import MarketplacePlanMapping, MarketplaceSubscription, Plan, Subscription, TenantLike
from app.providers.marketplaces.base import ExternalOperation, MarketplaceError, MarketplaceErrorKind
from app.services import events, lifecycle, marketplaces, plan_changes
from app.services.actors import Actor
from app.services.errors import AuthenticationFailed, Conflict, InvalidInput, NotFound, ServiceError
from app.services.marketplace_connections import adapter_for, microsoft_token_checks

log = logging.getLogger(__name__)

MS = Marketplace.MICROSOFT
ACTOR = Actor.marketplace(MS.value)
LEEWAY_SECONDS = 5
GRACE_DAYS = 30  # Microsoft unsubscribes a suspended subscription after 30 days
UNREACHABLE = "We could not reach the Microsoft commercial marketplace just now. Please try again in a minute."
WAITING = "A change asked of Microsoft on {asked:%-d %b %Y %H:%M} is waiting for its confirmation."
_DECIDED = ("Succeeded", "Failed", "Conflict")

_key_sets: dict[str, jwt.PyJWKClient] = {}
_key_sets_lock = threading.Lock()


@dataclass(frozen=True)
class Receipt:
    """How the webhook was answered: `status` (200, or 400 for a refused change) and what was done."""

    status: int
    outcome: str
    duplicate: bool = False


# --- the webhook's token ------------------------------------------------------------------------------------------

def verify_webhook_token(tenant: TenantLike, authorization_header: str) -> dict[str, Any]:
    """The claims of a valid webhook token; AuthenticationFailed (logged, nothing changed) otherwise."""
    started = time.monotonic()
    try:
        return _claims(tenant, authorization_header)
    except AuthenticationFailed as refused:
        db.session.rollback()
        marketplaces.log(tenant, MS, source="webhook", action="token", ok=False, outcome=refused.message,
                         http_status=401, started=started)
        db.session.commit()
        log.warning("tenant %s: Microsoft webhook refused: %s", tenant.id, refused.message)
        raise


def _claims(tenant: TenantLike, header: str) -> dict[str, Any]:
    scheme, _, token = (header or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationFailed("No bearer token.")
    try:
        checks = microsoft_token_checks(tenant)
    except MarketplaceError as error:
        raise AuthenticationFailed(f"Not connected to Microsoft: {error.message}") from None
    try:
        key = _key_set(checks.jwks_url).get_signing_key_from_jwt(token.strip())
        claims = jwt.decode(token.strip(), key.key, algorithms=["RS256"], audience=checks.audience,
                            leeway=LEEWAY_SECONDS, options={"require": ["exp", "aud"], "verify_iss": False})
    except jwt.PyJWKClientConnectionError:
        raise AuthenticationFailed("The signing keys could not be fetched.") from None
    except (jwt.PyJWTError, ValueError) as error:
        raise AuthenticationFailed(f"Bad token: {type(error).__name__}: {str(error)[:120]}") from None
    tenant_id = claims.get("tid") or claims.get("http://schemas.microsoft.com/identity/claims/tenantid")
    if tenant_id != checks.tenant_id:
        raise AuthenticationFailed("The token is from another Entra tenant.")
    if claims.get("appid") not in checks.app_ids and claims.get("azp") not in checks.app_ids:
        raise AuthenticationFailed("The token was not issued to the marketplace (appid/azp).")
    return claims


def _key_set(url: str) -> jwt.PyJWKClient:
    with _key_sets_lock:
        if url not in _key_sets:
            _key_sets[url] = jwt.PyJWKClient(url, cache_keys=True, lifespan=3600, timeout=10)
        return _key_sets[url]


# --- the webhook ----------------------------------------------------------------------------------------------------

def handle_webhook(tenant: TenantLike, payload: dict[str, Any]) -> Receipt:
    """Apply the operation the (verified) webhook announces, once. InvalidInput for a payload without an operation,
    or one Microsoft does not know; ServiceError when Microsoft could not be asked (nothing changed; Microsoft
    delivers it again)."""
    started = time.monotonic()
    operation_id, external_id, action = (str(payload.get(key) or "")[:64] for key in ("id", "subscriptionId",
                                                                                        "action"))
    if not operation_id or not external_id or not action:
        raise InvalidInput("The webhook names no operation, subscription or action.")
    entry = marketplaces.log(tenant, MS, source="webhook", action=action, external_id=external_id,
                             operation_key=operation_id, outcome="received", detail={"operation": operation_id})
    try:
        db.session.flush()  # the operation id is taken here; a concurrent delivery waits, then fails
    except IntegrityError:
        db.session.rollback()
        return _duplicate(tenant, operation_id, external_id, action, started)
    try:
        receipt = _handle(tenant, operation_id, external_id, action, entry)
    except MarketplaceError as error:
        db.session.rollback()
        marketplaces.log(tenant, MS, source="webhook", action=action, external_id=external_id, ok=False,
                         outcome=f"not handled: {error.message}", http_status=error.status, started=started,
                         detail={"operation": operation_id})
        db.session.commit()
        if error.kind in (MarketplaceErrorKind.NOT_FOUND, MarketplaceErrorKind.INVALID):
            raise InvalidInput("Microsoft does not know this operation or subscription.") from None
        raise ServiceError(UNREACHABLE) from None
    except Exception:
        db.session.rollback()
        raise
    entry.outcome, entry.ok, entry.http_status = receipt.outcome[:300], receipt.status < 400, receipt.status
    entry.duration_ms = int((time.monotonic() - started) * 1000)
    try:
        db.session.commit()
    except IntegrityError:  # no row locks on SQLite: another delivery committed the same operation first
        db.session.rollback()
        return _duplicate(tenant, operation_id, external_id, action, started)
    log.info("tenant %s: Microsoft %s %s of %s: %s", tenant.id, action, operation_id, external_id, receipt.outcome)
    return receipt


def _duplicate(tenant: TenantLike, operation_id: str, external_id: str, action: str, started: float) -> Receipt:
    marketplaces.log(tenant, MS, source="webhook", action=action, external_id=external_id,
                     outcome="duplicate: this operation was handled already", http_status=200, started=started,
                     detail={"operation": operation_id})
    db.session.commit()
    return Receipt(200, "duplicate: this operation was handled already", duplicate=True)


def _handle(tenant: TenantLike, operation_id: str, external_id: str, action: str, entry: Any) -> Receipt:
    adapter = adapter_for(tenant, MS)
    operation = adapter.get_operation(external_id, operation_id)  # the payload alone is never trusted
    if operation.subscription_id and operation.subscription_id != external_id:
        return Receipt(400, "the operation belongs to another subscription: ignored")
    try:
        known = WebhookAction(operation.action)
    except ValueError:
        log.warning("tenant %s: unknown Microsoft action %r (operation %s)", tenant.id, operation.action, operation_id)
        return Receipt(200, f"unknown action {operation.action[:40]!r}: logged, nothing done")
    row = _external(tenant, external_id)
    if row is None:
        row = marketplaces.record(tenant, adapter.get_subscription(external_id))
        db.session.flush()
    entry.action = known.value
    if known.is_change:
        return _change(tenant, adapter, row, operation, known)
    if known in WEBHOOK_ACTIONS:
        return _lifecycle(tenant, adapter, row, operation, known)
    return Receipt(200, f"{known.value}: nothing to do here")


def _external(tenant: TenantLike, external_id: str) -> MarketplaceSubscription | None:
    return db.session.scalar(select(MarketplaceSubscription).where(
        MarketplaceSubscription.tenant_id == tenant.id, MarketplaceSubscription.marketplace == MS,
        MarketplaceSubscription.external_id == external_id).with_for_update())


# --- changes: decided within Microsoft's 10 seconds --------------------------------------------------------------

@dataclass(frozen=True)
class _Decision:
    target: Plan | None  # the portal plan (None: a purchase not set up yet)
    quantity: int
    price_minor: int
    resize_to: str | None


def _change(tenant: TenantLike, adapter: Any, row: MarketplaceSubscription, operation: ExternalOperation,
            action: WebhookAction) -> Receipt:
    plan_id = operation.plan_id or row.external_plan_id
    quantity = operation.quantity if action is WebhookAction.CHANGE_QUANTITY else row.quantity
    if operation.status in _DECIDED:
        # Decided at Microsoft already (by its own 10-second rule, or an answer to an earlier delivery).
        if operation.status != "Succeeded":
            _settle_pending(row, operation)
            return Receipt(200, f"{action.value} to {plan_id} x {quantity}: {operation.status} at Microsoft, "
                                "nothing changed")
        refusal = _try_apply(tenant, row, plan_id, quantity)
        return Receipt(200, f"{action.value} to {plan_id} x {quantity}: succeeded at Microsoft"
                            + (f", but not applied here: {refusal}" if refusal else ", applied"))
    try:
        decision = _decide(tenant, row, plan_id, quantity)
    except (InvalidInput, NotFound) as refused:
        _report(adapter, row, operation, success=False)
        _settle_pending(row, operation)
        return Receipt(400, f"refused {action.value} to {plan_id} x {quantity}: {refused.message}")
    if not _report(adapter, row, operation, success=True):
        current = adapter.get_operation(row.external_id, operation.id)
        if current.status != "Succeeded":
            _settle_pending(row, operation)
            return Receipt(200, f"{action.value}: {current.status} at Microsoft meanwhile, nothing changed")
    _apply(tenant, row, decision, plan_id, quantity, operation)
    return Receipt(200, f"accepted {action.value} to {plan_id} x {quantity}")


def _decide(tenant: TenantLike, row: MarketplaceSubscription, plan_id: str, quantity: int | None) -> _Decision:
    """Whether the portal can honour the change, by its own plan-change rules; InvalidInput with the reason."""
    target = marketplaces.plan_for(tenant, MS, row.offer_id, plan_id)
    if target is None:
        raise InvalidInput(f"the plan {plan_id!r} of {row.offer_id!r} is not mapped to a plan here")
    wanted = quantity or 1
    subscription = row.subscription
    if subscription is None:  # not set up yet: it will be set up on the new plan
        if (not target.quantity_allowed and wanted != 1) or (target.max_quantity and wanted > target.max_quantity):
            raise InvalidInput(f"{target.name} cannot be sold {wanted} times")
        return _Decision(target, wanted, 0, None)
    if subscription.status is not SubscriptionStatus.ACTIVE:
        raise InvalidInput(f"the subscription is {subscription.status.value} here")
    action = ChangeAction.QUANTITY if target.id == subscription.plan_id else ChangeAction.PLAN
    try:
        current_type, target_type, where = plan_changes._carried(subscription, target)
        disks = plan_changes._disks(tenant, subscription, current_type, target_type)
        current = Current(
            terms=plan_changes._terms(subscription.plan, current_type, disks.get(current_type)),
            quantity=subscription.quantity, price_minor=subscription.price_minor,
            period_start=subscription.current_period_start,  # type: ignore[arg-type]
            period_end=subscription.current_period_end,  # type: ignore[arg-type]
            downgrade_rule=subscription.plan.downgrade_rule, migration_target_id=subscription.plan.migration_target_id)
        if action is ChangeAction.QUANTITY and subscription.items:
            raise ChangeRefused("the number of servers of a subscription cannot be changed")
        if target.service_type.provider is not subscription.plan.service_type.provider:
            raise ChangeRefused("that plan runs on another cloud")
        price = plan_changes.recurring_price(target, wanted, server_type=target_type, location=where)
        found = preview_change(action, current, plan_changes._terms(target, target_type, disks.get(target_type)),
                               quantity=wanted, now=now(), new_price_minor=price, has_payment_method=True)
    except ChangeRefused as refused:
        raise InvalidInput(refused.message) from None
    except ServiceError as error:  # the cloud could not be asked about the new server type
        raise InvalidInput(error.message) from None
    return _Decision(target, wanted, found.new_price.amount, found.resize_to)


def _report(adapter: Any, row: MarketplaceSubscription, operation: ExternalOperation, *, success: bool) -> bool:
    """PATCH the operation; False when Microsoft decided it already (409)."""
    try:
        adapter.report_operation(row.external_id, operation.id, success=success)
    except MarketplaceError as error:
        if error.kind is MarketplaceErrorKind.CONFLICT:
            return False
        if not success and error.retryable:
            return True  # the webhook's 400 answer refuses it as well
        raise
    return True


def _apply(tenant: TenantLike, row: MarketplaceSubscription, decision: _Decision, plan_id: str, quantity: int | None,
           operation: ExternalOperation) -> None:
    """Move the portal's subscription to the accepted plan and quantity, as the marketplace: no charges."""
    before_plan, before_quantity = row.external_plan_id, row.quantity
    row.external_plan_id, row.quantity = plan_id[:100], quantity
    _settle_pending(row, operation)
    subscription = row.subscription
    if subscription is None or decision.target is None:
        return
    subscription = lifecycle.lock(tenant, subscription.id)
    before = subscription.plan.name
    lifecycle.switch_plan(subscription, plan=decision.target, quantity=decision.quantity,
                          price_minor=decision.price_minor, server_type=decision.resize_to)
    plan_changes._new_version(subscription)
    events.record(subscription, "plan_changed", actor=ACTOR, change="marketplace", from_plan=before,
                  plan=decision.target.name, quantity=decision.quantity, price=decision.price_minor,
                  currency=subscription.currency, resize_to=decision.resize_to, marketplace=MS.value,
                  external_plan=plan_id, from_external_plan=before_plan, from_quantity=before_quantity,
                  operation=operation.id, requested_by=operation.source or "Azure")


def _try_apply(tenant: TenantLike, row: MarketplaceSubscription, plan_id: str, quantity: int | None) -> str | None:
    """Apply a change Microsoft made without asking (or that the portal was late for); the refusal, if any. The
    portal's subscription is compared, not the external row: a poll may have recorded the new plan already."""
    subscription = row.subscription
    target = marketplaces.plan_for(tenant, MS, row.offer_id, plan_id)
    if subscription is not None and target is not None and (subscription.plan_id, subscription.quantity) == (
            target.id, quantity or 1):
        row.external_plan_id, row.quantity = plan_id[:100], quantity
        return None
    try:
        decision = _decide(tenant, row, plan_id, quantity)
    except (InvalidInput, NotFound) as refused:
        return refused.message
    _apply(tenant, row, decision, plan_id, quantity, ExternalOperation(id="", subscription_id=row.external_id,
                                                               action="", status="Succeeded"))
    return None


def _settle_pending(row: MarketplaceSubscription, operation: ExternalOperation) -> None:
    if row.pending_change and row.pending_change.get("operation_id") == operation.id:
        row.pending_change = None
        flag_modified(row, "pending_change")


# --- suspend, reinstate, renew, unsubscribe -----------------------------------------------------------------------

def _lifecycle(tenant: TenantLike, adapter: Any, row: MarketplaceSubscription, operation: ExternalOperation,
               action: WebhookAction) -> Receipt:
    found = adapter.get_subscription(row.external_id)
    marketplaces.record(tenant, found)
    _settle_pending(row, operation)
    if row.subscription_id is None:
        return Receipt(200, f"{action.value}: recorded ({found.raw_state}); not set up here yet")
    subscription = lifecycle.lock(tenant, row.subscription_id)
    grace = now() + timedelta(days=GRACE_DAYS) if action is WebhookAction.SUSPEND else None
    try:
        lifecycle.apply(subscription, WEBHOOK_ACTIONS[action], actor=ACTOR, grace_ends_at=grace,
                        reason=f"{action.value} at the Microsoft commercial marketplace")
    except InvalidInput as refused:
        outcome = f"{action.value}: nothing to do here ({refused.message})"
        # Renewed before the portal's period ended (Microsoft's term runs from its own activation time): the period
        # follows Microsoft's term instead.
        if (action is WebhookAction.RENEW and found.term_start and found.term_end
                and lifecycle.follow_marketplace_term(subscription, start=found.term_start, end=found.term_end,
                                                      actor=ACTOR)):
            outcome = f"Renew: subscription {subscription.id} runs to {found.term_end:%Y-%m-%d %H:%M} UTC"
    else:
        outcome = f"{action.value}: subscription {subscription.id} is {subscription.status.value}"
    if action is WebhookAction.REINSTATE and operation.status not in _DECIDED:
        _report(adapter, row, operation, success=subscription.status is SubscriptionStatus.ACTIVE)
    return Receipt(200, outcome)


# --- the portal asks Microsoft ---------------------------------------------------------------------------------------

def request_change(tenant: TenantLike, actor: Actor, subscription_id: int, plan_id: int | None = None,
                   quantity: int | None = None, version: int | None = None) -> MarketplaceSubscription:
    """Ask Microsoft to move the subscription to the portal plan `plan_id` or to `quantity` seats (one of them).
    Nothing changes here until Microsoft's webhook confirms it. InvalidInput/Conflict with a message for the
    customer; ServiceError when Microsoft could not be reached. `version` is the subscription's as the customer saw
    it: a subscription changed since answers Conflict."""
    if (plan_id is None) == (quantity is None):
        raise InvalidInput("Change either the plan or the quantity, one at a time.")
    row = _own(tenant, actor, subscription_id, Do.CHANGE_PLAN, version)
    external_plan = row.external_plan_id
    if plan_id is not None:
        external_plan = _external_plan(tenant, row, plan_id)
    _decide(tenant, row, external_plan, quantity if quantity is not None else row.quantity)
    started = time.monotonic()
    adapter = adapter_for(tenant, MS)
    try:
        if plan_id is not None:
            operation_id = adapter.change_plan(row.external_id, external_plan)
        else:
            operation_id = adapter.change_quantity(row.external_id, int(quantity))  # type: ignore[arg-type]
    except MarketplaceError as error:
        return _refused_by_microsoft(tenant, row, "change", error, started)
    row.pending_change = {"operation_id": operation_id, "action": "ChangePlan" if plan_id else "ChangeQuantity",
                          "plan_id": external_plan if plan_id else None, "quantity": quantity,
                          "asked_at": now().isoformat(), "asked_by": actor.user_id}
    marketplaces.log(tenant, MS, source="change", action=row.pending_change["action"], external_id=row.external_id,
                     outcome=f"asked Microsoft for {external_plan} x {quantity or row.quantity}; waiting for it",
                     http_status=202, started=started, detail={"operation": operation_id})
    db.session.commit()
    return row


def request_unsubscribe(tenant: TenantLike, actor: Actor, subscription_id: int) -> MarketplaceSubscription:
    """Cancel the subscription at Microsoft; the portal ends it when the Unsubscribe webhook arrives."""
    row = _own(tenant, actor, subscription_id, Do.CANCEL)
    started = time.monotonic()
    try:
        operation_id = adapter_for(tenant, MS).unsubscribe(row.external_id)
    except MarketplaceError as error:
        return _refused_by_microsoft(tenant, row, "unsubscribe", error, started)
    row.pending_change = {"operation_id": operation_id, "action": "Unsubscribe", "asked_at": now().isoformat(),
                          "asked_by": actor.user_id}
    marketplaces.log(tenant, MS, source="change", action="Unsubscribe", external_id=row.external_id,
                     outcome="asked Microsoft to cancel; waiting for it", http_status=202, started=started,
                     detail={"operation": operation_id})
    db.session.commit()
    return row


def _own(tenant: TenantLike, actor: Actor, subscription_id: int, permission: Do,
         version: int | None = None) -> MarketplaceSubscription:
    subscription = lifecycle.lock(tenant, subscription_id)
    actor.may(permission, subscription)
    if version is not None and subscription.version != version:
        raise Conflict(lifecycle.RELOAD)
    row = _external_of(tenant, subscription.id)
    if row is None:
        raise InvalidInput("This subscription is not billed by the Microsoft commercial marketplace.")
    if row.pending_change:
        asked = row.pending_change.get("asked_at")
        raise Conflict(WAITING.format(asked=datetime.fromisoformat(asked)) if asked
                       else "A change is waiting for Microsoft's confirmation.")
    return row


def _external_of(tenant: TenantLike, subscription_id: int) -> MarketplaceSubscription | None:
    return db.session.scalar(select(MarketplaceSubscription).where(
        MarketplaceSubscription.tenant_id == tenant.id, MarketplaceSubscription.marketplace == MS,
        MarketplaceSubscription.subscription_id == subscription_id, MarketplaceSubscription.retired_at.is_(None))
        .with_for_update().limit(1))


def change_targets(tenant: TenantLike, subscription: Subscription) -> list[Plan]:
    """The plans a subscription sold through Microsoft may be asked to move to: the other plans its offer is
    mapped to (Microsoft sells only its offer's plans)."""
    row = marketplaces.linked(tenant, subscription.id)
    if row is None:
        return []
    plans = db.session.scalars(
        select(Plan).join(MarketplacePlanMapping, MarketplacePlanMapping.plan_id == Plan.id).where(
            MarketplacePlanMapping.tenant_id == tenant.id, MarketplacePlanMapping.marketplace == MS,
            MarketplacePlanMapping.offer_id == row.offer_id, Plan.id != subscription.plan_id,
            Plan.tenant_id == tenant.id).order_by(Plan.sort_order, Plan.id))
    return list({plan.id: plan for plan in plans}.values())  # two of its plans may be sold as one of ours


def _external_plan(tenant: TenantLike, row: MarketplaceSubscription, plan_id: int) -> str:
    found = db.session.scalar(select(MarketplacePlanMapping.external_plan_id).where(
        MarketplacePlanMapping.tenant_id == tenant.id, MarketplacePlanMapping.marketplace == MS,
        MarketplacePlanMapping.offer_id == row.offer_id, MarketplacePlanMapping.plan_id == plan_id).limit(1))
    if found is None:
        raise InvalidInput("That plan is not sold through the Microsoft commercial marketplace for this offer.")
    return found


def _refused_by_microsoft(tenant: TenantLike, row: MarketplaceSubscription, what: str, error: MarketplaceError,
                          started: float) -> MarketplaceSubscription:
    external_id = row.external_id
    db.session.rollback()
    marketplaces.log(tenant, MS, source="change", action=what, external_id=external_id, ok=False,
                     outcome=error.message, http_status=error.status, started=started)
    db.session.commit()
    if error.kind in (MarketplaceErrorKind.INVALID, MarketplaceErrorKind.CONFLICT, MarketplaceErrorKind.NOT_FOUND):
        raise InvalidInput(f"Microsoft refused the change: {error.message}")
    raise ServiceError(UNREACHABLE)
