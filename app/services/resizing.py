"""Changing a server's type to the one its item's configuration wants, as a tracked action the customer sees.

A plan change that means another server type sets `config["server_type"]` and queues `Job.RESIZE_ITEM`;
`advance` then moves the item one step at a time (the task calls it again after the delay it answers):

1. idle: read the type the server has if the item does not record it; nothing to do when it is the wanted one.
   Otherwise remember whether the server was on, record the start and ask for a graceful shutdown (STOPPING);
   a server that is off already goes straight to 2.
2. STOPPING: once the server is off, change its type (`upgrade_disk` from the configuration, default true);
   a guest that has not shut down after `SHUTDOWN_TIMEOUT` has its power cut.
3. RESIZING: follow the cloud's action and its progress; when the server has the new type, power it on if it
   was on before (STARTING), else finish.
4. STARTING: done once it runs.

Each step is committed before the cloud is called and the cloud's action id after, so a worker that dies
anywhere leaves a state the next `advance` can carry on from: `stalled()` (the "resizing" periodic job) finds
items whose wanted type differs from the actual one, or whose step has not moved for a while, and queues them
again. Cloud errors that may pass (busy, rate limited, transient) are retried with backoff up to
`MAX_ATTEMPTS`; anything else, or too many, fails the resize: the message is kept on the item for the
customer's server card, the server is powered on again if it was on, and the same type is not tried again
until another one is wanted. Every start, outcome and retry is an event on the subscription.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import or_, select

from app.clock import now
from app.domain.resizing import (
    RESIZE_TIMEOUT,
    SHUTDOWN_TIMEOUT,
    ResizeStep,
    desired_type,
    needs_resize,
    upgrades_disk,
)
from app.domain.retry import MAX_ATTEMPTS, backoff_delay
from app.domain.subscriptions import ItemStatus, SubscriptionStatus, power_controls_enabled
from app.extensions import db
from app.models import Subscription, SubscriptionItem, Tenant
from app.providers.base import CloudProvider, ErrorKind, PowerState, ProviderError, ServerInfo
from app.services import events
from app.services.actors import Actor
from app.services.clouds import provider_for
from app.services.provisioning import Next

log = logging.getLogger(__name__)

RESIZING = Actor.system("resizing")
POLL_SECONDS = 2.0
STALLED_AFTER = timedelta(minutes=5)
_SEEN = " It is recorded in the subscription's history, which support sees."
GAVE_UP = "The cloud kept failing, so the server's type was not changed." + _SEEN
TOO_LONG = "The cloud took too long to change the server's type." + _SEEN
NOT_CHANGED = "The cloud could not change the server's type." + _SEEN


def advance(item_id: int, attempt: int = 1) -> Next | None:
    """Move the item's resize one step. Returns when to call again, or None when there is nothing (more) to do."""
    item = _locked(item_id)
    if item is None or not _workable(item):
        db.session.rollback()
        return None
    tenant = db.session.get(Tenant, item.tenant_id)
    cloud = provider_for(tenant, item.provider)  # type: ignore[arg-type]  # the item's tenant exists
    try:
        return _step(item, cloud, attempt)
    except ProviderError as error:
        return _on_error(item_id, cloud, error, attempt)


def stalled(limit: int = 200) -> list[int]:
    """Items with resizing to do that nobody has moved for `STALLED_AFTER` (a lost task, a dead worker)."""
    rows = db.session.execute(
        select(SubscriptionItem.id, SubscriptionItem.config, SubscriptionItem.server_type_actual,
               SubscriptionItem.resize_step, SubscriptionItem.resize_target)
        .join(SubscriptionItem.subscription)
        .where(SubscriptionItem.status == ItemStatus.ACTIVE, SubscriptionItem.server_id.is_not(None),
               SubscriptionItem.updated_at < now() - STALLED_AFTER,
               or_(Subscription.status == SubscriptionStatus.ACTIVE, SubscriptionItem.resize_step.in_(
                   [step.value for step in ResizeStep if step.busy])))
        .order_by(SubscriptionItem.id)
    )
    due = [row.id for row in rows
           if needs_resize(row.config or {}, row.server_type_actual, _step_of(row.resize_step), row.resize_target)]
    return due[:limit]


# --- Steps (the item's row is locked) -------------------------------------------------------------------


def _step(item: SubscriptionItem, cloud: CloudProvider, attempt: int) -> Next | None:
    step = _step_of(item.resize_step)
    if step is None or not step.busy:
        return _idle(item, cloud, step, attempt)
    info = cloud.server_info(item.server_id or "")
    if item.resize_step_at is not None and now() - item.resize_step_at > RESIZE_TIMEOUT:
        return _fail(item, cloud, info, TOO_LONG)
    if step is ResizeStep.STOPPING:
        return _stopping(item, cloud, info, attempt)
    if step is ResizeStep.RESIZING:
        return _resizing(item, cloud, info, attempt)
    return _starting(item, cloud, info, attempt)


def _idle(item: SubscriptionItem, cloud: CloudProvider, step: ResizeStep | None, attempt: int) -> Next | None:
    if item.server_type_actual is None:
        item.server_type_actual = cloud.server_info(item.server_id or "").server_type
    if not needs_resize(item.config or {}, item.server_type_actual, step, item.resize_target):
        db.session.commit()
        return None
    info = cloud.server_info(item.server_id or "")
    target = desired_type(item.config)
    if info.server_type == target:  # changed already (by an earlier run whose answer was lost)
        item.server_type_actual = target
        db.session.commit()
        return None
    if info.action is not None or info.power not in (PowerState.RUNNING, PowerState.OFF):
        raise ProviderError(ErrorKind.BUSY, "Another action is running on this server.")
    item.resize_target, item.resize_error = target, None
    item.resize_was_on = info.power is PowerState.RUNNING
    events.record(item.subscription, "server_resize_started", actor=RESIZING, item=item,
                  from_type=info.server_type, to_type=target, upgrade_disk=upgrades_disk(item.config))
    if info.power is PowerState.OFF:
        return _change_type(item, cloud, attempt)
    _enter(item, ResizeStep.STOPPING)
    db.session.commit()  # the step is kept before the cloud is asked: a crash in between resumes here
    item.resize_action_id = cloud.shutdown(item.server_id or "").id
    db.session.commit()
    return Next(POLL_SECONDS, attempt)


def _stopping(item: SubscriptionItem, cloud: CloudProvider, info: ServerInfo, attempt: int) -> Next | None:
    if info.power is PowerState.OFF and info.action is None:
        return _change_type(item, cloud, attempt)
    if info.action is None and info.power is PowerState.RUNNING:
        if item.resize_action_id is None:  # the shutdown was never sent (a crash before it)
            item.resize_action_id = cloud.shutdown(item.server_id or "").id
        elif now() - (item.resize_step_at or now()) > SHUTDOWN_TIMEOUT:
            item.resize_action_id = cloud.power_off(item.server_id or "").id
            events.record(item.subscription, "server_resize_power_cut", actor=RESIZING, item=item)
    return _wait(item, attempt)


def _change_type(item: SubscriptionItem, cloud: CloudProvider, attempt: int) -> Next:
    _enter(item, ResizeStep.RESIZING)
    db.session.commit()
    action = cloud.resize(item.server_id or "", item.resize_target or "", upgrade_disk=upgrades_disk(item.config))
    item.resize_action_id, item.resize_progress = action.id, action.progress
    db.session.commit()
    return Next(POLL_SECONDS, attempt)


def _resizing(item: SubscriptionItem, cloud: CloudProvider, info: ServerInfo, attempt: int) -> Next | None:
    if info.action is not None:
        item.resize_progress = info.action.progress
        return _wait(item, attempt)
    if info.server_type != item.resize_target:
        if item.resize_action_id is None:  # the request never reached the cloud (a crash before it)
            return _change_type(item, cloud, attempt)
        return _fail(item, cloud, info, NOT_CHANGED)
    item.server_type_actual, item.resize_progress = item.resize_target, 100
    if not (item.resize_was_on and power_controls_enabled(item.subscription.status)):
        return _done(item)
    _enter(item, ResizeStep.STARTING)
    db.session.commit()
    item.resize_action_id = cloud.power_on(item.server_id or "").id
    db.session.commit()
    return Next(POLL_SECONDS, attempt)


def _starting(item: SubscriptionItem, cloud: CloudProvider, info: ServerInfo, attempt: int) -> Next | None:
    if info.power is PowerState.RUNNING and info.action is None:
        return _done(item)
    if info.power is PowerState.OFF and info.action is None:
        item.resize_action_id = cloud.power_on(item.server_id or "").id
    return _wait(item, attempt)


def _done(item: SubscriptionItem) -> Next | None:
    events.record(item.subscription, "server_resized", actor=RESIZING, item=item, to_type=item.resize_target)
    log.info("item %s: server type changed to %s", item.id, item.resize_target)
    # The ordered type follows, so re-provisioning and every reader of `serverType` see the server as it is.
    item.config = {**item.config, "serverType": item.resize_target}
    _clear(item)
    item.resize_target = None
    again = needs_resize(item.config or {}, item.server_type_actual, None, None)  # wanted another meanwhile
    db.session.commit()
    return Next(POLL_SECONDS, 1) if again else None


def _fail(item: SubscriptionItem, cloud: CloudProvider, info: ServerInfo | None, message: str) -> None:
    """Give up on this type: tell the customer (on the card) and the staff (an event, a log line), and power the
    server on again if it was on and is off now."""
    log.warning("item %s: resize to %s failed: %s", item.id, item.resize_target, message)
    events.record(item.subscription, "server_resize_failed", actor=RESIZING, item=item, to_type=item.resize_target,
                  error=message)
    was_on = item.resize_was_on
    _clear(item)
    item.resize_step, item.resize_error = ResizeStep.FAILED.value, message
    item.resize_target = item.resize_target or desired_type(item.config)
    db.session.commit()
    if was_on and info is not None and info.power is PowerState.OFF and info.action is None:
        try:
            cloud.power_on(item.server_id or "")
        except ProviderError as error:
            log.warning("item %s: could not power on again after a failed resize: %s", item.id, error)
    return None


def _on_error(item_id: int, cloud: CloudProvider, error: ProviderError, attempt: int) -> Next | None:
    db.session.rollback()
    item = _locked(item_id)
    if item is None:
        return None
    log.warning("resizing item %s: %s (attempt %s)", item_id, error, attempt)
    begun = item.resize_step is not None and ResizeStep(item.resize_step).busy
    if error.retryable and attempt < MAX_ATTEMPTS:
        if begun:
            events.record(item.subscription, "server_resize_retry", actor=RESIZING, item=item, attempt=attempt,
                          error=error.message)
        db.session.commit()
        return Next(backoff_delay(attempt, retry_after=error.retry_after), attempt + 1)
    if not begun:  # nothing was changed yet: the periodic job looks again later
        db.session.rollback()
        return None
    try:
        info: ServerInfo | None = cloud.server_info(item.server_id or "")
    except ProviderError:
        info = None
    message = GAVE_UP if error.retryable else f"The cloud refused to change the server's type: {error.message}"
    return _fail(item, cloud, info, message)


# --- Helpers ---------------------------------------------------------------------------------------------


def _locked(item_id: int) -> SubscriptionItem | None:
    """The item, its row locked until the next commit (so two workers never run one step twice)."""
    return db.session.scalar(select(SubscriptionItem).where(SubscriptionItem.id == item_id).with_for_update())


def _workable(item: SubscriptionItem) -> bool:
    if item.status is not ItemStatus.ACTIVE or item.server_id is None:
        return False
    if item.subscription.status is SubscriptionStatus.CANCELED:
        return False
    return item.resizing or power_controls_enabled(item.subscription.status)  # a begun resize is finished


def _step_of(value: str | None) -> ResizeStep | None:
    return ResizeStep(value) if value else None


def _enter(item: SubscriptionItem, step: ResizeStep) -> None:
    item.resize_step, item.resize_step_at = step.value, now()
    item.resize_action_id, item.resize_progress = None, item.resize_progress or 0


def _wait(item: SubscriptionItem, attempt: int) -> Next:
    item.updated_at = now()  # progress, seen by `stalled`
    db.session.commit()
    return Next(POLL_SECONDS, attempt)


def _clear(item: SubscriptionItem) -> None:
    item.resize_step = item.resize_action_id = item.resize_progress = item.resize_was_on = None
    item.resize_step_at = item.resize_error = None
