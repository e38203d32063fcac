"""The benchmark's own checks: full scans of big tables are found, per-request form values are not compared."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import pytest

from bench.plans import full_scans, tables_by_name
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
