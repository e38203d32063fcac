"""The shared path of a marketplace purchase (app/services/marketplaces.py, app/blueprints/marketplace/purchase.py):
arrival, sign-in, set-up, delivery, activation at the marketplace; and that the portal never charges for it.

The marketplace here is a small in-test adapter: each marketplace's own tests drive the real adapters against
the fake marketplace APIs."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import pytest
from sqlalchemy import select

from app.domain.marketplaces import ExternalState, Marketplace
from app.domain.subscriptions import SubscriptionStatus
from app.extensions import db
from app.models import Charge, MarketplaceOperation, MarketplacePlanMapping, MarketplaceSubscription, Subscription
from app.providers.marketplaces.base import (
    ExternalSubscription,
    MarketplaceError,
    MarketplaceErrorKind,
)
from app.services import marketplaces
from app.services.actors import Actor
from app.services.errors import InvalidInput
from tests import factories
from tests.helpers import post_form
from tests.services.conftest import boot, count


@dataclass
class Adapter:
    marketplace: Marketplace = Marketplace.MICROSOFT
    purchases: dict[str, ExternalSubscription] = field(default_factory=dict)
    activated: list[tuple[str, str]] = field(default_factory=list)
    fail_activation: list[MarketplaceError] = field(default_factory=list)

    def resolve(self, token: str) -> ExternalSubscription:
        if token not in self.purchases:
            raise MarketplaceError(MarketplaceErrorKind.INVALID, "This link has expired.", status=400)
        return self.purchases[token]

    def activate(self, subscription: ExternalSubscription, *, instance_url: str) -> None:
        if self.fail_activation:
            raise self.fail_activation.pop(0)
        self.activated.append((subscription.external_id, instance_url))

    def get_subscription(self, external_id: str) -> ExternalSubscription:
        bought = next(p for p in self.purchases.values() if p.external_id == external_id)
        active = external_id in {e for e, _ in self.activated}
        return replace(bought, state=ExternalState.ACTIVE if active else bought.state,
                       raw_state="Subscribed" if active else bought.raw_state)


def bought(external_id: str = "sub-1", plan: str = "standard", email: str = "buyer@example.com"
           ) -> ExternalSubscription:
    return ExternalSubscription(marketplace=Marketplace.MICROSOFT, external_id=external_id, offer_id="servers",
                                plan_id=plan, quantity=None, state=ExternalState.PENDING,
                                raw_state="PendingFulfillmentStart", name="My servers", purchaser_email=email,
                                customer_ref="contoso")


@pytest.fixture
def adapter(monkeypatch) -> Adapter:  # type: ignore[no-untyped-def]
    fake = Adapter(purchases={"good-token": bought()})
    monkeypatch.setattr(marketplaces, "adapter_for", lambda tenant, marketplace: fake)
    return fake


@pytest.fixture
def mapped(tenant, plan):  # type: ignore[no-untyped-def]
    db.session.add(MarketplacePlanMapping(tenant_id=tenant.id, marketplace=Marketplace.MICROSOFT, offer_id="servers",
                                          external_plan_id="standard", plan_id=plan.id))
    db.session.commit()
    return plan


def test_arriving_records_the_purchase_and_logs_it(tenant, customer, adapter):
    row = marketplaces.arrive(tenant=tenant, marketplace=Marketplace.MICROSOFT, token="good-token",
                              actor=Actor.marketplace("microsoft"))
    assert (row.external_id, row.offer_id, row.external_plan_id, row.state) == ("sub-1", "servers", "standard",
                                                                               ExternalState.PENDING)
    assert row.purchaser_email == "buyer@example.com" and row.subscription_id is None
    [entry] = db.session.scalars(select(MarketplaceOperation)).all()
    assert (entry.source, entry.action, entry.ok) == ("landing", "resolve", True)


def test_a_refused_token_is_a_clear_message_and_changes_nothing_but_the_log(tenant, adapter):
    with pytest.raises(InvalidInput, match="expired"):
        marketplaces.arrive(tenant=tenant, marketplace=Marketplace.MICROSOFT, token="old",
                            actor=Actor.marketplace("microsoft"))
    assert count(MarketplaceSubscription) == 0
    [entry] = db.session.scalars(select(MarketplaceOperation)).all()
    assert not entry.ok and entry.http_status == 400


def test_claim_makes_a_subscription_billed_by_the_marketplace_and_activates_it_when_delivered(
        tenant, customer, adapter, mapped, sandbox, clock):
    row = marketplaces.arrive(tenant=tenant, marketplace=Marketplace.MICROSOFT, token="good-token",
                              actor=Actor.marketplace("microsoft"))
    subscription = marketplaces.claim(tenant=tenant, actor=Actor(customer), purchase_id=row.id)
    assert subscription.marketplace is Marketplace.MICROSOFT and subscription.plan_id == mapped.id
    assert subscription.status is SubscriptionStatus.PENDING_FULFILLMENT
    assert adapter.activated == []  # not before the servers are delivered

    boot(clock)

    subscription = db.session.get(Subscription, subscription.id)
    assert subscription.status is SubscriptionStatus.ACTIVE
    [(external_id, url)] = adapter.activated
    assert external_id == "sub-1" and url.endswith(f"/subscriptions/{subscription.id}")
    activated = db.session.get(MarketplaceSubscription, row.id)
    assert activated.activated_at is not None
    assert (activated.state, activated.raw_state) == (ExternalState.ACTIVE, "Subscribed")  # read back from it
    assert count(Charge, Charge.subscription_id == subscription.id) == 0  # the marketplace bills it

    again = marketplaces.claim(tenant=tenant, actor=Actor(customer), purchase_id=row.id)
    assert again.id == subscription.id and count(Subscription) == 1


def test_a_purchase_claimed_by_one_customer_cannot_be_taken_by_another(tenant, customer, adapter, mapped, sandbox):
    row = marketplaces.arrive(tenant=tenant, marketplace=Marketplace.MICROSOFT, token="good-token",
                              actor=Actor.marketplace("microsoft"))
    marketplaces.claim(tenant=tenant, actor=Actor(customer), purchase_id=row.id)
    with pytest.raises(InvalidInput, match="another account"):
        marketplaces.claim(tenant=tenant, actor=Actor(factories.user(tenant)), purchase_id=row.id)


def test_an_unmapped_plan_is_refused_with_nothing_made(tenant, customer, adapter, plan):
    row = marketplaces.arrive(tenant=tenant, marketplace=Marketplace.MICROSOFT, token="good-token",
                              actor=Actor.marketplace("microsoft"))
    with pytest.raises(InvalidInput, match="not linked it to one of its plans"):
        marketplaces.claim(tenant=tenant, actor=Actor(customer), purchase_id=row.id)
    assert count(Subscription) == 0


def test_activation_is_retried_while_the_marketplace_cannot_be_reached(tenant, customer, adapter, mapped, sandbox,
                                                                      clock):
    adapter.fail_activation.append(MarketplaceError(MarketplaceErrorKind.TRANSIENT, "503 from the API", status=503))
    row = marketplaces.arrive(tenant=tenant, marketplace=Marketplace.MICROSOFT, token="good-token",
                              actor=Actor.marketplace("microsoft"))
    subscription = marketplaces.claim(tenant=tenant, actor=Actor(customer), purchase_id=row.id)
    boot(clock)  # delivered: the first activation fails and is scheduled again, which the worker then runs
    assert [e for e, _ in adapter.activated] == ["sub-1"]
    assert marketplaces.activate(subscription.id, 3) is None and len(adapter.activated) == 1  # once
    outcomes = [(o.ok, o.http_status) for o in db.session.scalars(
        select(MarketplaceOperation).where(MarketplaceOperation.source == "activate").order_by(MarketplaceOperation.id))]
    assert outcomes == [(False, 503), (True, None)]


# --- The pages ----------------------------------------------------------------------------------


def test_the_purchase_page_opens_only_for_the_browser_that_arrived_with_it(client, tenant, customer, adapter,
                                                                            mapped):
    row = marketplaces.arrive(tenant=tenant, marketplace=Marketplace.MICROSOFT, token="good-token",
                              actor=Actor.marketplace("microsoft"))
    assert client.get(f"/marketplace/purchases/{row.id}").status_code == 404


def test_a_customer_signs_in_and_sets_the_purchase_up(app, client, auth, tenant, customer, adapter, mapped, sandbox):
    from app.blueprints.marketplace.purchase import continue_with

    row = marketplaces.arrive(tenant=tenant, marketplace=Marketplace.MICROSOFT, token="good-token",
                              actor=Actor.marketplace("microsoft"))
    with app.test_request_context():
        from flask import g

        g.tenant = tenant
        landing = continue_with(row)
    cookie = landing.headers["Set-Cookie"].split(";")[0].split("=", 1)[1]
    client.set_cookie("marketplace_purchase", cookie)

    page = client.get(landing.headers["Location"])
    assert page.status_code == 200
    assert b"Sign in to set it up" in page.data, page.data.decode()[:100]
    assert b"email=buyer@example.com" in page.data

    signed_in = auth.login(customer.email)  # back to the purchase, not the dashboard
    assert signed_in.headers["Location"].endswith(f"/marketplace/purchases/{row.id}")
    form = client.get(f"/marketplace/purchases/{row.id}")
    assert b"Set up my subscription" in form.data and b"charges you nothing" in form.data

    done = post_form(client, f"/marketplace/purchases/{row.id}", {"hostname": "shop-1"})
    assert done.status_code == 303
    subscription = db.session.scalar(select(Subscription))
    assert done.headers["Location"].endswith(f"/subscriptions/{subscription.id}")
    assert subscription.marketplace is Marketplace.MICROSOFT
    assert "marketplace_purchase=;" in done.headers["Set-Cookie"]  # forgotten: it is set up


def test_the_customer_cancels_a_marketplace_subscription_at_the_marketplace_not_here(tenant, customer, adapter,
                                                                                    mapped, sandbox, clock):
    from app.domain.subscriptions import Action
    from app.services import lifecycle

    row = marketplaces.arrive(tenant=tenant, marketplace=Marketplace.MICROSOFT, token="good-token",
                              actor=Actor.marketplace("microsoft"))
    subscription = marketplaces.claim(tenant=tenant, actor=Actor(customer), purchase_id=row.id)
    boot(clock)
    with pytest.raises(InvalidInput, match="canceled or resumed there: in the Azure portal"):
        lifecycle.change(tenant=tenant, actor=Actor(customer), subscription_id=subscription.id, action=Action.CANCEL)
    assert db.session.get(Subscription, subscription.id).status is SubscriptionStatus.ACTIVE


def test_the_portal_prices_no_plan_change_of_a_marketplace_subscription(tenant, customer, adapter, mapped, sandbox,
                                                                       clock):
    from app.domain.plan_changes import ChangeAction
    from app.services import plan_changes

    other = factories.plan(tenant, name="Bigger", price_minor=1990)
    row = marketplaces.arrive(tenant=tenant, marketplace=Marketplace.MICROSOFT, token="good-token",
                              actor=Actor.marketplace("microsoft"))
    subscription = marketplaces.claim(tenant=tenant, actor=Actor(customer), purchase_id=row.id)
    boot(clock)
    with pytest.raises(InvalidInput, match="bills this subscription: its plan and quantity are changed through it"):
        plan_changes.preview(tenant=tenant, actor=Actor(customer), subscription_id=subscription.id,
                             action=ChangeAction.PLAN, plan_id=other.id)
    assert count(Charge) == 0


def test_a_customer_asks_microsoft_for_a_plan_change_from_the_subscription_page(
        client, auth, tenant, customer, adapter, mapped, sandbox, clock, monkeypatch):
    from app.services import marketplace_microsoft

    bigger = factories.plan(tenant, name="Bigger", price_minor=1990)
    db.session.add(MarketplacePlanMapping(tenant_id=tenant.id, marketplace=Marketplace.MICROSOFT, offer_id="servers",
                                          external_plan_id="pro", plan_id=bigger.id))
    db.session.commit()
    row = marketplaces.arrive(tenant=tenant, marketplace=Marketplace.MICROSOFT, token="good-token",
                              actor=Actor.marketplace("microsoft"))
    subscription = marketplaces.claim(tenant=tenant, actor=Actor(customer), purchase_id=row.id)
    boot(clock)
    asked: list[tuple[int, int | None, int | None]] = []
    monkeypatch.setattr(marketplace_microsoft, "request_change",
                        lambda tenant, actor, subscription_id, plan_id=None, quantity=None, version=None:
                        asked.append((subscription_id, plan_id, quantity)))
    auth.login(customer.email)

    page = client.get(f"/subscriptions/{subscription.id}/change/plan")
    assert page.status_code == 200
    assert b"Ask Microsoft for the change" in page.data and b"Bigger" in page.data
    version = db.session.get(Subscription, subscription.id).version
    done = post_form(client, f"/subscriptions/{subscription.id}/change/plan", {"plan": bigger.id, "version": version})
    assert done.status_code == 303 and asked == [(subscription.id, bigger.id, None)]
    assert db.session.get(Subscription, subscription.id).plan_id == mapped.id  # nothing here until Microsoft confirms
