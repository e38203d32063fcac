"""The benchmark's own checks: full scans of big tables are found (SQLite's plans and PostgreSQL's), per-request
form values are not compared."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest

from bench.plans import PLANNED_ROWS, full_scans, seq_scans, tables_by_name
from bench.run import cut


@pytest.fixture
def conn() -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(":memory:")
    conn.executescript("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT, name TEXT);"
                       "CREATE TABLE subscriptions (id INTEGER PRIMARY KEY, user_id INTEGER, status TEXT);"
                       "CREATE TABLE plans (id INTEGER PRIMARY KEY, name TEXT);"
                       "CREATE INDEX ix_users_email ON users (email);")
    yield conn
    conn.close()


def test_aliases_name_their_tables() -> None:
    sql = "SELECT 1 FROM subscriptions AS s JOIN users u ON u.id = s.user_id JOIN plans ON plans.id = 1 WHERE 1"
    assert tables_by_name(sql) == {"subscriptions": "subscriptions", "s": "subscriptions", "users": "users",
                                   "u": "users", "plans": "plans"}


def test_a_big_table_read_without_an_index_is_found(conn: sqlite3.Connection) -> None:
    scans = full_scans(conn, "SELECT s.id FROM subscriptions AS s WHERE s.status = ?", ("active",))
    assert scans == ["SCAN s"]


def test_index_use_small_tables_and_other_statements_pass(conn: sqlite3.Connection) -> None:
    assert full_scans(conn, "SELECT id FROM users WHERE email = ?", ("a@example.com",)) == []
    assert full_scans(conn, "SELECT id FROM users WHERE email LIKE ?", ("%a%",)) == []  # covering index walk
    assert full_scans(conn, "SELECT id FROM plans WHERE name = ?", ("Trial",)) == []
    assert full_scans(conn, "INSERT INTO subscriptions (user_id, status) VALUES (?, ?)", (1, "active")) == []
    assert full_scans(conn, "BEGIN", ()) == []


def test_form_tokens_and_order_keys_are_not_compared() -> None:
    page = '<main><input id="csrf_token" name="csrf_token" type="hidden" value="{}"></main>'
    assert cut(page.format("abc"), ("<main>", "</main>")) == cut(page.format("xyz"), ("<main>", "</main>"))
    assert cut(page.format("abc"), ("<nav>", "</main>")) == ""


def postgresql_plan(*nodes: dict[str, Any]) -> list[dict[str, Any]]:
    """A plan as PostgreSQL's `EXPLAIN (FORMAT JSON)` gives it: a nested loop over `nodes`."""
    return [{"Plan": {"Node Type": "Nested Loop", "Plans": list(nodes)}}]


def test_postgresql_seq_scans_of_big_tables_past_the_planned_rows_are_found() -> None:
    plan = postgresql_plan({"Node Type": "Seq Scan", "Relation Name": "subscriptions", "Alias": "s",
                            "Filter": "((status)::text = 'active'::text)"},
                           {"Node Type": "Index Scan", "Relation Name": "users", "Alias": "u"})
    assert seq_scans(plan, {"subscriptions": 1_000_000, "users": 100_000}) == [
        "Seq Scan on subscriptions s (1,000,000 rows, ((status)::text = 'active'::text))"]


def test_postgresql_small_tables_and_index_scans_pass() -> None:
    plan = postgresql_plan({"Node Type": "Seq Scan", "Relation Name": "users", "Alias": "users"},
                           {"Node Type": "Seq Scan", "Relation Name": "plans", "Alias": "plans"},
                           {"Node Type": "Bitmap Heap Scan", "Relation Name": "subscriptions", "Alias": "s"},
                           {"Node Type": "Index Only Scan", "Relation Name": "subscription_items", "Alias": "i"})
    rows = {"users": PLANNED_ROWS - 1, "plans": 1_000_000, "subscriptions": 1_000_000, "subscription_items": 10**6}
    assert seq_scans(plan, rows) == []
