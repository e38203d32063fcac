"""One page of a list: which rows to read, and what the pager needs to know."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from sqlalchemy import Select

T = TypeVar("T")

# Pages past this are empty anyway; the bound keeps OFFSET within every database's integer range.
MAX_PAGE = 100_000


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of rows, and whether there are more (found by reading one row more than the page)."""

    rows: list[T]
    page: int
    per_page: int
    has_next: bool

    @property
    def has_prev(self) -> bool:
        return self.page > 1


def page_number(page: int) -> int:
    """Any requested page number as one the database can be asked for: 1 to MAX_PAGE."""
    return min(max(page, 1), MAX_PAGE)


def one_page_and_a_peek(statement: Select, page: int, per_page: int) -> Select:
    """`statement` limited to page `page` plus one row, which tells whether another page follows."""
    return statement.offset((page - 1) * per_page).limit(per_page + 1)
