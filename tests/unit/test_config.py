"""Configuration from the environment (no app, no database)."""

from __future__ import annotations

import os
import stat

import pytest

from app.config import ConfigError, Settings, normalize_database_url


def settings(tmp_path, **env: str) -> dict[str, object]:
    return Settings.from_env(env, str(tmp_path)).as_flask_config(str(tmp_path))


def test_defaults_run_on_sqlite_in_the_instance_folder(tmp_path):
    config = settings(tmp_path)
    assert config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path}/portal.sqlite3"
    assert config["RATELIMIT_STORAGE_URI"] == "memory://"
    assert config["SESSION_COOKIE_SECURE"] is False


def test_a_secret_key_is_generated_once_into_the_instance_folder(tmp_path):
    first = settings(tmp_path)["SECRET_KEY"]
    assert first == settings(tmp_path)["SECRET_KEY"] and len(first) == 64
    assert stat.S_IMODE(os.stat(tmp_path / "secret_key").st_mode) == 0o600


def test_production_refuses_to_start_without_a_secret_key(tmp_path):
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        settings(tmp_path, PORTAL_ENV="production", DATABASE_URL="postgresql://db/portal")


def test_production_refuses_sqlite(tmp_path):
    with pytest.raises(ConfigError, match="PostgreSQL"):
        settings(tmp_path, PORTAL_ENV="production", SECRET_KEY="k" * 32)


def test_production_settings(tmp_path):
    config = settings(tmp_path, PORTAL_ENV="production", SECRET_KEY="k" * 32,
                      DATABASE_URL="postgres://u@db/portal", REDIS_URL="redis://cache:6379/0")
    assert config["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://u@db/portal"
    assert config["RATELIMIT_STORAGE_URI"] == "redis://cache:6379/0"
    assert config["SESSION_COOKIE_SECURE"] is True
    assert not (tmp_path / "secret_key").exists()


def test_an_unknown_environment_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="PORTAL_ENV"):
        settings(tmp_path, PORTAL_ENV="staging")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgres://h/db", "postgresql+psycopg://h/db"),
        ("postgresql://h/db", "postgresql+psycopg://h/db"),
        ("postgresql+psycopg://h/db", "postgresql+psycopg://h/db"),
        ("sqlite:///x.db", "sqlite:///x.db"),
    ],
)
def test_database_urls_use_psycopg(url, expected):
    assert normalize_database_url(url) == expected


def test_other_commands_find_the_sandbox_clouds_a_running_flask_up_serves(tmp_path):
    import json

    from app.config import SANDBOX_FILE

    urls = {"SANDBOX_HETZNER_URL": "http://127.0.0.1:8701/v1", "SANDBOX_DIGITALOCEAN_URL": "http://127.0.0.1:8702/v2/"}
    assert Settings.from_env({}, str(tmp_path)).clouds["SANDBOX_HETZNER_URL"] is None
    (tmp_path / SANDBOX_FILE).write_text(json.dumps(urls))
    clouds = Settings.from_env({}, str(tmp_path)).clouds
    assert {key: clouds[key] for key in urls} == urls and clouds["SANDBOX_FROM_RUNNING_UP"]
    given = Settings.from_env({"SANDBOX_HETZNER_URL": "http://127.0.0.1:9/v1"}, str(tmp_path)).clouds
    assert given["SANDBOX_HETZNER_URL"] == "http://127.0.0.1:9/v1" and "SANDBOX_FROM_RUNNING_UP" not in given
    production = Settings.from_env({"PORTAL_ENV": "production"}, str(tmp_path)).clouds
    assert production["SANDBOX_HETZNER_URL"] is None
    (tmp_path / SANDBOX_FILE).write_text("not json")
    assert Settings.from_env({}, str(tmp_path)).clouds["SANDBOX_HETZNER_URL"] is None


def test_deleted_accounts_are_purged_after_30_days_unless_configured(tmp_path):
    assert settings(tmp_path)["ACCOUNT_PURGE_DAYS"] == 30
    assert settings(tmp_path, ACCOUNT_PURGE_DAYS="90")["ACCOUNT_PURGE_DAYS"] == 90


@pytest.mark.parametrize("value", ["soon", "-1", "3651"])
def test_a_bad_purge_period_is_refused(tmp_path, value):
    with pytest.raises(ConfigError, match="ACCOUNT_PURGE_DAYS"):
        settings(tmp_path, ACCOUNT_PURGE_DAYS=value)


def test_account_emails_are_throttled_per_address_and_per_client(tmp_path):
    config = settings(tmp_path, ACCOUNT_EMAIL_LIMIT="2 per hour")
    assert config["ACCOUNT_EMAIL_LIMIT"] == "2 per hour"
    assert config["ACCOUNT_EMAIL_LIMIT_ADDRESS"] == "20 per hour;100 per day"
