"""The fake Microsoft marketplace served on 127.0.0.1 for a test, the portal's plans mapped to its offer, and a
courier that brings its webhooks to the portal's test client."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app.domain.catalogue import CatalogueState, Provider
from app.domain.marketplaces import Marketplace
from app.extensions import db
from app.models import MarketplacePlanMapping, MarketplaceSubscription, Plan, Subscription, Tenant
from app.sandbox import FakeServer, serve
from app.sandbox.microsoft_api import MicrosoftFake
from tests import factories
from tests.helpers import post_form

OFFER = "cloudportal-servers"
OFFERS = {
    OFFER: {"displayName": "Cloud Portal Servers", "plans": [
        {"planId": "standard", "displayName": "Standard", "price": 990},
        {"planId": "pro", "displayName": "Pro", "price": 2990},
        {"planId": "legacy", "displayName": "Legacy", "price": 490},  # mapped to a plan no longer sold
        {"planId": "unmapped", "displayName": "Unmapped", "price": 1990},
    ]},
    "seats": {"displayName": "Seats", "plans": [
        {"planId": "team", "displayName": "Team", "price": 500, "isPricePerSeat": True, "minQuantity": 1,
         "maxQuantity": 50},
    ]},
}


@dataclass
class Courier:
    """Delivers the fake's webhooks to the portal through the test client, in the test's thread (the test's
    database connection is not for other threads): a webhook sent from another thread (after a 202 to the portal's
    own request) waits in `waiting` until `flush()`."""

    client: FlaskClient
    waiting: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    owner: threading.Thread = field(default_factory=threading.current_thread)

    def __call__(self, url: str, headers: dict[str, str], body: bytes) -> int:
        if threading.current_thread() is not self.owner:
            self.waiting.append((url, headers, body))
            return 200
        return self.client.post(urlsplit(url).path, data=body, headers=headers).status_code

    def flush(self, fake: MicrosoftFake, *, wait: float = 2.0) -> list[int]:
        """Deliver what waits (the fake sends a request's webhook shortly after its 202)."""
        deadline = threading.Event()
        for _ in range(int(wait / 0.05)):
            if self.waiting:
                break
            deadline.wait(0.05)
        answers = []
        while self.waiting:
            url, headers, body = self.waiting.pop(0)
            answers.append(self.client.post(urlsplit(url).path, data=body, headers=headers).status_code)
        return answers


@dataclass
class World:
    fake: MicrosoftFake
    server: FakeServer
    courier: Courier
    standard: Plan
    pro: Plan
    legacy: Plan
    team: Plan


@pytest.fixture
def microsoft(app: Flask, client: FlaskClient, tenant: Tenant, sandbox) -> Iterator[World]:  # type: ignore[no-untyped-def]
    """The fake marketplace (changes accepted by silence after 60 s, so never during a test) serving the tenant
    "default", its plans mapped: standard, pro (same servers), legacy (a deprecated plan), team (seats, no servers)."""
    courier = Courier(client)
    fake = MicrosoftFake(offers=OFFERS, accept_seconds=60, transport=courier,
                         webhook_url="http://127.0.0.1:9/webhooks/microsoft/{publisher}",
                         landing_url="http://127.0.0.1:9/marketplace/microsoft/landing")
    server = serve(fake)
    before = app.config.get("SANDBOX_MICROSOFT_URL")
    app.config["SANDBOX_MICROSOFT_URL"] = server.url
    service_type = factories.service_type(tenant)
    standard = factories.plan(tenant, service_type_=service_type, name="Standard", price_minor=990)
    pro = factories.plan(tenant, product_=standard.product, service_type_=service_type, name="Pro", price_minor=2990)
    legacy = factories.plan(tenant, product_=standard.product, service_type_=service_type, name="Legacy",
                            price_minor=490, state=CatalogueState.DEPRECATED)
    team = factories.plan(tenant, service_type_=factories.service_type(tenant, provider=Provider.NONE), name="Team",
                          price_minor=500, quantity_allowed=True, max_quantity=10, config_defaults={})
    for offer, external, plan in ((OFFER, "standard", standard), (OFFER, "pro", pro), (OFFER, "legacy", legacy),
                                  ("seats", "team", team)):
        db.session.add(MarketplacePlanMapping(tenant_id=tenant.id, marketplace=Marketplace.MICROSOFT, offer_id=offer,
                                              external_plan_id=external, plan_id=plan.id))
    db.session.commit()
    try:
        yield World(fake, server, courier, standard, pro, legacy, team)
    finally:
        app.config["SANDBOX_MICROSOFT_URL"] = before
        server.shutdown()


def landing_path(token: str) -> str:
    return f"/marketplace/microsoft/landing?token={quote(token, safe='')}"


def buy_and_set_up(client: FlaskClient, auth, world: World, customer, plan_id: str = "standard",  # type: ignore[no-untyped-def]
                   hostname: str = "shop-1") -> tuple[str, Subscription]:
    """The customer buys in the fake marketplace, lands, signs in and sets it up: the external id and the portal's
    subscription (its servers not delivered yet)."""
    bought, token = world.fake.purchase("default", offer_id=OFFER, plan_id=plan_id, email=customer.email)
    landed = client.get(landing_path(token))
    assert landed.status_code == 303, landed.get_data(as_text=True)[:300]
    purchase_page = landed.headers["Location"]
    auth.login(customer.email)
    done = post_form(client, purchase_page, {"hostname": hostname})
    assert done.status_code == 303, done.get_data(as_text=True)[:500]
    row = db.session.scalar(select(MarketplaceSubscription).where(MarketplaceSubscription.external_id == bought["id"]))
    assert row is not None and row.subscription_id is not None
    return bought["id"], db.session.get(Subscription, row.subscription_id)
