"""A subscription's dates, past and ahead, as the customer reads them on its page.

Ordered, active since, renews or ends on, suspended on, canceled if unpaid on, canceled on, servers deleted
on: every date that matters is shown before it comes, computed from the subscription's own dates and the
tenant's retention period.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from app.domain.subscriptions import SubscriptionStatus

_S = SubscriptionStatus


@dataclass(frozen=True, slots=True)
class Entry:
    label: str
    at: datetime
    done: bool  # in the past (or happened); else expected


@dataclass(frozen=True, slots=True)
class Dates:
    """What a subscription knows about its own life."""

    status: SubscriptionStatus
    ordered_at: datetime
    activated_at: datetime | None = None
    period_end: datetime | None = None
    effective_at: datetime | None = None  # pending_cancel: ends; suspended: grace ends; canceled: ended
    canceled_at: datetime | None = None
    suspended_at: datetime | None = None
    servers_delete_at: datetime | None = None
    purged_at: datetime | None = None
    auto_renew: bool = True
    free: bool = False
    billed_elsewhere: bool = False  # a marketplace renews and bills it


def timeline(dates: Dates, *, retention_days: int, now: datetime) -> list[Entry]:
    """The subscription's dates in order: what happened, then what will happen if nothing changes."""
    entries = [Entry("Ordered", dates.ordered_at, True)]
    if dates.activated_at:
        entries.append(Entry("Active since", dates.activated_at, True))
    entries.extend(_ahead(dates, timedelta(days=retention_days)))
    return [Entry(e.label, e.at, e.done or e.at <= now) for e in entries]


def _ahead(d: Dates, retention: timedelta) -> list[Entry]:
    if d.status is _S.ACTIVE and d.period_end:
        if d.auto_renew:
            return [] if d.free or d.billed_elsewhere else [Entry("Renews on", d.period_end, False)]
        return [Entry("Ends on", d.period_end, False), Entry("Servers deleted on", d.period_end + retention, False)]
    if d.status is _S.PENDING_CANCEL and d.effective_at:
        return [Entry("Ends on", d.effective_at, False), Entry("Servers deleted on", d.effective_at + retention, False)]
    if d.status is _S.SUSPENDED and d.suspended_at:
        ahead = [Entry("Suspended on", d.suspended_at, True)]
        if d.effective_at:
            unpaid = "Canceled if unpaid at its marketplace on" if d.billed_elsewhere else "Canceled if unpaid on"
            ahead += [Entry(unpaid, d.effective_at, False),
                      Entry("Servers deleted on", d.effective_at + retention, False)]
        return ahead
    if d.status is _S.CANCELED and d.canceled_at:
        deleted = d.purged_at or d.servers_delete_at
        ahead = [Entry("Canceled on", d.canceled_at, True)]
        if deleted:
            ahead.append(Entry("Servers deleted on", deleted, d.purged_at is not None))
        return ahead
    return []
