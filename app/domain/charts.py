"""Bar charts as numbers: where each bar and tick goes. Pure; `templates/_macros/charts.html` draws them as
inline SVG (no script, nothing the Content-Security-Policy must relax for), with a table of the same
numbers beside it for screen readers and for anyone who wants the figures.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

WIDTH: Final = 640
HEIGHT: Final = 220
LEFT: Final = 64  # room for the axis labels
BOTTOM: Final = 28  # room for the bar labels
TOP: Final = 12


@dataclass(frozen=True)
class Bar:
    label: str  # under the bar, e.g. "Mar 2027"
    value: int  # minor units or units; never negative
    text: str  # the value as people read it, e.g. "€12.50"
    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True)
class Tick:
    value: int
    text: str
    y: float


@dataclass(frozen=True)
class BarChart:
    title: str
    bars: tuple[Bar, ...]
    ticks: tuple[Tick, ...]
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    baseline: float = HEIGHT - BOTTOM

    @property
    def empty(self) -> bool:
        return not any(bar.value for bar in self.bars)


def nice_ceiling(value: int) -> int:
    """The smallest 1, 2, 2.5 or 5 times a power of ten that is at least `value` (at least 1)."""
    if value <= 1:
        return 1
    magnitude = 1
    while magnitude * 10 < value:
        magnitude *= 10
    for step in (1, 2, 5, 10):
        if step * magnitude >= value:
            return step * magnitude
    return 10 * magnitude  # pragma: no cover (the loop always returns)


def bar_chart(title: str, points: Sequence[tuple[str, int]], fmt: object, *, ticks: int = 4) -> BarChart:
    """A chart of `points` (label, value) in order, with `fmt(value) -> str` for the numbers people read."""
    format_value = fmt if callable(fmt) else str
    if any(value < 0 for _, value in points):
        raise ValueError("bar values must not be negative")
    top = nice_ceiling(max((value for _, value in points), default=0))
    plot_height = HEIGHT - BOTTOM - TOP
    slot = (WIDTH - LEFT) / max(len(points), 1)
    bar_width = slot * 0.7
    bars = []
    for index, (label, value) in enumerate(points):
        height = plot_height * value / top
        bars.append(Bar(label, value, format_value(value), LEFT + index * slot + (slot - bar_width) / 2,
                        HEIGHT - BOTTOM - height, bar_width, height))
    tick_values = sorted({round(top * step / ticks) for step in range(ticks + 1)})
    return BarChart(title, tuple(bars), tuple(Tick(value, format_value(value), HEIGHT - BOTTOM - plot_height
                                                   * value / top) for value in tick_values))


_MONTH_NAMES: Final = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def last_months(year: int, month: int, count: int = 12) -> tuple[int, ...]:
    """The `count` months up to and including (year, month), oldest first, each as year * 100 + month."""
    index = year * 12 + month - 1
    return tuple((i // 12) * 100 + i % 12 + 1 for i in range(index - count + 1, index + 1))


def month_label(key: int) -> str:
    """202701 -> "Jan 2027"."""
    return f"{_MONTH_NAMES[key % 100 - 1]} {key // 100}"


def monthly_chart(title: str, months: Sequence[int], totals: dict[int, int], fmt: object) -> BarChart:
    """A bar per month of `months` (year * 100 + month), zero where `totals` has none."""
    return bar_chart(title, [(month_label(key), totals.get(key, 0)) for key in months], fmt)
