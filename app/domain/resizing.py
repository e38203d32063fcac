"""Changing a server's type: the steps, and when an item needs one.

The wanted type is the item's configuration (`server_type`, set when a plan change asks for another type; else
the `serverType` it was ordered with); the type the server has is recorded on the item when it is delivered and
after each resize. They differ: the server is stopped (gracefully, hard after a while), its type changed, and
started again if it was running. A failed resize is not tried again for the same type; a newly wanted type
starts afresh.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from enum import StrEnum
from typing import Any

SHUTDOWN_TIMEOUT = timedelta(minutes=2)  # then the power is cut
RESIZE_TIMEOUT = timedelta(minutes=30)  # a step that takes longer has failed


class ResizeStep(StrEnum):
    STOPPING = "stopping"  # a graceful shutdown was asked for
    RESIZING = "resizing"  # the cloud is changing the type
    STARTING = "starting"  # powered on again, as it was before
    FAILED = "failed"  # gave up on `resize_target`; the error is on the item

    @property
    def busy(self) -> bool:
        return self is not ResizeStep.FAILED


def desired_type(config: Mapping[str, Any]) -> str | None:
    """The server type the item should have."""
    wanted = config.get("server_type") or config.get("serverType")
    return wanted if isinstance(wanted, str) and wanted else None


def upgrades_disk(config: Mapping[str, Any]) -> bool:
    """Whether a resize grows the disk too (the default), which rules out a smaller type later."""
    return config.get("upgrade_disk", True) is not False


def needs_resize(config: Mapping[str, Any], actual: str | None, step: ResizeStep | None,
                 target: str | None) -> bool:
    """Whether there is resizing to do (or to carry on with) for an item in this state."""
    if step is not None and step.busy:
        return True
    wanted = desired_type(config)
    if wanted is None or actual is None or wanted == actual:
        return False
    return not (step is ResizeStep.FAILED and wanted == target)
