"""Background work of the catalogue's lifecycle: replace and retire operations, chunk by chunk."""

from __future__ import annotations

import logging
import time

from app.services.work import Job
from app.tasks import app_context, huey

log = logging.getLogger(__name__)

# One task runs chunks for this long, then queues itself again, so that other work is not kept waiting.
SLICE_SECONDS = 20.0


@huey.task()
def advance_catalogue_operation(operation_id: int) -> None:
    """Advance a replace or retire operation until it is done, paused or failed, or its time slice is over."""
    from app.services import catalogue_lifecycle

    more, ends = True, time.monotonic() + SLICE_SECONDS
    with app_context():
        try:
            while more and time.monotonic() < ends:
                more = catalogue_lifecycle.advance(operation_id)
        except Exception as error:  # the chunk rolled back; the operation stops until an admin resumes it
            log.exception("catalogue operation %s failed", operation_id)
            catalogue_lifecycle.fail(operation_id, f"{type(error).__name__}: {error}")
            return
    if more:
        advance_catalogue_operation(operation_id)


TASKS = {Job.ADVANCE_CATALOGUE_OPERATION: advance_catalogue_operation}
