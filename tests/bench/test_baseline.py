"""The bare baseline reads SQLite's stored values and psycopg's alike."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from bench.baseline import bare_queue, baseline_database, is_postgresql, loaded, moment


def test_times_are_utc_from_sqlite_text_and_postgresql_datetimes() -> None:
    expected = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert moment("2026-01-01 12:00:00.000000") == expected
    assert moment(datetime(2026, 1, 1, 13, 0, tzinfo=timezone(timedelta(hours=1)))) == expected
    assert moment(None) is None


def test_json_columns_from_sqlite_text_and_postgresql_values() -> None:
    assert loaded('{"location": "fsn1"}') == loaded({"location": "fsn1"}) == {"location": "fsn1"}
    assert loaded("[]") == loaded([]) == []


def test_the_baseline_takes_a_sqlite_path_or_a_postgresql_url() -> None:
    assert baseline_database("sqlite:////data/bench-S.sqlite3") == "/data/bench-S.sqlite3"
    url = "postgresql://127.0.0.1:5432/bench"
    assert baseline_database(url) == url and is_postgresql(url)
    assert bare_queue("/data/bench-S.sqlite3") == "/data/bare-queue.sqlite3"
    assert bare_queue(url).endswith("instance/bench/bare-queue.sqlite3")


def test_the_bare_spend_chart_draws_what_the_portals_draws() -> None:
    from app.domain.charts import bar_chart as portal_chart
    from bench.baseline import bar_chart, money

    points = [("Jan 2026", 0), ("Feb 2026", 1178), ("Mar 2026", 23562), ("Apr 2026", 1)]
    axis = [("Jan", "2026"), ("Feb", ""), ("Mar", ""), ("Apr", "")]
    bare = bar_chart("t", points, "EUR", axis)
    portal = portal_chart("t", points, lambda v: money(v, "EUR"), axis=axis)
    assert bare["left"] == portal.left
    assert [(b["x"], b["y"], b["height"], b["text"], b["axis_label"], b["axis_note"]) for b in bare["bars"]] == [
        (b.x, b.y, b.height, b.text, b.axis_label, b.axis_note) for b in portal.bars]
    assert [(t["y"], t["text"]) for t in bare["ticks"]] == [(t.y, t.text) for t in portal.ticks]


def test_the_bare_api_ids_are_the_portals(app) -> None:  # type: ignore[no-untyped-def]
    from app.blueprints.api.ids import encode
    from bench.baseline import SECRET_KEY, opaque_id

    with app.test_request_context():
        app.config["SECRET_KEY"], kept = SECRET_KEY, app.config["SECRET_KEY"]
        try:
            assert [opaque_id(kind, n) for kind in ("sub", "plan") for n in (1, 77, 2**31 - 1)] == [
                encode(kind, n) for kind in ("sub", "plan") for n in (1, 77, 2**31 - 1)]
        finally:
            app.config["SECRET_KEY"] = kept


def test_the_bench_customers_tokens_are_well_formed_and_their_own() -> None:
    from app.domain.api_tokens import lookup_of
    from bench.data import api_token

    tokens = [api_token(user_id) for user_id in (1, 2, 1001)]
    assert len(set(tokens)) == 3 and api_token(1) == tokens[0]
    assert all(lookup_of(token) == token[4:16] for token in tokens)
