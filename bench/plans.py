"""SQLite's query plans for the statements the portal ran: which read a big table without an index.

A statement is checked with `EXPLAIN QUERY PLAN` and the parameters it ran with, on a read-only connection
(nothing is executed). It is missed when a plan line says `SCAN <table>` for one of BIG_TABLES with no
index named (`USING INDEX`, `USING COVERING INDEX`): a walk of every row, which grows with the data set.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

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


def missed_indexes(path: str, statements: Iterable[tuple[str, Any]]) -> list[tuple[str, list[str]]]:
    """(statement, its full scans) for each distinct statement that walks a big table without an index."""
    found: dict[str, list[str]] = {}
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        for sql, parameters in statements:
            if sql not in found:
                found[sql] = full_scans(conn, sql, parameters)
    conn.close()
    return [(sql, scans) for sql, scans in found.items() if scans]
