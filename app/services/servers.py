"""Server controls and live server info: for the people allowed to (the policy table), and for the lifecycle
(powering a suspended subscription's servers off, and on again when it is reinstated)."""

from __future__ import annotations

import logging
from enum import StrEnum

from app.domain.policy import Do
from app.domain.retry import MAX_ATTEMPTS, backoff_delay
from app.domain.subscriptions import ItemStatus, SubscriptionStatus, power_controls_enabled
from app.extensions import db
from app.models import SubscriptionItem, Tenant, TenantLike, User
from app.providers.base import ActionInfo, ErrorKind, PowerState, ProviderError, ServerInfo
from app.selectors.subscriptions import tenant_item
from app.services import events
from app.services.actors import Actor
from app.services.clouds import provider_for
from app.services.errors import Conflict, InvalidInput, NotFound, ServiceError
from app.services.provisioning import Next

log = logging.getLogger(__name__)

RESIZING_MESSAGE = "The server's type is being changed; its controls are back once that is done."


class PowerCommand(StrEnum):
    START = "start"
    STOP = "stop"
    RESTART = "restart"


def permitted_item(tenant: TenantLike, actor: Actor, action: Do, subscription_id: int, item_id: int
                   ) -> SubscriptionItem:
    """The tenant's item if `actor` may do `action` to its subscription, else NotFound or Forbidden, before
    anything reaches a cloud."""
    item = tenant_item(tenant, subscription_id, item_id)
    try:
        if item is None:
            raise NotFound("")
        actor.may(action, item.subscription)
    except NotFound:
        raise NotFound("There is no such server.") from None
    return item


def live_info(*, tenant: TenantLike, viewer: User, subscription_id: int, item_id: int) -> ServerInfo:
    """What the cloud says about the item's server right now."""
    item = permitted_item(tenant, Actor(viewer), Do.VIEW, subscription_id, item_id)
    if item.server_id is None:
        raise InvalidInput("This server has not been created yet.")
    try:
        return provider_for(tenant, item.provider).server_info(item.server_id)
    except ProviderError as error:
        raise customer_error(error) from None


def power(*, tenant: TenantLike, actor: Actor, subscription_id: int, item_id: int, command: PowerCommand) -> ActionInfo:
    """Start, stop or restart the item's server. Refused while suspended or canceled, or before it is ready."""
    item = permitted_item(tenant, actor, Do.POWER, subscription_id, item_id)
    if not power_controls_enabled(item.subscription.status):
        status = item.subscription.status.label.lower()
        raise InvalidInput(f"Server controls are off while the subscription is {status}.")
    if item.status is not ItemStatus.ACTIVE or item.server_id is None:
        raise InvalidInput("This server is not ready yet.")
    if item.resizing:
        raise InvalidInput(RESIZING_MESSAGE)
    cloud = provider_for(tenant, item.provider)
    run = {PowerCommand.START: cloud.power_on, PowerCommand.STOP: cloud.power_off,
           PowerCommand.RESTART: cloud.reboot}[command]
    try:
        action = run(item.server_id)
    except ProviderError as error:
        raise customer_error(error) from None
    events.record(item.subscription, f"server_{command.value}", actor=actor, item=item, action_id=action.id)
    db.session.commit()
    return action


def lifecycle_power(item_id: int, *, on: bool, attempt: int = 1) -> Next | None:
    """Power a suspended subscription's server off, or a reinstated one's on; retried while the cloud is busy.

    Does nothing if the subscription moved on meanwhile (reinstated before the power-off ran, and so on).
    """
    item = db.session.get(SubscriptionItem, item_id)
    wanted = SubscriptionStatus.ACTIVE if on else SubscriptionStatus.SUSPENDED
    if item is None or item.subscription.status is not wanted or item.server_id is None \
            or item.status is not ItemStatus.ACTIVE:
        return None
    cloud = provider_for(db.session.get(Tenant, item.tenant_id), item.provider)
    try:
        info = cloud.server_info(item.server_id)
        if info.power is (PowerState.RUNNING if on else PowerState.OFF):
            return None
        action = cloud.power_on(item.server_id) if on else cloud.power_off(item.server_id)
    except ProviderError as error:
        if (error.retryable or error.kind is ErrorKind.BUSY) and attempt < MAX_ATTEMPTS:
            return Next(backoff_delay(attempt, retry_after=error.retry_after), attempt + 1)
        log.warning("item %s: could not power %s: %s", item_id, "on" if on else "off", error)
        return None
    events.record(item.subscription, "server_powered_on" if on else "server_powered_off", item=item,
                  actor=Actor.system("reinstate" if on else "suspend"), action_id=action.id)
    db.session.commit()
    return None


def customer_error(error: ProviderError) -> ServiceError:
    """A cloud's refusal as the customer should read it (another action running: Conflict)."""
    if error.kind is ErrorKind.BUSY:
        return Conflict("Another action is still running on this server. Try again in a moment.")
    if error.kind is ErrorKind.NOT_FOUND:
        return ServiceError("The cloud no longer knows this server. Our staff have been told.")
    if error.kind in (ErrorKind.TRANSIENT, ErrorKind.RATE_LIMITED):
        return ServiceError("The cloud is not answering right now. Please try again in a minute.")
    return ServiceError(f"The cloud refused: {error.message}")
