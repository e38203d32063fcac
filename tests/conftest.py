"""Fixtures: one app per test session, each test inside a transaction that is rolled back.

Set TEST_DATABASE_URL (e.g. postgresql://127.0.0.1/test) to run the same suite on PostgreSQL.
"""

from __future__ import annotations

import contextvars
import os
import re
import tempfile

# Before the app is imported: the queue and anything else kept in the instance folder stay out of the project.
os.environ.setdefault("INSTANCE_PATH", tempfile.mkdtemp(prefix="portal-tests-"))
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event

from app import create_app
from app.clock import FrozenClock, SystemClock
from app.config import engine_options, normalize_database_url
from app.extensions import READS, db, dispose_engines, limiter, write_intent
from app.sandbox import payments as sandbox_payments
from app.sandbox.cloud import reset_sandboxes
from app.selectors.tenants import tenant_cache
from app.services import availability_cache
from app.services.clouds import forget_adapters
from app.tasks import huey
from tests import factories, netguard
from tests.helpers import AuthActions

netguard.install()  # no request of the suite leaves 127.0.0.1 (tests/unit/test_netguard.py)

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL")
huey.immediate = True  # tasks run inline, in the test's transaction; tests/services/test_worker.py runs a real consumer
FAST_ARGON2 = {"time_cost": 1, "memory_cost": 8, "parallelism": 1}


def config_for_tests(database_url: str, instance_path: str) -> dict[str, object]:
    return {
        "TESTING": True,
        "SECRET_KEY": "test-secret-key",
        "SQLALCHEMY_DATABASE_URI": database_url,
        "SQLALCHEMY_ENGINE_OPTIONS": engine_options(database_url),
        "ARGON2_PARAMETERS": FAST_ARGON2,
        "RATELIMIT_STORAGE_URI": "memory://",
        "DEFAULT_TENANT": "default",
        "MAIL_BACKEND": "locmem",  # sent emails land in app.extensions["mailman"].outbox (the `outbox` fixture)
        "SANDBOX_IN_PROCESS": True,  # the fast in-process cloud; tests/integration drive the fake APIs
    }


class IsolatedClient(FlaskClient):
    """Each request runs in a fresh context, as in production: its own app context, `g` and DB session.

    Without this, a request reuses the app context the test pushed and shares `g` with every other
    request of the test (Flask reuses an active app context of the same app).
    """

    def open(self, *args: object, **kwargs: object):  # type: ignore[no-untyped-def, override]
        return contextvars.Context().run(super().open, *args, **kwargs)


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    if TEST_DATABASE_URL:
        return normalize_database_url(TEST_DATABASE_URL)
    return f"sqlite:///{tmp_path_factory.mktemp('db')}/test.sqlite3"


@pytest.fixture(scope="session")
def app(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    instance = str(tmp_path_factory.mktemp("instance"))
    os.environ["INSTANCE_PATH"] = instance
    app = create_app(config_for_tests(database_url, instance))
    app.test_client_class = IsolatedClient
    with app.app_context():
        db.drop_all()
        db.create_all()
    yield app
    with app.app_context():
        db.drop_all()
        dispose_engines()


_WRITE = re.compile(r"^\s*(INSERT|UPDATE|DELETE|MERGE|CREATE|DROP|ALTER|TRUNCATE)\b|\bFOR (NO KEY )?UPDATE\b",
                    re.IGNORECASE)


def _no_write_while_reading(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
    """On PostgreSQL a request that only reads (a GET) runs on read-only connections, which refuse any write;
    the tests' shared transaction is not one of those, so the same rule is checked here, on both databases."""
    if not write_intent.get() and _WRITE.search(statement):
        raise AssertionError(f"a request that only reads wrote (say so with writing() or writes()): {statement[:120]}")


@pytest.fixture(autouse=True)
def _transaction(request: pytest.FixtureRequest) -> Iterator[None]:
    """Run each test in a transaction that is rolled back; services' commits become savepoints."""
    if "app" not in request.fixturenames:
        yield
        return
    app: Flask = request.getfixturevalue("app")
    with app.app_context():
        engines = db._app_engines[app]
        engine = engines[None]
        connection = engine.connect()
        event.listen(connection, "before_cursor_execute", _no_write_while_reading)
        outer = connection.begin()
        engines[None] = connection  # type: ignore[assignment]
        reads = app.extensions.get(READS)  # PostgreSQL's engine for requests that only read: the same transaction
        if reads is not None:
            app.extensions[READS] = connection
        db.session.remove()
        db.session.session_factory.kw["join_transaction_mode"] = "create_savepoint"
        limiter.reset()
        app.extensions["mailman"].outbox = []
        reset_sandboxes()
        sandbox_payments.reset()
        huey.storage.flush_schedule()
        try:
            yield
        finally:
            forget_adapters()
            availability_cache.clear()
            tenant_cache().clear()
            db.session.remove()
            engines[None] = engine
            if reads is not None:
                app.extensions[READS] = reads
            outer.rollback()
            connection.close()


@pytest.fixture
def clock(app: Flask) -> Iterator[FrozenClock]:
    frozen = FrozenClock(datetime(2026, 3, 15, 10, 0, tzinfo=UTC))
    app.extensions["clock"] = frozen
    yield frozen
    app.extensions["clock"] = SystemClock()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask):  # type: ignore[no-untyped-def]
    return app.test_cli_runner()


@pytest.fixture
def tenant(app: Flask):  # type: ignore[no-untyped-def]
    return factories.tenant(slug="default", name="Nimbus Test", hosts=["localhost"])


@pytest.fixture
def other_tenant(app: Flask):  # type: ignore[no-untyped-def]
    return factories.tenant(slug="other", name="Other Hosting", hosts=["other.test"])


@pytest.fixture
def customer(tenant):  # type: ignore[no-untyped-def]
    return factories.user(tenant, email="casey@example.com", name="Casey Customer")


@pytest.fixture
def admin(tenant):  # type: ignore[no-untyped-def]
    from app.domain.accounts import Role

    return factories.user(tenant, email="alex@example.com", name="Alex Admin", role=Role.TENANT_ADMIN)


@pytest.fixture
def support(tenant):  # type: ignore[no-untyped-def]
    from app.domain.accounts import Role

    return factories.user(tenant, email="sam@example.com", name="Sam Support", role=Role.SUPPORT)


@pytest.fixture
def auth(client: FlaskClient) -> AuthActions:
    return AuthActions(client)
