"""The marketplace poll for any marketplace (app/services/marketplace_sync.py) and its periodic job: Microsoft's
missed webhooks caught up, thousands of subscriptions in a few statements, `flask jobs run marketplace-sync`."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import select

from app.clock import now
from app.domain.marketplaces import ExternalState, Marketplace, external_state
from app.domain.subscriptions import SubscriptionStatus
from app.extensions import db
from app.models import JobRun, MarketplaceOperation, MarketplaceSubscription, Subscription
from app.providers.marketplaces.base import ExternalSubscription, SubscriptionPage
from app.services import marketplace_sync
from tests import factories
from tests.marketplace import stackit_helpers
from tests.marketplace.stackit_helpers import sandbox_project
from tests.querycount import count_queries

stackit_served, stackit_fake, stackit_url, stackit = (stackit_helpers.stackit_served, stackit_helpers.stackit_fake,
                                                      stackit_helpers.stackit_url, stackit_helpers.stackit)


@dataclass
class Listing:
    """A marketplace that only lists: `states` by external id, `size` a page."""

    marketplace: Marketplace = Marketplace.MICROSOFT
    states: dict[str, str] = field(default_factory=dict)
    size: int = 100
    asked: list[str | None] = field(default_factory=list)

    def list_subscriptions(self, cursor: str | None = None) -> SubscriptionPage:
        self.asked.append(cursor)
        ids = list(self.states)
        start = int(cursor or 0)
        page = tuple(ExternalSubscription(
            marketplace=self.marketplace, external_id=sid, offer_id="servers", plan_id="standard", quantity=1,
            state=external_state(self.marketplace, self.states[sid]), raw_state=self.states[sid])
            for sid in ids[start:start + self.size])
        more = start + self.size < len(ids)
        return SubscriptionPage(page, str(start + self.size) if more else None)


def linked(tenant, customer, plan, external_id: str, raw: str,  # type: ignore[no-untyped-def]
           status: SubscriptionStatus = SubscriptionStatus.ACTIVE) -> Subscription:
    grace = {"effective_at": now() + timedelta(days=14)} if status is SubscriptionStatus.SUSPENDED else {}
    subscription = factories.subscription(tenant, customer, plan, status=status, marketplace=Marketplace.MICROSOFT,
                                          **grace)
    db.session.add(MarketplaceSubscription(
        tenant_id=tenant.id, marketplace=Marketplace.MICROSOFT, external_id=external_id, offer_id="servers",
        external_plan_id="standard", quantity=1, raw_state=raw, state=external_state(Marketplace.MICROSOFT, raw),
        subscription_id=subscription.id, activated_at=now()))
    db.session.commit()
    return subscription


def test_missed_microsoft_webhooks_are_caught_up(tenant, customer, plan, clock):
    suspended = linked(tenant, customer, plan, "ms-1", "Subscribed")
    ended = linked(tenant, customer, plan, "ms-2", "Subscribed")
    paid_again = linked(tenant, customer, plan, "ms-3", "Suspended", SubscriptionStatus.SUSPENDED)
    listing = Listing(states={"ms-1": "Suspended", "ms-2": "Unsubscribed", "ms-3": "Subscribed",
                              "ms-4": "PendingFulfillmentStart", "ms-5": "Unsubscribed"}, size=2)

    outcome = marketplace_sync.sync(tenant, Marketplace.MICROSOFT, adapter=listing)  # type: ignore[arg-type]
    db.session.expire_all()

    assert listing.asked == [None, "2", "4"]
    assert (outcome.seen, outcome.changed, outcome.applied, outcome.discovered) == (5, 3, 3, 1)
    assert db.session.get(Subscription, suspended.id).status is SubscriptionStatus.SUSPENDED
    assert db.session.get(Subscription, ended.id).status is SubscriptionStatus.CANCELED
    assert db.session.get(Subscription, paid_again.id).status is SubscriptionStatus.ACTIVE
    found = db.session.scalar(select(MarketplaceSubscription).where(MarketplaceSubscription.external_id == "ms-4"))
    assert found is not None and found.state is ExternalState.PENDING and found.subscription_id is None
    logged = [(o.action, o.external_id) for o in db.session.scalars(
        select(MarketplaceOperation).order_by(MarketplaceOperation.id))]
    assert logged == [("suspend", "ms-1"), ("terminate", "ms-2"), ("reinstate", "ms-3"), ("discovered", "ms-4")]
    assert all(o.duration_ms >= 0 and o.source == "poll" for o in db.session.scalars(select(MarketplaceOperation)))


def test_a_subscription_still_being_delivered_is_not_suspended_but_ends_when_the_marketplace_ends_it(
        tenant, customer, plan, clock):
    subscription = linked(tenant, customer, plan, "ms-1", "Subscribed", SubscriptionStatus.PENDING_FULFILLMENT)
    listing = Listing(states={"ms-1": "Suspended"})  # a subscription not delivered yet cannot be suspended
    marketplace_sync.sync(tenant, Marketplace.MICROSOFT, adapter=listing)  # type: ignore[arg-type]
    assert db.session.get(Subscription, subscription.id).status is SubscriptionStatus.PENDING_FULFILLMENT
    assert db.session.scalar(select(MarketplaceSubscription.raw_state)) == "Suspended"

    listing.states["ms-1"] = "Unsubscribed"
    outcome = marketplace_sync.sync(tenant, Marketplace.MICROSOFT, adapter=listing)  # type: ignore[arg-type]
    db.session.expire_all()
    assert outcome.applied == 1 and db.session.get(Subscription, subscription.id).status is SubscriptionStatus.CANCELED


def test_a_subscription_left_out_of_line_is_brought_in_line_though_its_state_did_not_change(
        tenant, customer, plan, clock):
    subscription = linked(tenant, customer, plan, "ms-1", "Unsubscribed")  # the webhook was recorded, not applied
    outcome = marketplace_sync.sync(tenant, Marketplace.MICROSOFT,  # type: ignore[arg-type]
                                    adapter=Listing(states={"ms-1": "Unsubscribed"}))
    db.session.expire_all()
    assert (outcome.changed, outcome.applied) == (0, 1)
    assert db.session.get(Subscription, subscription.id).status is SubscriptionStatus.CANCELED


def test_thousands_of_unchanged_subscriptions_take_a_few_statements_a_page(app, tenant, customer, plan, clock):
    listing = Listing(states={f"ms-{n}": "Subscribed" for n in range(2500)})
    db.session.add_all(MarketplaceSubscription(
        tenant_id=tenant.id, marketplace=Marketplace.MICROSOFT, external_id=sid, offer_id="servers",
        external_plan_id="standard", quantity=1, raw_state="Subscribed", state=ExternalState.ACTIVE)
        for sid in listing.states)
    db.session.commit()
    clock.advance(minutes=5)

    with count_queries(app) as queries:
        outcome = marketplace_sync.sync(tenant, Marketplace.MICROSOFT, adapter=listing)  # type: ignore[arg-type]

    assert (outcome.seen, outcome.changed, outcome.failures) == (2500, 0, [])
    assert queries.count <= 3 * 25 + 2, queries.count  # a read and an update a page, no row by row
    assert db.session.scalar(select(MarketplaceOperation.id)) is None  # nothing changed: nothing logged
    db.session.expire_all()
    assert {row.synced_at for row in db.session.scalars(select(MarketplaceSubscription))} == {now()}


def test_the_job_polls_each_tenant_that_sells_on_the_sandbox_marketplace(runner, tenant, other_tenant, plan, stackit):
    from app.models import MarketplacePlanMapping

    db.session.add(MarketplacePlanMapping(tenant_id=tenant.id, marketplace=Marketplace.STACKIT,
                                          offer_id="cloudportal-servers", external_plan_id="standard",
                                          plan_id=plan.id))
    db.session.commit()
    stackit.purchase(sandbox_project(tenant.slug), "standard")
    stackit.purchase(sandbox_project(other_tenant.slug), "standard")  # sells nothing there: not polled

    db.session.commit()
    result = runner.invoke(args=["jobs", "run", "marketplace-sync", "--as-of", "2027-01-15T00:00:00Z"])
    assert result.exit_code == 0, result.output
    db.session.expire_all()
    assert "1 marketplace subscription read, 0 changed, 0 lifecycle actions applied, 1 new pending" in result.output
    [row] = db.session.scalars(select(MarketplaceSubscription)).all()
    assert row.tenant_id == tenant.id
    [run] = db.session.scalars(select(JobRun).where(JobRun.job == "marketplace-sync")).all()
    assert run.ok and run.summary.startswith("1 marketplace subscription read")
