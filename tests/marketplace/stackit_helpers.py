"""The fake STACKIT Marketplace served on loopback for the STACKIT tests, and the adapter pointed at it."""

from __future__ import annotations

from collections.abc import Iterator
from uuid import NAMESPACE_URL, uuid5

import pytest

from app.providers.marketplaces.stackit import StackitMarketplace
from app.sandbox import FakeServer, serve
from app.sandbox.stackit_api import StackitFake, sandbox_token

VENDOR = "0b6f3c8e-6d1a-4c55-9a4e-2f8f7d7b1a10"
CUSTOMER_PROJECT = "5d0c1f3a-9e7b-4b2a-8c6d-1e2f3a4b5c6d"


def sandbox_project(slug: str) -> str:
    """The vendor project the sandbox gives a tenant (as app.services.marketplace_connections does)."""
    return str(uuid5(NAMESPACE_URL, f"sandbox-stackit:{slug}"))


@pytest.fixture(scope="module")
def stackit_served() -> Iterator[tuple[StackitFake, FakeServer]]:
    fake = StackitFake()
    server = serve(fake)
    fake.base_url = server.url
    yield fake, server
    server.shutdown()


@pytest.fixture
def stackit_fake(stackit_served: tuple[StackitFake, FakeServer]) -> StackitFake:
    fake = stackit_served[0]
    fake.reset()
    fake.set_page_size(100)
    return fake


@pytest.fixture
def stackit_url(stackit_served: tuple[StackitFake, FakeServer]) -> str:
    return stackit_served[1].url


def adapter(url: str, project: str = VENDOR, key: str | None = None) -> StackitMarketplace:
    return StackitMarketplace(api_url=url, project_id=project, service_account_key=key or sandbox_token(project),
                              token_url=url + "/token", timeout=5)


@pytest.fixture
def stackit(app, tenant, clock, stackit_fake: StackitFake, stackit_url: str, monkeypatch):  # type: ignore[no-untyped-def]
    """The fake STACKIT Marketplace as the tenant's sandbox marketplace, on the portal's clock, with
    cloudportal-servers' plans mapped: standard to `plan`, pro to a bigger plan (cx32 only)."""
    from app.services import marketplace_stackit

    monkeypatch.setitem(app.config, "SANDBOX_STACKIT_URL", stackit_url)
    stackit_fake.set_clock(lambda: clock.now().timestamp())
    marketplace_stackit.forget_keys()
    return stackit_fake
