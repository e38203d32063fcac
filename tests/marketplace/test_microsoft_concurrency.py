"""Eight deliveries of the same ChangePlan webhook at once, over HTTP to the portal served on 127.0.0.1, each in its
own request and database session: the change is applied once, PATCHed once, and every delivery is answered within
Microsoft's 10 seconds. On SQLite (a database file of its own) and on PostgreSQL (row locks, real concurrency).

These cannot run inside the per-test rolled-back transaction of tests/conftest.py: each app here commits for real
in a tenant of its own, deleted at the end (the foreign keys cascade from the tenant)."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from flask import Flask
from sqlalchemy import delete, func, select

from app import create_app, tasks
from app.clock import now
from app.config import normalize_database_url
from app.domain.marketplaces import ExternalState, Marketplace
from app.extensions import db, dispose_engines
from app.models import (
    MarketplaceOperation,
    MarketplacePlanMapping,
    MarketplaceSubscription,
    Subscription,
    SubscriptionEvent,
    Tenant,
)
from app.sandbox import serve
from app.sandbox.microsoft_api import MicrosoftFake
from tests import factories
from tests.conftest import config_for_tests
from tests.marketplace.microsoft_helpers import OFFER, OFFERS

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "")
ON_POSTGRES = TEST_DATABASE_URL.startswith(("postgres://", "postgresql"))
AT_ONCE = 8

DATABASES = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=[
        pytest.mark.postgres_only,
        pytest.mark.skipif(not ON_POSTGRES, reason="needs PostgreSQL (TEST_DATABASE_URL): real concurrency")]),
]


@pytest.fixture(params=DATABASES)
def portal(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    """The portal on its own database, committing for real, served on 127.0.0.1."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('concurrency')}/portal.sqlite3"
    else:
        url = normalize_database_url(TEST_DATABASE_URL)
    config = config_for_tests(url, str(tmp_path_factory.mktemp("instance")))
    if request.param == "postgresql":
        config["SQLALCHEMY_ENGINE_OPTIONS"] = {"pool_size": AT_ONCE + 4, "max_overflow": 4, "pool_timeout": 10}
    bound_before = tasks._app
    app = create_app(config)
    with app.app_context():
        db.create_all()
    try:
        yield app
    finally:
        tasks._app = bound_before
        with app.app_context():
            dispose_engines()


def test_eight_deliveries_of_one_change_at_once_apply_it_once_within_ten_seconds(portal: Flask) -> None:
    served = serve(portal)
    fake = MicrosoftFake(offers=OFFERS, accept_seconds=60,
                         webhook_url=f"{served.url}/webhooks/microsoft/{{publisher}}")
    market = serve(fake)
    portal.config["SANDBOX_MICROSOFT_URL"] = market.url
    slug = f"ms-{uuid.uuid4().hex[:10]}"
    try:
        with portal.app_context():
            subscription_id, external_id = _subscribed(slug, fake)
        operation_id = fake.start(external_id, "ChangePlan", plan_id="pro")
        barrier = threading.Barrier(AT_ONCE, timeout=20)

        def deliver(_: int) -> dict:
            barrier.wait()
            started = time.monotonic()
            answer = fake.deliver(operation_id)
            return {**answer, "seconds": time.monotonic() - started}

        with ThreadPoolExecutor(AT_ONCE) as pool:
            answers = list(pool.map(deliver, range(AT_ONCE)))

        assert [a["delivered"] for a in answers] == [200] * AT_ONCE, answers
        assert max(a["seconds"] for a in answers) < 10
        assert [p["status"] for p in fake.patches] == ["Success"]
        assert fake.patches[0]["seconds_after_webhook"] < 10
        assert fake.subscriptions[external_id]["planId"] == "pro"
        with portal.app_context():
            subscription = db.session.get(Subscription, subscription_id)
            assert subscription.plan.name == "Pro"
            assert db.session.scalar(select(func.count()).select_from(SubscriptionEvent).where(
                SubscriptionEvent.subscription_id == subscription_id, SubscriptionEvent.kind == "plan_changed")) == 1
            outcomes = list(db.session.scalars(select(MarketplaceOperation.outcome).where(
                MarketplaceOperation.tenant_id == subscription.tenant_id, MarketplaceOperation.source == "webhook")))
            assert sum(o.startswith("accepted") for o in outcomes) == 1
            assert sum(o.startswith("duplicate") for o in outcomes) == AT_ONCE - 1
    finally:
        market.shutdown()
        served.shutdown()
        with portal.app_context():
            db.session.execute(delete(Tenant).where(Tenant.slug == slug))
            db.session.commit()


def _subscribed(slug: str, fake: MicrosoftFake) -> tuple[int, str]:
    """A tenant (answering on 127.0.0.1) whose customer has an active subscription bought on the fake marketplace."""
    tenant = factories.tenant(slug=slug, name="Concurrent Hosting", hosts=["127.0.0.1"])
    customer = factories.user(tenant, email="buyer@example.com")
    service_type = factories.service_type(tenant)
    standard = factories.plan(tenant, service_type_=service_type, name="Standard", price_minor=990)
    pro = factories.plan(tenant, product_=standard.product, service_type_=service_type, name="Pro", price_minor=2990)
    for external, plan in (("standard", standard), ("pro", pro)):
        db.session.add(MarketplacePlanMapping(tenant_id=tenant.id, marketplace=Marketplace.MICROSOFT, offer_id=OFFER,
                                              external_plan_id=external, plan_id=plan.id))
    bought, _ = fake.purchase(slug, offer_id=OFFER, plan_id="standard", email=customer.email)
    fake.subscriptions[bought["id"]]["saasSubscriptionStatus"] = "Subscribed"
    subscription = factories.subscription(tenant, customer, standard, marketplace=Marketplace.MICROSOFT,
                                          current_period_start=now(), activated_at=now())
    db.session.add(MarketplaceSubscription(
        tenant_id=tenant.id, marketplace=Marketplace.MICROSOFT, external_id=bought["id"], offer_id=OFFER,
        external_plan_id="standard", raw_state="Subscribed", state=ExternalState.ACTIVE,
        subscription_id=subscription.id, activated_at=now()))
    db.session.commit()
    return subscription.id, bought["id"]
