"""Fixtures of the services' tests that the marketplace tests use too (a plan, the in-process cloud)."""

from tests.services.conftest import actor, plan, profile, sandbox  # noqa: F401  (fixtures, by name)
