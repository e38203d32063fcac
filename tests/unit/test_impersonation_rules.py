"""Pure rules of impersonation: the reason, the time limit setting, the time left on the banner."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.config import ConfigError, Settings
from app.models import Impersonation, User
from app.services.impersonation import reason_problem
from app.web.impersonation import Banner


@pytest.mark.parametrize(
    ("reason", "problem"),
    [("", "at least 3"), ("ab", "at least 3"), ("#12", None), ("x" * 500, None), ("x" * 501, "at most 500")],
)
def test_a_reason_has_3_to_500_characters(reason, problem):
    found = reason_problem(reason)
    assert (found is None) if problem is None else (problem in found)


def minutes(tmp_path, **env: str) -> object:
    return Settings.from_env(env, str(tmp_path)).as_flask_config(str(tmp_path))["IMPERSONATION_MINUTES"]


def test_the_time_limit_defaults_to_an_hour(tmp_path):
    assert minutes(tmp_path) == 60
    assert minutes(tmp_path, IMPERSONATION_MINUTES="") == 60


def test_the_time_limit_comes_from_the_environment(tmp_path):
    assert minutes(tmp_path, IMPERSONATION_MINUTES=" 15 ") == 15


@pytest.mark.parametrize("value", ["0", "-5", "1441", "ten", "1.5"])
def test_a_bad_time_limit_refuses_to_start(tmp_path, value):
    with pytest.raises(ConfigError, match="IMPERSONATION_MINUTES"):
        minutes(tmp_path, IMPERSONATION_MINUTES=value)


@pytest.mark.parametrize(
    ("elapsed", "left"),
    [(timedelta(0), 60), (timedelta(seconds=1), 60), (timedelta(minutes=59, seconds=1), 1),
     (timedelta(minutes=60), 0), (timedelta(hours=2), 0)],
)
def test_the_banner_rounds_the_time_left_up(elapsed, left):
    start = datetime(2026, 3, 15, 10, 0, tzinfo=UTC)
    record = Impersonation(reason="Ticket #1", started_at=start, ends_at=start + timedelta(minutes=60),
                           support_user=User(name="Sam"), customer=User(name="Casey", email="c@example.com"))
    assert Banner.of(record, start + elapsed).minutes_left == left
