"""Service errors name fields as the services call them (`public_key`); the API's fields are camelCase
(`publicKey`). `camel_fields()` renames the field of a refusal on its way out, so a problem's `errors`
names the field the client sent."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from app.services.errors import ServiceError


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


@contextmanager
def camel_fields() -> Iterator[None]:
    try:
        yield
    except ServiceError as error:
        if error.field:
            error.field = camel(error.field)
        raise
