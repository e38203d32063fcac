"""Fixtures of the fuzz suite: the routes (read from the URL map at collection), the world, the clouds."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from functools import cache

import pytest
from flask import Flask

from app import create_app
from app.extensions import dispose_engines
from app.sandbox import serve
from app.sandbox.digitalocean_api import DigitalOceanFake
from app.sandbox.hetzner_api import HetznerFake
from tests.conftest import config_for_tests
from tests.fuzz import world as worlds
from tests.fuzz.routes import Route, routes
from tests.fuzz.visitors import Errors

CLOUD_TOKEN = "hz-0123456789abcdefghijklmnopqrstuvwxyzABCD"


@cache
def collected_routes() -> tuple[Route, ...]:
    """The URL map of an app built like the tests' own (tests are parametrized before any fixture runs)."""
    app = create_app(config_for_tests("sqlite://", tempfile.mkdtemp(prefix="portal-fuzz-")))
    try:
        return tuple(routes(app))
    finally:
        with app.app_context():
            dispose_engines()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "route" in metafunc.fixturenames:
        metafunc.parametrize("route", collected_routes(), ids=lambda route: route.id)


@pytest.fixture(autouse=True)
def _unexpected_errors_get_the_error_page(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    """As in production: an exception becomes the 500 page instead of reaching the test."""
    monkeypatch.setitem(app.config, "PROPAGATE_EXCEPTIONS", False)


@pytest.fixture(scope="session")
def _clouds() -> Iterator[dict[str, str]]:
    """Where the portal checks a cloud token with the real API, local fakes answer (no request leaves the host)."""
    servers = serve(HetznerFake(token=CLOUD_TOKEN)), serve(DigitalOceanFake(token=CLOUD_TOKEN))
    yield {"HETZNER_API_URL": servers[0].url + "/v1", "DIGITALOCEAN_API_URL": servers[1].url + "/v2/"}
    for server in servers:
        server.shutdown()


@pytest.fixture(autouse=True)
def _real_apis_are_fakes(app: Flask, _clouds: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    for key, url in _clouds.items():
        monkeypatch.setitem(app.config, key, url)


@pytest.fixture
def world(app: Flask, clock) -> worlds.World:  # type: ignore[no-untyped-def]
    return worlds.build(clock)


@pytest.fixture
def errors() -> Iterator[Errors]:
    """The errors the app logs, to name the cause of a failure (the limiter's resets, one per probe, are muted)."""
    handler, root, limiter_log = Errors(), logging.getLogger(), logging.getLogger("flask-limiter")
    level = limiter_log.level
    root.addHandler(handler)
    limiter_log.setLevel(logging.WARNING)
    yield handler
    limiter_log.setLevel(level)
    root.removeHandler(handler)
