"""Column types and mixins shared by the models."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Mapped, mapped_column

from app.clock import now


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Timezone-aware UTC in Python, whatever the database keeps (SQLite drops the offset)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; use app.clock.now()")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def enum_type(enum: type[StrEnum], name: str) -> sa.Enum:
    """A StrEnum stored as its value in a VARCHAR with a CHECK constraint (no native enum types)."""
    return sa.Enum(
        enum,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=max(len(m.value) for m in enum),
        values_callable=lambda members: [m.value for m in members],
        validate_strings=True,
    )


class Timestamps:
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now, onupdate=now, nullable=False)


class json_object(sa.sql.functions.FunctionElement[Any]):
    """`json_object('key', value, ...)`: a JSON object built by the database (PostgreSQL's json_build_object),
    for set-based statements that write a JSON column."""

    type = sa.JSON()
    name = "json_object"
    inherit_cache = True


@compiles(json_object)
def _json_object(element: json_object, compiler: Any, **kw: Any) -> str:
    return f"json_object({compiler.process(element.clauses, **kw)})"


@compiles(json_object, "postgresql")
def _json_build_object(element: json_object, compiler: Any, **kw: Any) -> str:
    return f"json_build_object({compiler.process(element.clauses, **kw)})"
