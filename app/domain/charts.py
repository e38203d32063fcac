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
CHAR_WIDTH: Final = 7  # about one character of the axis font (11 px), for the room the scale's labels need


@dataclass(frozen=True)
class Bar:
    label: str  # in the table beside the chart, e.g. "Mar 2027"
    value: int  # minor units or units; never negative
    text: str  # the value as people read it, e.g. "€12.50"
    x: float
    y: float
    width: float
    height: float
    axis_label: str = ""  # under the bar, short: "Mar" (the label when not given)
    axis_note: str = ""  # a second line under it, e.g. the year where it changes


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


def bar_chart(title: str, points: Sequence[tuple[str, int]], fmt: object, *, ticks: int = 4,
              axis: Sequence[tuple[str, str]] | None = None) -> BarChart:
    """A chart of `points` (label, value) in order, with `fmt(value) -> str` for the numbers people read.

    `axis` gives each bar's short label and second line under it (default: its label); the scale's labels get
    the room their longest one needs at the left.
    """
    format_value = fmt if callable(fmt) else str
    if any(value < 0 for _, value in points):
        raise ValueError("bar values must not be negative")
    top = nice_ceiling(max((value for _, value in points), default=0))
    plot_height = HEIGHT - BOTTOM - TOP
    tick_values = sorted({round(top * step / ticks) for step in range(ticks + 1)})
    tick_texts = [format_value(value) for value in tick_values]
    left = max(LEFT, 12 + CHAR_WIDTH * max(len(text) for text in tick_texts))
    slot = (WIDTH - left) / max(len(points), 1)
    bar_width = slot * 0.7
    labels = axis or [(label, "") for label, _ in points]
    bars = []
    for index, (label, value) in enumerate(points):
        height = plot_height * value / top
        bars.append(Bar(label, value, format_value(value), left + index * slot + (slot - bar_width) / 2,
                        HEIGHT - BOTTOM - height, bar_width, height, *labels[index]))
    return BarChart(title, tuple(bars), tuple(Tick(value, text, HEIGHT - BOTTOM - plot_height * value / top)
                                              for value, text in zip(tick_values, tick_texts, strict=True)),
                    left=left)


_MONTH_NAMES: Final = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def last_months(year: int, month: int, count: int = 12) -> tuple[int, ...]:
    """The `count` months up to and including (year, month), oldest first, each as year * 100 + month."""
    index = year * 12 + month - 1
    return tuple((i // 12) * 100 + i % 12 + 1 for i in range(index - count + 1, index + 1))


def month_label(key: int) -> str:
    """202701 -> "Jan 2027"."""
    return f"{_MONTH_NAMES[key % 100 - 1]} {key // 100}"


def monthly_chart(title: str, months: Sequence[int], totals: dict[int, int], fmt: object) -> BarChart:
    """A bar per month of `months` (year * 100 + month), zero where `totals` has none; under the bars the
    month's short name, and the year under the first bar and under each January."""
    axis = [(_MONTH_NAMES[key % 100 - 1], str(key // 100) if index == 0 or key % 100 == 1 else "")
            for index, key in enumerate(months)]
    return bar_chart(title, [(month_label(key), totals.get(key, 0)) for key in months], fmt, axis=axis)
