"""Counting the SQL statements a request sends (what `bench/` reports, asserted in tests)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from flask import Flask
from sqlalchemy import event

from app.extensions import db

# Transaction control is not a query: SQLite gets an explicit BEGIN from the portal (app/extensions.py).
_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")


@contextmanager
def statements(app: Flask) -> Iterator[list[str]]:
    """The statements (transaction control aside) sent on the app's engine inside the block."""
    sent: list[str] = []

    def record(_conn, _cursor, statement, _parameters, _context, _many) -> None:  # type: ignore[no-untyped-def]
        if not statement.lstrip().upper().startswith(_CONTROL):
            sent.append(statement)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", record)


def reading(sent: list[str], table: str) -> list[str]:
    """The statements that read from `table`."""
    return [s for s in sent if f"FROM {table} " in s + " " or f"JOIN {table} " in s + " "]
