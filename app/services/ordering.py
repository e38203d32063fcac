"""Ordering: from a plan, a config and a quantity to a subscription whose servers are being provisioned.

A server plan's order also names its servers (`app.domain.server_names`: unique within the tenant, reached
at `<name>.<tenant slug>.<DNS_BASE_DOMAIN>`) and says which of the customer's SSH keys they get; the keys are
kept with each item (`app.domain.ssh_keys.snapshot`), so what the server was made with stays known, and a
rebuild applies the same keys, whatever happens to the customer's keys later. DigitalOcean servers need a
key: without one DigitalOcean emails a root password to the cloud account's owner, not to the customer.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from flask import current_app
from sqlalchemy import bindparam, exists, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload
from sqlalchemy.orm.attributes import set_committed_value

from app.clock import now
from app.domain.availability import Alternative, AlternativeKind, Availability, Offer, availability
from app.domain.catalogue import CatalogueState, Provider
from app.domain.configuration import config_errors, customer_fields, geography_key, merge_config
from app.domain.marketplaces import Marketplace
from app.domain.plan_offers import SERVER_TYPE_KEY, narrow_schema, unit_price
from app.domain.pricing import PlanPrice, PricingError, Quote, quote
from app.domain.server_names import name_problem, names, normalize, suggest, tenant_domain
from app.domain.ssh_keys import CONFIG_KEY, MAX_KEYS_PER_SERVER, snapshot
from app.domain.subscriptions import BackorderStatus, ItemStatus, SubscriptionStatus
from app.extensions import db
from app.models import (
    Backorder,
    CustomerProfile,
    PaymentMethod,
    Plan,
    Subscription,
    SubscriptionItem,
    TenantLike,
    User,
)
from app.providers.base import ErrorKind, ProviderError
from app.selectors.ssh_keys import KeyRow, chosen_keys
from app.services import availability_cache, events, work
from app.services.actors import Actor
from app.services.errors import InvalidInput, NotFound, ServiceError
from app.services.work import Job

log = logging.getLogger(__name__)


class ProfileIncomplete(ServiceError):
    """Ordering needs a complete billing profile first."""


class PaymentMethodRequired(ServiceError):
    """A paid plan needs a saved card first (free plans never ask)."""


class ConfigInvalid(InvalidInput):
    """The requested config breaks the service type's schema; `errors` maps field -> message."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("Please correct the highlighted choices.")
        self.errors = errors


class Unavailable(ServiceError):
    """The cloud cannot place this config now; `availability.alternatives` lists what it can."""

    status_code = 409

    def __init__(self, availability: Availability) -> None:
        super().__init__(availability.message or "This configuration is not available right now.")
        self.availability = availability


@dataclass(frozen=True)
class Servers:
    """What an order's servers are called and which keys they get."""

    names: tuple[str, ...]
    domain: str  # `<tenant slug>.<DNS base domain>`
    keys: tuple[KeyRow, ...]

    def fqdn(self, name: str) -> str:
        return f"{name}.{self.domain}"


NAME_TAKEN = "The name {name} is taken by another of your organisation's servers. Please choose another."
DIGITALOCEAN_NEEDS_A_KEY = ("DigitalOcean servers need at least one SSH key: without one, DigitalOcean would "
                            "email the root password to us instead of showing it to you. Add a key to your "
                            "account and tick it here.")


@dataclass(frozen=True)
class OrderDraft:
    """A validated order, priced: what the preview shows and what the order charges."""

    plan: Plan
    config: dict[str, Any]
    quantity: int
    quote: Quote


_PLAN = (select(Plan).where(Plan.id == bindparam("plan_id"))
         .options(joinedload(Plan.product), joinedload(Plan.service_type), joinedload(Plan.prices),
                  joinedload(Plan.locations)))


def orderable_plan(tenant: TenantLike, plan_id: int) -> Plan:
    """The tenant's plan, if it can be ordered now. Unknown or foreign ids: NotFound.

    One statement, or none when this transaction has read the plan already (the order form's view, then the
    order it places).
    """
    plan = (db.session.identity_map.get(db.session.identity_key(Plan, plan_id))
            or db.session.execute(_PLAN, {"plan_id": plan_id}).unique().scalar_one_or_none())
    if plan is None or plan.tenant_id != tenant.id:
        raise NotFound("There is no such plan.")
    if plan.state is not CatalogueState.PUBLISHED or plan.product.state is not CatalogueState.PUBLISHED:
        raise InvalidInput("This plan is no longer available for new orders. Please choose another plan.")
    return plan


def offered_schema(plan: Plan) -> dict[str, Any]:
    """The service type's schema narrowed to the plan's server types, locations and images: what the order form
    shows and the only choices an order may make."""
    return narrow_schema(plan.service_type.config_schema, plan.offers)


def price(plan: Plan, quantity: int, *, server_type: str | None = None, location: str | None = None) -> Quote:
    """The quote for `quantity` of `plan` with the chosen server type and location (the default's, or the
    lowest, price without them), now. The preview and the order both use this one function."""
    try:
        unit = unit_price(plan.price_minor, plan.offers, server_type=server_type, location=location)
        plan_price = PlanPrice(unit, plan.currency, plan.interval, plan.quantity_allowed, plan.max_quantity)
        return quote(plan_price, quantity=quantity, now=now())
    except PricingError as error:
        raise InvalidInput(str(error), field=_priced_field(str(error))) from None


def _priced_field(message: str) -> str:
    return "serverType" if "server type" in message else "location" if "location" in message else "quantity"


def draft_order(plan: Plan, requested: dict[str, Any], quantity: int) -> OrderDraft:
    """Merge and validate the config, and price the order. Raises ConfigInvalid or InvalidInput."""
    schema = offered_schema(plan)
    config = merge_config(schema, plan.config_defaults, requested, plan.allow_customer_location_selection)
    if errors := config_errors(schema, config):
        raise ConfigInvalid(errors)
    chosen_location = config.get(geography_key(schema) or "location")
    return OrderDraft(plan, config, quantity, price(plan, quantity, server_type=config.get(SERVER_TYPE_KEY),
                                                   location=chosen_location))


def check_availability(tenant: TenantLike, draft: OrderDraft, *, live: bool = False) -> Availability:
    """Ask the plan's cloud whether the config can be placed now (plain SaaS plans always can).

    The cloud's answer may be a few seconds old (`availability_cache`), which suits previews and
    alternatives; `live` asks the cloud now, as an order must.
    """
    service_type = draft.plan.service_type
    provider = service_type.provider
    if provider is Provider.NONE:
        return Availability(True)
    where = draft.config.get(geography_key(service_type.config_schema) or "location", "")
    server_type = draft.config["serverType"]
    try:
        found = availability_cache.check_availability(tenant, provider, server_type, where, live=live)
        if found.available and _queue_length(tenant, provider, server_type, where):
            found = _behind_the_queue(availability_cache.offers(tenant, provider, live=live), server_type, where)
    except ProviderError as error:
        if error.kind is ErrorKind.AUTH:
            log.error("tenant %s: %s refused the portal's credentials: %s", tenant.slug, provider, error)
            raise ServiceError("Ordering is not possible right now: the cloud account needs attention. "
                               "Our staff have been told.") from None
        raise ServiceError("We could not reach the cloud to check availability. Please try again in a minute."
                           ) from None
    return replace(found, alternatives=tuple(_orderable_alternatives(draft.plan, found.alternatives)))


_QUEUE_LENGTH = select(func.count()).select_from(Backorder).where(
    Backorder.tenant_id == bindparam("tenant_id"), Backorder.provider == bindparam("provider"),
    Backorder.server_type == bindparam("server_type"), Backorder.location == bindparam("location"),
    Backorder.status == BackorderStatus.WAITING)


def _queue_length(tenant: TenantLike, provider: Provider, server_type: str, location: str) -> int:
    return db.session.scalar(_QUEUE_LENGTH, {"tenant_id": tenant.id, "provider": provider,
                                             "server_type": server_type, "location": location}) or 0


def _behind_the_queue(offers: list[Offer], server_type: str, location: str) -> Availability:
    """Capacity that came back goes to the backorders first: a new order does not overtake them."""
    held = [replace(o, available=False) if (o.server_type, o.location) == (server_type, location) else o
            for o in offers]
    return replace(availability(held, server_type, location),
                   message=f"Customers who ordered earlier are waiting for {server_type} in {location}; "
                           "it goes to them first.")


def _orderable_alternatives(plan: Plan, alternatives: tuple[Alternative, ...]) -> list[Alternative]:
    """Only what this plan lets the customer pick: its schema's choices, other locations only if selectable."""
    schema = offered_schema(plan)
    choices = {field.name: set(field.choices) for field in
               customer_fields(schema, plan.config_defaults, plan.allow_customer_location_selection)}
    geo = geography_key(schema) or "location"
    return [alt for alt in alternatives
            if alt.server_type in choices.get("serverType", ())
            and (alt.location in choices.get(geo, ()) if geo in choices
                 else alt.kind is AlternativeKind.OTHER_SERVER_TYPE)]


def place_order(*, tenant: TenantLike, actor: Actor, plan_id: int, requested_config: dict[str, Any], quantity: int,
                auto_backorder: bool, idempotency_key: str, hostname: str | None = None,
                ssh_key_ids: Sequence[int] = ()) -> Subscription:
    """Order `plan_id` for the acting customer; the same `idempotency_key` always gives the same subscription.

    The customer needs a complete billing profile (ProfileIncomplete) and, for a plan with a price, a saved
    card (PaymentMethodRequired).

    A server plan's servers are named after `hostname` (a readable name is made up when it is None) and get
    the customer's keys `ssh_key_ids`; a name taken in the tenant, a key that is not the customer's, or no key
    on DigitalOcean raise InvalidInput naming the field (`hostname`, `ssh_keys`).

    Available: the subscription is created `pending_fulfillment` with its items and provisioning is queued;
    billing starts when the servers are delivered. Unavailable: raises Unavailable with alternatives, or,
    with `auto_backorder`, creates the subscription `pending_backorder` with a backorder in the queue.
    """
    customer = actor.user
    _check_idempotency_key(idempotency_key)
    if existing := _by_idempotency_key(tenant, idempotency_key):
        return _same_customer(existing, customer)
    has_card = _require_complete_profile(tenant, customer)
    plan = orderable_plan(tenant, plan_id)
    if plan.price_minor > 0 and not has_card:
        raise PaymentMethodRequired("Please add a card before ordering a paid plan.")
    draft = draft_order(plan, requested_config, quantity)
    if plan.is_free and plan.free_plan_limit is not None:
        try:
            _within_free_plan_limit(tenant, customer, plan)
        except InvalidInput:
            # The same form, submitted twice at once: the other request holds the lock first and wins.
            if existing := _by_idempotency_key(tenant, idempotency_key):
                return _same_customer(existing, customer)
            raise
    try:
        servers = _servers(tenant, customer, draft, hostname, ssh_key_ids)
    except InvalidInput:
        # The same form, submitted twice at once: the other request committed since the check above, so the name
        # it chose is taken now, by this very order.
        if existing := _by_idempotency_key(tenant, idempotency_key):
            return _same_customer(existing, customer)
        raise
    availability = check_availability(tenant, draft, live=True)  # never a kept answer: the order is real
    if not availability.available and (availability.permanent or not auto_backorder):
        raise Unavailable(availability)
    try:
        subscription = _create(tenant, actor, draft, servers, auto_backorder, idempotency_key,
                               backorder=not availability.available)
        if subscription.status is SubscriptionStatus.PENDING_FULFILLMENT:
            _queue_provisioning(subscription)
        placed_id = subscription.id
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        # The same form, submitted twice at once: the other request won. Or another order took a name first:
        # the unique index on (tenant, hostname) has the last word.
        existing = _by_idempotency_key(tenant, idempotency_key)
        if existing is not None:
            return _same_customer(existing, customer)
        if servers is not None and (taken := _taken(tenant, servers.names)):
            raise InvalidInput(NAME_TAKEN.format(name=taken), field="hostname") from None
        raise
    # The commit expired every attribute; the id cannot have changed, so reading it needs no new transaction.
    set_committed_value(subscription, "id", placed_id)
    log.info("order placed", extra={"subscription_id": placed_id})
    return subscription


def place_marketplace_order(*, tenant: TenantLike, actor: Actor, plan: Plan, quantity: int, marketplace: Marketplace,
                            idempotency_key: str, hostname: str | None = None,
                            ssh_key_ids: Sequence[int] = ()) -> Subscription:
    """A subscription bought on `marketplace` for the acting customer, on `plan` with the plan's defaults (the
    caller, app/services/marketplaces.py, has checked the plan and commits). The marketplace bills it, so no
    billing profile or card is asked for and no free-plan limit applies; the servers are named and keyed like an
    order's. Capacity is checked live: none now raises Unavailable (a marketplace purchase waits on no
    backorder: the customer is told and can come back)."""
    draft = draft_order(plan, {}, quantity)
    servers = _servers(tenant, actor.user, draft, hostname, ssh_key_ids)
    availability = check_availability(tenant, draft, live=True)
    if not availability.available:
        raise Unavailable(availability)
    subscription = _create(tenant, actor, draft, servers, False, idempotency_key, backorder=False)
    subscription.marketplace = marketplace
    _queue_provisioning(subscription)
    db.session.flush()
    return subscription


FREE_PLAN_LIMIT = ("You already have {held} free {product} plan{s}, the most one customer may hold. Cancel one, "
                   "or choose a paid plan.")
_LOCK_CUSTOMER = select(User.id).where(User.id == bindparam("user_id")).with_for_update()
# The customer's free subscriptions of the product, whichever of its plans (the limit is per product).
_HELD = (select(func.count()).select_from(Subscription).join(Plan, Plan.id == Subscription.plan_id)
         .where(Subscription.tenant_id == bindparam("tenant_id"), Subscription.user_id == bindparam("user_id"),
                Plan.product_id == bindparam("product_id"), Subscription.price_minor == 0,
                Subscription.status != SubscriptionStatus.CANCELED))


def _within_free_plan_limit(tenant: TenantLike, customer: User, plan: Plan) -> None:
    """Refuse a free plan to a customer who holds the plan's `free_plan_limit` of free subscriptions of its
    product already (one by default: a free trial per product, whichever free plan of it). The customer's row is
    locked first (PostgreSQL; SQLite has one writer anyway), so two orders at once count one after the other."""
    db.session.execute(_LOCK_CUSTOMER, {"user_id": customer.id})
    held = db.session.scalar(_HELD, {"tenant_id": tenant.id, "user_id": customer.id,
                                     "product_id": plan.product_id}) or 0
    if held >= (plan.free_plan_limit or 0):
        raise InvalidInput(FREE_PLAN_LIMIT.format(held=held, product=plan.product.name, s="" if held == 1 else "s"))


# One more subscription on the plan: counted, not edited, so its updated_at stays.
_COUNT_ORDER = (update(Plan).where(Plan.id == bindparam("plan_id"))
                .values(subscription_count=Plan.subscription_count + 1, updated_at=Plan.updated_at)
                .execution_options(synchronize_session=False))


def _servers(tenant: TenantLike, customer: User, draft: OrderDraft, hostname: str | None,
             key_ids: Sequence[int]) -> Servers | None:
    """The names and keys of the order's servers, checked; None for a plan without servers. Reads the chosen
    keys (when there are any) and whether a name is taken: a statement each."""
    provider = draft.plan.service_type.provider
    if provider is Provider.NONE:
        return None
    domain = tenant_domain(tenant.slug, current_app.config["DNS_BASE_DOMAIN"])
    name = suggest() if hostname is None else normalize(hostname)
    if problem := name_problem(name, draft.quantity, domain=domain):
        raise InvalidInput(problem, field="hostname")
    wanted = list(dict.fromkeys(key_ids))
    if len(wanted) > MAX_KEYS_PER_SERVER:
        raise InvalidInput(f"Choose at most {MAX_KEYS_PER_SERVER} keys.", field="ssh_keys")
    keys = chosen_keys(tenant, customer, wanted)
    if len(keys) != len(wanted):
        raise InvalidInput("A chosen key is no longer on your account. Please choose again.", field="ssh_keys")
    if provider is Provider.DIGITALOCEAN and not keys:
        raise InvalidInput(DIGITALOCEAN_NEEDS_A_KEY, field="ssh_keys")
    servers = Servers(tuple(names(name, draft.quantity)), domain, tuple(keys))
    if taken := _taken(tenant, servers.names):
        raise InvalidInput(NAME_TAKEN.format(name=taken), field="hostname")
    return servers


_TAKEN = (select(SubscriptionItem.hostname)
          .where(SubscriptionItem.tenant_id == bindparam("tenant_id"),
                 SubscriptionItem.hostname.in_(bindparam("names", expanding=True)))
          .order_by(SubscriptionItem.hostname).limit(1))


def _taken(tenant: TenantLike, wanted: Sequence[str]) -> str | None:
    """The first of `wanted` a server of the tenant is called already."""
    return db.session.scalar(_TAKEN, {"tenant_id": tenant.id, "names": list(wanted)})


def _create(tenant: TenantLike, actor: Actor, draft: OrderDraft, servers: Servers | None, auto_backorder: bool,
            key: str, *, backorder: bool) -> Subscription:
    plan = draft.plan
    status = SubscriptionStatus.PENDING_BACKORDER if backorder else SubscriptionStatus.PENDING_FULFILLMENT
    service_type = plan.service_type
    config = {**draft.config, CONFIG_KEY: snapshot(servers.keys)} if servers and servers.keys else draft.config
    subscription = Subscription(
        tenant_id=tenant.id, user_id=actor.user_id, plan_id=plan.id, status=status, quantity=draft.quantity,
        price_minor=draft.quote.recurring.amount, currency=plan.currency, interval=plan.interval,
        requested_config=draft.config, auto_backorder=auto_backorder, idempotency_key=key,
        items=[SubscriptionItem(tenant_id=tenant.id, status=ItemStatus.PENDING, service_kind=service_type.service_kind,
                                provider=service_type.provider, config=config, hostname=name,
                                fqdn=servers.fqdn(name)) for name in (servers.names if servers else ())],
    )
    db.session.add(subscription)
    events.record(subscription, "ordered", actor=actor, to_status=status, plan=plan.name,
                  price=draft.quote.recurring.amount, currency=plan.currency, quantity=draft.quantity)
    db.session.flush()  # the subscription, its items and its event, in one flush
    db.session.execute(_COUNT_ORDER, {"plan_id": plan.id})
    if backorder:
        db.session.add(_backorder(tenant, subscription, draft))
    return subscription


def _backorder(tenant: TenantLike, subscription: Subscription, draft: OrderDraft) -> Backorder:
    schema = draft.plan.service_type.config_schema
    return Backorder(tenant_id=tenant.id, subscription_id=subscription.id,
                     provider=draft.plan.service_type.provider, server_type=draft.config["serverType"],
                     location=draft.config.get(geography_key(schema) or "location", ""),
                     status=BackorderStatus.WAITING, created_at=now())


IDEMPOTENCY_KEY = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


def is_idempotency_key(key: str | None) -> bool:
    """Whether `key` is one an order form can carry (the form makes them: 32 hex digits)."""
    return bool(key) and IDEMPOTENCY_KEY.match(key) is not None


def _check_idempotency_key(key: str) -> None:
    if not is_idempotency_key(key):
        raise InvalidInput("This order form is out of date. Please reload the page and order again.")


_BY_KEY = select(Subscription).where(Subscription.tenant_id == bindparam("tenant_id"),
                                     Subscription.idempotency_key == bindparam("key"))


def _by_idempotency_key(tenant: TenantLike, key: str) -> Subscription | None:
    return db.session.scalar(_BY_KEY, {"tenant_id": tenant.id, "key": key})


def _same_customer(subscription: Subscription, customer: User) -> Subscription:
    if subscription.user_id != customer.id:
        raise InvalidInput("This order form has already been used. Please start a new order.")
    return subscription


# What an order asks of the customer, in one statement: their billing profile, and whether they saved a card.
_PROFILE_AND_CARD = select(
    CustomerProfile,
    exists().where(PaymentMethod.tenant_id == bindparam("tenant_id"), PaymentMethod.user_id == CustomerProfile.user_id,
                   PaymentMethod.removed_at.is_(None)).label("has_card"),
).where(CustomerProfile.user_id == bindparam("user_id"))


def _require_complete_profile(tenant: TenantLike, customer: User) -> bool:
    """Raise ProfileIncomplete unless the customer's billing profile is complete; whether they have a saved card
    (a paid plan needs one: PaymentMethodRequired)."""
    found = db.session.execute(_PROFILE_AND_CARD, {"tenant_id": tenant.id, "user_id": customer.id}).first()
    profile, has_card = found if found is not None else (None, False)
    set_committed_value(customer, "profile", profile)  # read here: nothing loads it again
    if profile is None or not profile.is_complete:
        raise ProfileIncomplete("Please complete your billing profile before ordering.")
    return bool(has_card)


def _queue_provisioning(subscription: Subscription) -> None:
    for item in subscription.items:  # created with the subscription: in the session, no statement
        work.later(Job.PROVISION_ITEM, item.id)


