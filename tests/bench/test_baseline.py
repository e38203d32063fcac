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
