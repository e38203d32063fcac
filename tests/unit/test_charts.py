"""Bar charts as numbers (app/domain/charts.py)."""

from __future__ import annotations

import pytest

from app.domain.charts import HEIGHT, bar_chart, nice_ceiling


@pytest.mark.parametrize(("value", "ceiling"), [(0, 1), (1, 1), (7, 10), (12, 20), (1999, 2000), (2001, 5000),
                                                (50_001, 100_000)])
def test_the_scale_ends_on_a_round_number(value, ceiling):
    assert nice_ceiling(value) == ceiling


def test_bars_are_as_tall_as_their_share_of_the_scale_and_keep_their_order():
    chart = bar_chart("Spend", [("Jan", 500), ("Feb", 1000), ("Mar", 0)], lambda v: f"{v / 100:.2f}")
    jan, feb, mar = chart.bars
    assert [bar.label for bar in chart.bars] == ["Jan", "Feb", "Mar"]
    assert feb.height == pytest.approx(2 * jan.height)
    assert mar.height == 0 and mar.y == chart.baseline
    assert jan.x < feb.x < mar.x
    assert feb.text == "10.00"
    assert chart.ticks[0].value == 0 and chart.ticks[-1].value == 1000
    assert all(0 <= tick.y <= HEIGHT for tick in chart.ticks)
    assert not chart.empty


def test_a_chart_of_nothing_is_empty_and_negative_values_are_refused():
    assert bar_chart("Spend", [("Jan", 0)], str).empty
    assert bar_chart("Spend", [], str).empty
    with pytest.raises(ValueError, match="negative"):
        bar_chart("Spend", [("Jan", -1)], str)


def test_the_scale_gets_the_room_its_longest_label_needs():
    narrow = bar_chart("Traffic", [("Aug", 1327)], lambda v: f"{v:,} GB")
    wide = bar_chart("Snapshots", [("Aug", 60)], lambda v: f"{v:,} GB-month")
    assert wide.left > narrow.left >= 64  # "100 GB-month" needs more room than "2,000 GB"
    assert wide.bars[0].x > wide.left and wide.left - 6 >= 7 * len("100 GB-month")


def test_a_monthly_chart_names_the_month_under_each_bar_and_the_year_where_it_starts_or_changes():
    from app.domain.charts import monthly_chart

    chart = monthly_chart("Spend", [202611, 202612, 202701, 202702], {202612: 990}, str)
    assert [(bar.axis_label, bar.axis_note) for bar in chart.bars] == [
        ("Nov", "2026"), ("Dec", ""), ("Jan", "2027"), ("Feb", "")]
    assert [bar.label for bar in chart.bars] == ["Nov 2026", "Dec 2026", "Jan 2027", "Feb 2027"]
