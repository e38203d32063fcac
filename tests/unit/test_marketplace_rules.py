"""The marketplaces' rules (app/domain/marketplaces.py) and what the timeline says of what they bill: pure, no database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.domain.marketplaces import (
    MICROSOFT_STATES,
    STACKIT_STATES,
    ExternalState,
    Marketplace,
    UnknownState,
    external_state,
    sync_action,
)
from app.domain.subscriptions import Action, SubscriptionStatus, next_milestone
from app.domain.timeline import Dates, timeline

S, E = SubscriptionStatus, ExternalState
NOW = datetime(2026, 12, 6, 12, tzinfo=UTC)


def test_every_state_of_both_marketplaces_has_a_meaning():
    assert set(MICROSOFT_STATES.values()) == {E.PENDING, E.ACTIVE, E.SUSPENDED, E.CANCELLED}
    assert set(STACKIT_STATES.values()) == set(ExternalState)
    assert external_state(Marketplace.STACKIT, "SUBSCRIPTION_INACTIVE") is E.SUSPENDED
    with pytest.raises(UnknownState, match="unknown state"):
        external_state(Marketplace.MICROSOFT, "Transferred")


@pytest.mark.parametrize(("portal", "external", "action"), [
    (S.ACTIVE, E.ACTIVE, None),
    (S.ACTIVE, E.SUSPENDED, Action.SUSPEND),
    (S.SUSPENDED, E.ACTIVE, Action.REINSTATE),
    (S.ACTIVE, E.CANCELLING, Action.CANCEL),
    (S.PENDING_CANCEL, E.CANCELLING, None),
    (S.PENDING_CANCEL, E.ACTIVE, Action.RESUME),
    (S.ACTIVE, E.CANCELLED, Action.TERMINATE),
    (S.PENDING_FULFILLMENT, E.REJECTED, Action.TERMINATE),
    (S.SUSPENDED, E.CANCELLED, Action.TERMINATE),
    (S.CANCELED, E.CANCELLED, None),
    (S.CANCELED, E.ACTIVE, None),  # canceled is final, whatever the marketplace says later
    (S.PENDING_FULFILLMENT, E.PENDING, None),
    (S.PENDING_FULFILLMENT, E.ACTIVE, None),
])
def test_the_marketplace_state_decides_the_lifecycle_action(portal, external, action):
    assert sync_action(portal, external) is action


def test_a_subscription_a_marketplace_bills_promises_no_renewal_charge_of_ours():
    end = NOW + timedelta(days=20)
    ours = next_milestone(S.ACTIVE, period_end=end, effective_at=None, canceled_at=None)
    theirs = next_milestone(S.ACTIVE, period_end=end, effective_at=None, canceled_at=None, billed_elsewhere=True)
    assert (ours.label, ours.at) == ("Renews", end)
    assert (theirs.label, theirs.at) == ("Renewed by its marketplace", None)
    dates = Dates(status=S.ACTIVE, ordered_at=NOW - timedelta(days=10), activated_at=NOW - timedelta(days=10),
                  period_end=end, effective_at=None, canceled_at=None, suspended_at=None, servers_delete_at=None,
                  purged_at=None, auto_renew=True, free=False, billed_elsewhere=True)
    assert [e.label for e in timeline(dates, retention_days=7, now=NOW)] == ["Ordered", "Active since"]


def test_a_suspended_marketplace_subscription_is_canceled_if_unpaid_at_its_marketplace():
    grace_end = NOW + timedelta(days=30)
    dates = Dates(status=S.SUSPENDED, ordered_at=NOW - timedelta(days=40), activated_at=NOW - timedelta(days=40),
                  period_end=NOW, effective_at=grace_end, canceled_at=None, suspended_at=NOW,
                  servers_delete_at=None, purged_at=None, auto_renew=True, free=False, billed_elsewhere=True)
    labels = [e.label for e in timeline(dates, retention_days=7, now=NOW)]
    assert "Canceled if unpaid at its marketplace on" in labels
