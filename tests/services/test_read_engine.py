"""PostgreSQL: requests that only read run on the READS engine (autocommit, read-only connections); writes, and
the rare write during a GET, run on the main engine in a transaction. Committed for real, as production runs."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from flask import Flask
from sqlalchemy import delete, event, select
from sqlalchemy.exc import DBAPIError

from app import extensions
from app.domain.api_tokens import Scope
from app.extensions import READS, db, write_intent, writing
from app.models import ApiToken, Tenant, User
from app.services import api_tokens
from app.services.actors import Actor
from tests import factories
from tests.services.test_races import TEST_DATABASE_URL, race_app  # noqa: F401  (race_app: a fixture)

pytestmark = [
    pytest.mark.postgres_only,
    pytest.mark.skipif(not TEST_DATABASE_URL.startswith(("postgres://", "postgresql")),
                       reason="needs PostgreSQL (TEST_DATABASE_URL): a second engine on its own connections"),
]


@pytest.fixture
def host(race_app: Flask) -> Iterator[tuple[str, int, int]]:  # noqa: F811
    """A tenant served on its own host with one customer, committed for real: (host, tenant id, user id)."""
    name = f"reads-{uuid.uuid4().hex[:10]}.example.test"
    with race_app.app_context():
        tenant = factories.tenant(slug=name.split(".")[0], name="Reads", hosts=[name])
        customer = factories.user(tenant, email="reader@example.com")
        made = (name, tenant.id, customer.id)
    try:
        yield made
    finally:
        with race_app.app_context():
            db.session.execute(delete(Tenant).where(Tenant.id == made[1]))
            db.session.commit()


def test_the_reads_engine_is_autocommit_and_refuses_every_write(race_app: Flask) -> None:  # noqa: F811
    with race_app.app_context(), race_app.extensions[READS].connect() as conn:
        assert conn.exec_driver_sql("SHOW transaction_read_only").scalar() == "on"
        assert conn.connection.driver_connection.autocommit is True  # no BEGIN, no ROLLBACK
        with pytest.raises(DBAPIError, match="read-only"):
            conn.exec_driver_sql("UPDATE tenants SET name = name")


def test_the_session_reads_through_it_only_while_the_request_does_not_write(race_app: Flask) -> None:  # noqa: F811
    with race_app.app_context():
        main, reads = db.engines[None], race_app.extensions[READS]
        assert db.session.get_bind() is main  # commands, tasks and tests write by default
        token = write_intent.set(False)  # as a GET's before_request sets it
        try:
            assert db.session.get_bind() is reads
            with writing():
                assert db.session.get_bind() is main
            assert db.session.get_bind() is reads
        finally:
            write_intent.reset(token)
            db.session.remove()


def test_a_get_reads_on_the_reads_engine_and_a_token_s_first_use_is_written(
        race_app: Flask, host: tuple[str, int, int]) -> None:  # noqa: F811
    name, tenant_id, user_id = host
    with race_app.app_context():
        tenant, user = db.session.get(Tenant, tenant_id), db.session.get(User, user_id)
        made = api_tokens.create(tenant=tenant, actor=Actor(user), name="reader", scopes=frozenset({Scope.READ}),
                                 expires_in_days=7)
        token_id = made.token.id
        seen: dict[str, list[str]] = {"main": [], "reads": []}
        listeners = [(db.engines[None], "main"), (race_app.extensions[READS], "reads")]

        def recorder(side: str):  # type: ignore[no-untyped-def]
            def record(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
                seen[side].append(statement.split()[0].upper())
            return record

        hooks = [(engine, recorder(side)) for engine, side in listeners]
        for engine, hook in hooks:
            event.listen(engine, "before_cursor_execute", hook)
        try:
            client = race_app.test_client()
            headers = {"Authorization": f"Bearer {made.secret}"}
            first = client.get("/api/v1/subscriptions", headers=headers, base_url=f"http://{name}")
            assert first.status_code == 200, first.json
            assert "UPDATE" in seen["main"]  # the token's last use, in a transaction of its own
            assert seen["reads"] and set(seen["reads"]) == {"SELECT"}
            seen["main"].clear()
            again = client.get("/api/v1/subscriptions", headers=headers, base_url=f"http://{name}")
            assert again.status_code == 200
            assert seen["main"] == []  # used a moment ago: nothing to write, nothing on the main engine
        finally:
            for engine, hook in hooks:
                event.remove(engine, "before_cursor_execute", hook)
        db.session.remove()
        assert db.session.scalar(select(ApiToken.last_used_at).where(ApiToken.id == token_id)) is not None


def test_a_connection_dropped_while_idle_is_replaced_before_a_request_uses_it(
        race_app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """Pooled connections are pinged once idle (not at every checkout): one the server dropped meanwhile is
    replaced by a fresh one, and the request never sees the failure."""
    with race_app.app_context():
        engine = db.engines[None]
        engine.dispose()  # one connection in the pool, the one this test drops
        with engine.connect() as conn:
            dropped = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
        with race_app.extensions[READS].connect() as other:
            assert other.exec_driver_sql("SELECT pg_terminate_backend(%s)", (dropped,)).scalar() is True
        monkeypatch.setattr(extensions, "PING_AFTER_IDLE_SECONDS", 0.0)  # idle long enough to be pinged
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT pg_backend_pid()").scalar() != dropped
        monkeypatch.setattr(extensions, "PING_AFTER_IDLE_SECONDS", 3600.0)  # used a moment ago: not pinged
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT 1").scalar() == 1
