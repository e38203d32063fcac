"""Column types and mixins shared by the models."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
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


class json_boolean(sa.sql.functions.FunctionElement[Any]):
    """A SQL condition as a JSON `true` or `false`, for `json_object` (SQLite has no boolean type of its own)."""

    type = sa.JSON()
    name = "json_boolean"
    inherit_cache = True


@compiles(json_boolean)
def _json_boolean(element: json_boolean, compiler: Any, **kw: Any) -> str:
    return f"json(CASE WHEN {compiler.process(element.clauses, **kw)} THEN 'true' ELSE 'false' END)"


@compiles(json_boolean, "postgresql")
def _json_boolean_postgresql(element: json_boolean, compiler: Any, **kw: Any) -> str:
    return f"({compiler.process(element.clauses, **kw)})"


class json_string(sa.sql.functions.FunctionElement[str]):
    """`json_string(column, 'key')`: the JSON object's member `key` when it is a string, else NULL (as Python's
    `value if isinstance(value, str) else None`)."""

    type = sa.String()
    name = "json_string"
    inherit_cache = True


@compiles(json_string)
def _json_string(element: json_string, compiler: Any, **kw: Any) -> str:
    column, key = (compiler.process(clause, **kw) for clause in element.clauses)
    return (f"CASE WHEN json_type({column}, '$.' || {key}) = 'text' "
            f"THEN json_extract({column}, '$.' || {key}) END")


@compiles(json_string, "postgresql")
def _json_string_postgresql(element: json_string, compiler: Any, **kw: Any) -> str:
    column, key = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"CASE WHEN json_typeof({column} -> {key}) = 'string' THEN {column} ->> {key} END"


class IdList(sa.TypeDecorator[list[int]]):
    """A list of ids bound as one parameter: a JSON array on SQLite, an array on PostgreSQL (for `among`)."""

    impl = sa.String
    cache_ok = True

    def load_dialect_impl(self, dialect: sa.Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.ARRAY(sa.BigInteger()))
        return dialect.type_descriptor(sa.String())

    def process_bind_param(self, value: list[int] | None, dialect: sa.Dialect) -> Any:
        if value is None or dialect.name == "postgresql":
            return value
        return json.dumps([int(item) for item in value])


class among(sa.sql.functions.FunctionElement[bool]):
    """`among(column, ids)`: `column IN (ids)` with the ids bound as one parameter, however many there are (a
    statement run for each chunk of a long list then costs nothing per id to prepare, and stays one cached
    statement)."""

    type = sa.Boolean()
    name = "among"
    inherit_cache = True

    def __init__(self, column: sa.ColumnElement[int], ids: list[int]) -> None:
        super().__init__(column, sa.bindparam(None, list(ids), type_=IdList()))


@compiles(among)
def _among(element: among, compiler: Any, **kw: Any) -> str:
    column, ids = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"{column} IN (SELECT value FROM json_each({ids}))"  # noqa: S608 - compiled clauses; the ids are bound


@compiles(among, "postgresql")
def _among_postgresql(element: among, compiler: Any, **kw: Any) -> str:
    column, ids = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"{column} = ANY({ids})"
