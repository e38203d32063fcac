"""Extensions, created once and bound to the app in `create_app`."""

from __future__ import annotations

from contextvars import ContextVar

from flask import g, request
from flask_limiter import Limiter
from flask_login import LoginManager
from flask_mailman import Mail
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from sqlalchemy import MetaData, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase

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


db = SQLAlchemy(model_class=Base)
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


# SQLite lets a transaction that read first fail at once ("database is locked") when it then writes after
# another connection committed. So every transaction takes the write lock when it begins and waits for it
# (busy_timeout) instead of failing, except those of read-only requests (GET, HEAD, OPTIONS), which must
# not queue behind writers.
sqlite_write_intent: ContextVar[bool] = ContextVar("sqlite_write_intent", default=True)


@event.listens_for(Engine, "begin")
def _sqlite_begin(connection) -> None:  # type: ignore[no-untyped-def]
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql("BEGIN IMMEDIATE" if sqlite_write_intent.get() else "BEGIN")


def tenant_scope_key() -> str:
    """Rate-limit keys never mix tenants."""
    tenant = getattr(g, "tenant", None)
    return str(tenant.id) if tenant is not None else "-"
