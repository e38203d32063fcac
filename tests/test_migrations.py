"""`flask db upgrade` on an empty database yields exactly the models' schema."""

from __future__ import annotations

import os
import uuid

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade
from sqlalchemy import create_engine, inspect, text

from app import create_app
from app.config import engine_options, normalize_database_url
from app.extensions import db, dispose_engines
from tests.conftest import config_for_tests


@pytest.fixture
def empty_database_url(tmp_path):
    """A database with nothing in it: a new SQLite file, or a new schema on PostgreSQL."""
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        yield f"sqlite:///{tmp_path}/migrations.sqlite3"
        return
    url = normalize_database_url(url)
    schema = f"migration_check_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def empty_app(empty_database_url, tmp_path):
    """The portal on the empty database (nothing migrated yet)."""
    return create_app({**config_for_tests(empty_database_url, str(tmp_path)),
                       "SQLALCHEMY_ENGINE_OPTIONS": engine_options(empty_database_url)})


def test_upgrade_from_empty_gives_the_models_schema(empty_app):
    app = empty_app
    with app.app_context():
        upgrade()
        with db.engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            differences = compare_metadata(context, db.metadata)
            tables = set(inspect(connection).get_table_names())
        assert differences == []
        assert set(db.metadata.tables) <= tables
        downgrade(revision="base")
        with db.engine.connect() as connection:
            assert set(inspect(connection).get_table_names()) <= {"alembic_version"}
        dispose_engines()


def _insert(connection, table_name: str, **values: object) -> None:
    """A row with `values`, every other required column filled with a neutral value of its type."""
    from datetime import UTC, datetime

    from sqlalchemy import JSON, Boolean, DateTime, Integer, MetaData, String, Table

    table = Table(table_name, MetaData(), autoload_with=connection)
    for column in table.columns:
        if column.name in values or column.nullable or column.primary_key:
            continue
        kind = column.type
        values[column.name] = (datetime(2026, 1, 1, tzinfo=UTC) if isinstance(kind, DateTime)
                               else False if isinstance(kind, Boolean) else 1 if isinstance(kind, Integer)
                               else {} if isinstance(kind, JSON) else "" if isinstance(kind, String) else "{}")
    connection.execute(table.insert().values(**values))


def _catalogue(connection, *, plans: int) -> None:
    """Tenant 1 (10 days' retention) with customer 1, and plans 1 to `plans` of one product."""
    _insert(connection, "tenants", id=1, slug="t", name="T", retention_days=10)
    _insert(connection, "users", id=1, tenant_id=1, email="a@b.c", role="customer")
    _insert(connection, "service_types", id=1, tenant_id=1, slug="st", provider="hetzner")
    _insert(connection, "products", id=1, tenant_id=1, slug="p", state="published")
    for plan_id in range(1, plans + 1):
        _insert(connection, "plans", id=plan_id, tenant_id=1, product_id=1, service_type_id=1, slug=f"pl{plan_id}",
                interval="month", state="published", cancellation_rule="immediate", downgrade_rule="period_end")


def test_subscriptions_canceled_before_the_end_of_life_existed_are_handed_to_it(empty_app):
    """Migration 0005: a deletion date from the tenant's retention, delivery times, and running servers of
    canceled subscriptions handed to the end of life."""
    from datetime import UTC, datetime

    with empty_app.app_context():
        upgrade(revision="0004")
        with db.engine.begin() as connection:
            _catalogue(connection, plans=1)
            for sid, status, canceled in ((1, "canceled", datetime(2026, 2, 1, tzinfo=UTC)), (2, "active", None)):
                _insert(connection, "subscriptions", id=sid, tenant_id=1, user_id=1, plan_id=1, status=status,
                        quantity=1, interval="month", activated_at=datetime(2026, 1, 5, tzinfo=UTC),
                        canceled_at=canceled, version=1)
                _insert(connection, "subscription_items", id=sid, tenant_id=1, subscription_id=sid,
                        status="active", provider="hetzner", server_id="42")
        upgrade()
        with db.engine.connect() as connection:
            rows = {row.id: row for row in connection.execute(text(
                "SELECT s.id, s.servers_delete_at, i.status, i.ready_at FROM subscriptions s "
                "JOIN subscription_items i ON i.subscription_id = s.id ORDER BY s.id"))}
        assert str(rows[1].servers_delete_at).startswith("2026-02-11")
        assert rows[1].status == "decommissioning" and rows[2].status == "active"
        assert rows[2].servers_delete_at is None
        assert str(rows[1].ready_at).startswith("2026-01-05") and str(rows[2].ready_at).startswith("2026-01-05")
        downgrade(revision="base")
        dispose_engines()


def test_plans_count_the_subscriptions_they_had_before_the_count_existed(empty_app):
    """Migration 0008: each plan's subscription count starts from its subscriptions."""
    with empty_app.app_context():
        upgrade(revision="0007")
        with db.engine.begin() as connection:
            _catalogue(connection, plans=2)
            for sid, status in ((1, "canceled"), (2, "active"), (3, "pending_cancel")):
                _insert(connection, "subscriptions", id=sid, tenant_id=1, user_id=1, plan_id=1, status=status,
                        quantity=1, interval="month", version=1)
        upgrade()
        with db.engine.connect() as connection:
            counts = dict(connection.execute(text("SELECT id, subscription_count FROM plans")).all())
        assert counts == {1: 3, 2: 0}
        downgrade(revision="base")
        dispose_engines()
