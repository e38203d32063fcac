"""Extensions, created once and bound to the app in `create_app`."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from flask import current_app, g, request
from flask_limiter import Limiter
from flask_login import LoginManager
from flask_mailman import Mail
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_sqlalchemy.session import Session
from flask_wtf import CSRFProtect
from sqlalchemy import MetaData, event, exc
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.pool import Pool

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _client_address() -> str:
    return request.remote_addr or "unknown"


# Where the app keeps PostgreSQL's engine for requests that only read (`app.extensions[READS]`, see `_Session`).
READS = "reads_engine"


class _Session(Session):
    """On PostgreSQL, statements of a request that only reads (a GET, see app/web/security.py) run on the
    `READS` engine: autocommit, on connections whose every statement is read-only. A page then costs its own
    statements and no BEGIN and ROLLBACK around them (each a round trip to the server), as a bare page does; a
    write there fails loudly instead of committing half. Its statements may each see a newer snapshot than the
    one before, which a page that only shows rows can afford. Code that must write during such a request says
    so with `writing()` (or app.web.security.writes()), and its statements go to the main engine, in a
    transaction, from then on."""

    def get_bind(self, mapper: Any = None, clause: Any = None, bind: Any = None, **kwargs: Any) -> Any:
        if bind is None and not write_intent.get():
            reads = current_app.extensions.get(READS)
            if reads is not None:
                return reads
        return super().get_bind(mapper, clause=clause, bind=bind, **kwargs)


db = SQLAlchemy(model_class=Base, session_options={"class_": _Session})
migrate = Migrate(compare_type=True, render_as_batch=True)
login_manager = LoginManager()
csrf = CSRFProtect()
mail = Mail()
limiter = Limiter(key_func=_client_address, default_limits=[], strategy="moving-window")


@event.listens_for(Engine, "connect")
def _sqlite_connect(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    """SQLite: real transactions (BEGIN emitted by us), foreign keys, WAL for concurrent readers.

    With WAL, `synchronous=NORMAL` syncs the log at checkpoints instead of at every commit: the database stays
    consistent after any crash, and a power cut can lose only the last commits, never the file. SQLite serves
    development and the tests (production refuses it), where a commit costing an fsync is pure waste."""
    if type(dbapi_connection).__module__ != "sqlite3":
        return
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=15000")
    cursor.close()


# Whether this request (or task, or command) may write. SQLite lets a transaction that read first fail at once
# ("database is locked") when it then writes after another connection committed. So every transaction takes the
# write lock when it begins and waits for it (busy_timeout) instead of failing, except those of read-only
# requests (GET, HEAD, OPTIONS), which must not queue behind writers. On PostgreSQL, read-only requests read
# through the `READS` engine (`_Session`).
write_intent: ContextVar[bool] = ContextVar("write_intent", default=True)


def dispose_engines() -> None:
    """Close the pooled connections of every engine of the current app: the main one and, on PostgreSQL, READS."""
    for engine in (*db.engines.values(), current_app.extensions.get(READS)):
        if isinstance(engine, Engine):
            engine.dispose()


@contextmanager
def writing() -> Iterator[None]:
    """A write during a request that otherwise only reads (an API token's last use): begun ready to write."""
    token = write_intent.set(True)
    try:
        yield
    finally:
        write_intent.reset(token)


@event.listens_for(Engine, "begin")
def _sqlite_begin(connection) -> None:  # type: ignore[no-untyped-def]
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write_intent.get() else "BEGIN")


def tenant_scope_key() -> str:
    """Rate-limit keys never mix tenants."""
    tenant = getattr(g, "tenant", None)
    return str(tenant.id) if tenant is not None else "-"


# PostgreSQL: a pooled connection is pinged (one round trip) only when it has been idle for a while, not at every
# checkout as `pool_pre_ping` would: a busy process pays nothing, and one whose connections the server or a
# proxy may have dropped while idle still finds out before using them. A connection broken while in use within
# that time is detected by its failed statement, which makes the pool replace every connection it holds.
PING_AFTER_IDLE_SECONDS = 10.0


def _is_sqlite(dbapi_connection: Any) -> bool:
    return type(dbapi_connection).__module__.startswith("sqlite3")


@event.listens_for(Pool, "connect")
def _fresh(dbapi_connection, record) -> None:  # type: ignore[no-untyped-def]
    record.info["idle_since"] = time.monotonic()


@event.listens_for(Pool, "checkin")
def _idle(dbapi_connection, record) -> None:  # type: ignore[no-untyped-def]
    if record is not None:
        record.info["idle_since"] = time.monotonic()


@event.listens_for(Pool, "checkout")
def _ping_if_idle(dbapi_connection, record, _proxy) -> None:  # type: ignore[no-untyped-def]
    if _is_sqlite(dbapi_connection):
        return
    idle_since = record.info.get("idle_since")
    if idle_since is not None and time.monotonic() - idle_since < PING_AFTER_IDLE_SECONDS:
        return
    try:
        autocommit = dbapi_connection.autocommit
        dbapi_connection.autocommit = True  # the ping opens no transaction
        try:
            dbapi_connection.execute("SELECT 1")
        finally:
            dbapi_connection.autocommit = autocommit
    except Exception as error:  # any failure: the pool drops this connection and tries another
        raise exc.DisconnectionError(str(error)) from error
