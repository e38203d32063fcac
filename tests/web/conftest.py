"""Fixtures shared by the web tests."""

from __future__ import annotations

import pytest

from app.clock import now
from app.sandbox.cloud import SandboxCloud, sandbox_for
from tests.helpers import complete_profile


@pytest.fixture
def cloud(tenant, clock) -> SandboxCloud:  # type: ignore[no-untyped-def]
    """The tenant's in-process Hetzner sandbox, on the test's frozen clock."""
    return sandbox_for(tenant.id, "hetzner", now)


@pytest.fixture
def logged_in(client, customer, auth):  # type: ignore[no-untyped-def]
    """The customer, with a complete billing profile, logged in."""
    complete_profile(customer)
    auth.login(customer.email)
    return customer
