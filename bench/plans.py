"""Query plans for the statements the portal ran: which read a big table without an index.

SQLite: a statement is checked with `EXPLAIN QUERY PLAN` and the parameters it ran with, on a read-only
connection (nothing is executed). It is missed when a plan line says `SCAN <table>` for one of BIG_TABLES with
no index named (`USING INDEX`, `USING COVERING INDEX`): a walk of every row, which grows with the data set.

PostgreSQL: a statement is checked with `EXPLAIN (FORMAT JSON)` and the parameters it ran with, in a read-only
transaction that is rolled back (EXPLAIN without ANALYZE executes nothing). It is missed when a plan node is a
`Seq Scan` of one of BIG_TABLES that holds at least PLANNED_ROWS rows by the planner's statistics
(`pg_class.reltuples`). Below that the table fits in a few dozen pages and PostgreSQL rightly reads it whole
rather than through an index (as on data set S, where one tenant owns every row of the smaller tables); a big
table read whole past that size is a walk that grows with the data set. Index, index-only and bitmap scans
pass, as do sequential scans of the catalogue and tenant tables.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import psycopg

from bench.baseline import is_postgresql

# Tables that grow with customers and orders; the catalogue and tenant tables stay a few rows long.
BIG_TABLES = frozenset({"users", "customer_profiles", "user_sessions", "subscriptions", "subscription_items",
                        "subscription_events", "backorders", "charges", "impersonations", "impersonation_actions",
                        "invoices", "invoice_lines"})
CHECKED = ("SELECT", "INSERT", "UPDATE", "DELETE", "WITH")
KEYWORDS = ("where", "join", "on", "left", "right", "inner", "outer", "cross", "natural", "order", "group", "limit",
            "set", "using", "values", "select", "having", "union", "full", "returning", "default")
# `FROM t`, `JOIN t AS a`, `JOIN t a`, `UPDATE t`: a table and the name its plan lines use for it.
NAMED = re.compile(r'\b(?:FROM|JOIN|UPDATE|INTO)\s+"?(\w+)"?(?:\s+(?:AS\s+)?(?!(?:' + "|".join(KEYWORDS)
                   + r')\b)"?(\w+)"?)?', re.IGNORECASE)
SCAN = re.compile(r"^SCAN (\S+)(.*)$")
# PostgreSQL: a big table's sequential scan counts from this many rows (about 25 pages of 8 kB of users).
PLANNED_ROWS = 5_000


def tables_by_name(sql: str) -> dict[str, str]:
    """Each name a plan may give a table (the table's own and its aliases) -> the table."""
    names: dict[str, str] = {}
    for table, alias in NAMED.findall(sql):
        names[table.lower()] = table.lower()
        if alias:
            names[alias.lower()] = table.lower()
    return names


def full_scans(conn: sqlite3.Connection, sql: str, parameters: Sequence[Any] | dict[str, Any]) -> list[str]:
    """The plan lines of `sql` that walk a big table without an index."""
    if not sql.lstrip().upper().startswith(CHECKED):
        return []
    names = tables_by_name(sql)
    missed = []
    for *_, detail in conn.execute(f"EXPLAIN QUERY PLAN {sql}", parameters):
        scan = SCAN.match(detail)
        if scan is None or "INDEX" in scan.group(2):
            continue
        name = scan.group(1).lower()
        if names.get(name, name) in BIG_TABLES:
            missed.append(detail)
    return missed


def plan_nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """A node of PostgreSQL's JSON plan and every node beneath it (subplans and init plans included)."""
    yield node
    for child in node.get("Plans", ()):
        yield from plan_nodes(child)


def seq_scans(plan: list[dict[str, Any]], rows: dict[str, float]) -> list[str]:
    """The sequential scans of big tables in a plan of `EXPLAIN (FORMAT JSON)`, given each table's rows."""
    missed = []
    for top in plan:
        for node in plan_nodes(top["Plan"]):
            table = node.get("Relation Name", "")
            if node["Node Type"] == "Seq Scan" and table in BIG_TABLES and rows.get(table, 0) >= PLANNED_ROWS:
                alias = node.get("Alias", table)
                missed.append(f"Seq Scan on {table}{'' if alias == table else ' ' + alias} "
                              f"({rows[table]:,.0f} rows, {node.get('Filter', 'no filter')})")
    return missed


def seq_scans_postgresql(conn: psycopg.Connection[Any], sql: str, parameters: Any,
                         rows: dict[str, float]) -> list[str]:
    """The sequential scans of big tables in PostgreSQL's plan of `sql` with its parameters."""
    if not sql.lstrip().upper().startswith(CHECKED):
        return []
    with conn.transaction(force_rollback=True):
        conn.execute("SET TRANSACTION READ ONLY")
        found = conn.execute(f"EXPLAIN (FORMAT JSON) {sql}", parameters).fetchone()
    assert found is not None
    plan = found[0]
    return seq_scans(json.loads(plan) if isinstance(plan, str) else plan, rows)


def missed_indexes(path: str, statements: Iterable[tuple[str, Any]]) -> list[tuple[str, list[str]]]:
    """(statement, its full scans) for each distinct statement that walks a big table without an index; `path`
    is a SQLite file's path or a PostgreSQL URL."""
    found: dict[str, list[str]] = {}
    if is_postgresql(path):
        with psycopg.connect(path.replace("+psycopg", "")) as pg:
            rows = {name: float(count) for name, count in pg.execute(
                "SELECT c.relname, c.reltuples FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = current_schema() AND c.relkind = 'r' AND c.relname = ANY(%s)",
                (sorted(BIG_TABLES),))}
            for sql, parameters in statements:
                if sql not in found:
                    found[sql] = seq_scans_postgresql(pg, sql, parameters, rows)
        return [(sql, scans) for sql, scans in found.items() if scans]
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        for sql, parameters in statements:
            if sql not in found:
                found[sql] = full_scans(conn, sql, parameters)
    conn.close()
    return [(sql, scans) for sql, scans in found.items() if scans]
