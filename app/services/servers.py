"""Server controls and live server info, for the customer who owns the item."""

from __future__ import annotations

import logging
from enum import StrEnum

from app.domain.subscriptions import ItemStatus, power_controls_enabled
from app.extensions import db
from app.models import SubscriptionItem, Tenant, User
from app.providers.base import ActionInfo, ErrorKind, ProviderError, ServerInfo
from app.selectors.subscriptions import customer_item
from app.services import events
from app.services.actors import Actor
from app.services.clouds import provider_for
from app.services.errors import Conflict, InvalidInput, NotFound, ServiceError

log = logging.getLogger(__name__)


class PowerCommand(StrEnum):
    START = "start"
    STOP = "stop"
    RESTART = "restart"


def own_item(tenant: Tenant, user: User, subscription_id: int, item_id: int) -> SubscriptionItem:
    """The item if the user owns it, else NotFound, before anything reaches a cloud."""
    item = customer_item(tenant, user, subscription_id, item_id)
    if item is None:
        raise NotFound("There is no such server.")
    return item


def live_info(*, tenant: Tenant, viewer: User, subscription_id: int, item_id: int) -> ServerInfo:
    """What the cloud says about the item's server right now."""
    item = own_item(tenant, viewer, subscription_id, item_id)
    if item.server_id is None:
        raise InvalidInput("This server has not been created yet.")
    try:
        return provider_for(tenant.id, item.provider).server_info(item.server_id)
    except ProviderError as error:
        raise _customer_error(error) from None


def power(*, tenant: Tenant, actor: Actor, subscription_id: int, item_id: int, command: PowerCommand) -> ActionInfo:
    """Start, stop or restart the item's server. Refused while suspended or canceled, or before it is ready."""
    item = own_item(tenant, actor.user, subscription_id, item_id)
    if not power_controls_enabled(item.subscription.status):
        status = item.subscription.status.label.lower()
        raise InvalidInput(f"Server controls are off while the subscription is {status}.")
    if item.status is not ItemStatus.ACTIVE or item.server_id is None:
        raise InvalidInput("This server is not ready yet.")
    cloud = provider_for(tenant.id, item.provider)
    run = {PowerCommand.START: cloud.power_on, PowerCommand.STOP: cloud.power_off,
           PowerCommand.RESTART: cloud.reboot}[command]
    try:
        action = run(item.server_id)
    except ProviderError as error:
        raise _customer_error(error) from None
    events.record(item.subscription, f"server_{command.value}", actor=actor, item=item, action_id=action.id)
    db.session.commit()
    return action


def _customer_error(error: ProviderError) -> ServiceError:
    if error.kind is ErrorKind.BUSY:
        return Conflict("Another action is still running on this server. Try again in a moment.")
    if error.kind is ErrorKind.NOT_FOUND:
        return ServiceError("The cloud no longer knows this server. Our staff have been told.")
    if error.kind in (ErrorKind.TRANSIENT, ErrorKind.RATE_LIMITED):
        return ServiceError("The cloud is not answering right now. Please try again in a minute.")
    return ServiceError(f"The cloud refused: {error.message}")
