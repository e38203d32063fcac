"""Access to a customer's server: its root password shown once, a new root password (Hetzner), and a rebuild
from an image. Only the customer, as themselves: support impersonating them is refused, as with passwords.

- A root password a cloud gave (app/services/provisioning.py, `reset_root_password`, `rebuild`) is kept sealed
  on the item until its customer asks to see it. `reveal_root_password` clears it with a conditional UPDATE
  (only the request that clears it shows it: two tabs never both do) and answers it; then it is gone. It is
  never logged, never emailed and never part of an event.
- A rebuild reinstalls one of the plan's images after the customer typed the server's name; the server's
  cloud-init (with the keys it was ordered with) runs again. The cloud tracks it like a power action (the
  server page shows its progress); another action running on the server, or a suspended or canceled
  subscription, refuses it, as it refuses a password reset.
"""

from __future__ import annotations

import logging

from flask import current_app
from sqlalchemy import update

from app.domain.cloud_init import UserDataError
from app.domain.policy import Do
from app.domain.server_access import confirms, gives_root_password, rebuild_images
from app.domain.ssh_keys import authorized_keys
from app.domain.subscriptions import ItemStatus, power_controls_enabled
from app.extensions import db
from app.models import SubscriptionItem, TenantLike
from app.providers.base import ActionInfo, ProviderError
from app.services import events, provisioning
from app.services.actors import Actor
from app.services.clouds import provider_for
from app.services.errors import Forbidden, InvalidInput, ServiceError
from app.services.secrets import Unreadable, seal, unseal
from app.services.servers import RESIZING_MESSAGE, customer_error, permitted_item

log = logging.getLogger(__name__)

NOT_WHILE_IMPERSONATING = ("Support staff cannot {what} while impersonating them. Only the customer can, logged in "
                           "as themselves.")
UNREADABLE = ("The root password can no longer be read (the portal's key was changed). Reset it to get a new "
              "one.")


def reveal_root_password(*, tenant: TenantLike, actor: Actor, subscription_id: int, item_id: int) -> str | None:
    """The root password waiting for the customer, which is then forgotten; None when there is none (never
    was, or shown already, perhaps a moment ago in another tab)."""
    item = _owned(tenant, actor, Do.ROOT_PASSWORD, subscription_id, item_id, "see a customer's root password")
    sealed = item.root_password_sealed
    cleared = sealed is not None and db.session.execute(
        update(SubscriptionItem)
        .where(SubscriptionItem.id == item.id, SubscriptionItem.root_password_sealed == sealed)
        .values(root_password_sealed=None)
        .execution_options(synchronize_session=False)
    ).rowcount == 1
    if not cleared:
        db.session.rollback()
        return None
    events.record(item.subscription, "root_password_shown", actor=actor, item=item)
    db.session.commit()
    try:
        return unseal(sealed)  # type: ignore[arg-type]  # not None: it was cleared
    except Unreadable:
        log.error("item %s: a sealed root password could not be read (key changed?)", item.id)
        raise ServiceError(UNREADABLE) from None


def reset_root_password(*, tenant: TenantLike, actor: Actor, subscription_id: int, item_id: int) -> None:
    """Have the cloud set a new root password, kept sealed for the customer to see once (Hetzner only)."""
    item = _server(tenant, actor, Do.ROOT_PASSWORD, subscription_id, item_id, "reset a customer's root password")
    if not gives_root_password(item.provider):
        db.session.rollback()
        raise InvalidInput(f"{item.provider.label} cannot show a new root password here. Log in with the SSH "
                           "key the server was ordered with, or rebuild it.")
    try:
        answer = provider_for(tenant, item.provider).reset_password(item.server_id or "")
    except ProviderError as error:
        db.session.rollback()
        raise customer_error(error) from None
    if not answer.root_password:
        db.session.rollback()
        raise ServiceError("The cloud did not give a new password. Please try again in a minute.")
    item.root_password_sealed = seal(answer.root_password)
    events.record(item.subscription, "root_password_reset", actor=actor, item=item, action_id=answer.action.id)
    db.session.commit()
    log.info("item %s: root password reset", item.id, extra={"user_id": actor.user_id})


def rebuild(*, tenant: TenantLike, actor: Actor, subscription_id: int, item_id: int, image: str,
            confirm: str) -> ActionInfo:
    """Reinstall the server from `image` (one of its plan's), erasing its disk, once `confirm` is its name.

    Raises InvalidInput (field `confirm` or `image`) and changes nothing when either is wrong; Conflict while
    another action runs on the server. A root password the cloud answers is kept for the customer (once)
    when the server has no SSH key; any password waiting from before is void and forgotten.
    """
    item = _server(tenant, actor, Do.REBUILD, subscription_id, item_id, "rebuild a customer's server")
    if not confirms(confirm, item.hostname, item.fqdn):
        db.session.rollback()
        raise InvalidInput(f"Type the server's name, {item.hostname or item.name}, to confirm. Nothing was changed.",
                           field="confirm")
    if image not in images_for(item):
        db.session.rollback()
        raise InvalidInput("Choose one of the images offered.", field="image")
    try:
        user_data = provisioning.user_data(item, tenant, current_app.config["DNS_BASE_DOMAIN"])
    except UserDataError as error:
        db.session.rollback()
        log.error("item %s: cannot rebuild: %s", item.id, error)
        raise ServiceError("This server cannot be rebuilt because of a configuration problem on our side. Our "
                           "staff have been told.") from None
    try:
        answer = provider_for(tenant, item.provider).rebuild(item.server_id or "", image=image, user_data=user_data)
    except ProviderError as error:
        db.session.rollback()
        raise customer_error(error) from None
    item.config = {**item.config, "image": image}
    keep = answer.root_password and not authorized_keys(item.config)
    item.root_password_sealed = seal(answer.root_password) if keep else None  # type: ignore[arg-type]
    events.record(item.subscription, "server_rebuilt", actor=actor, item=item, image=image,
                  action_id=answer.action.id)
    db.session.commit()
    log.info("item %s: rebuild from %s started", item.id, image, extra={"user_id": actor.user_id})
    return answer.action


def images_for(item: SubscriptionItem) -> tuple[str, ...]:
    """The images the item's server may be rebuilt from."""
    return rebuild_images(item.subscription.plan.service_type.config_schema, provisioning.image_of(item))


def _owned(tenant: TenantLike, actor: Actor, action: Do, subscription_id: int, item_id: int,
           what: str) -> SubscriptionItem:
    """The customer's item, for the customer acting as themselves."""
    if actor.impersonator is not None:
        log.warning("refused while impersonating: %s", what,
                    extra={"user_id": actor.user_id, "impersonator_id": actor.impersonator_id})
        raise Forbidden(NOT_WHILE_IMPERSONATING.format(what=what))
    return permitted_item(tenant, actor, action, subscription_id, item_id)


def _server(tenant: TenantLike, actor: Actor, action: Do, subscription_id: int, item_id: int,
            what: str) -> SubscriptionItem:
    """The customer's running server, while its controls are on."""
    item = _owned(tenant, actor, action, subscription_id, item_id, what)
    subscription = item.subscription
    if not power_controls_enabled(subscription.status):
        db.session.rollback()
        raise InvalidInput(f"Not while the subscription is {subscription.status.label.lower()}.")
    if item.status is not ItemStatus.ACTIVE or item.server_id is None:
        db.session.rollback()
        raise InvalidInput("This server is not ready yet.")
    if item.resizing:
        db.session.rollback()
        raise InvalidInput(RESIZING_MESSAGE)
    return item
