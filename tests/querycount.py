"""Count the SQL statements a block runs (catches N+1 queries)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from flask import Flask
from sqlalchemy import event
from sqlalchemy.engine import Engine


@dataclass
class QueryLog:
    statements: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.statements)

    def reading(self, table: str) -> list[str]:
        """The statements that read `table`."""
        return [s for s in self.statements if f"FROM {table} " in f"{s} " or f"JOIN {table} " in f"{s} "]


@contextmanager
def count_queries(app: Flask) -> Iterator[QueryLog]:
    log = QueryLog()

    def record(conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
        if not statement.lstrip().upper().startswith(("SAVEPOINT", "RELEASE", "ROLLBACK", "BEGIN")):
            log.statements.append(statement)

    event.listen(Engine, "before_cursor_execute", record)
    try:
        yield log
    finally:
        event.remove(Engine, "before_cursor_execute", record)
