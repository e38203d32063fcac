"""Configuration from the environment, with safe defaults for a single machine.

Every setting is read once, in `Config.from_env`. The README's configuration table lists them all.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

ENVIRONMENTS = ("development", "production", "testing")

# Secrets and sandbox endpoints: unset unless given.
CLOUD_SETTINGS = ("CREDENTIALS_KEY", "HETZNER_TOKEN", "DIGITALOCEAN_TOKEN", "SANDBOX_HETZNER_URL",
                  "SANDBOX_DIGITALOCEAN_URL", "STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET", "SANDBOX_STRIPE_URL",
                  "SANDBOX_MICROSOFT_URL", "SANDBOX_STACKIT_URL")
# The real APIs, used with a tenant's own token.
CLOUD_ENDPOINTS = {"HETZNER_API_URL": "https://api.hetzner.cloud/v1",
                   "DIGITALOCEAN_API_URL": "https://api.digitalocean.com/v2/",
                   "STRIPE_API_URL": "https://api.stripe.com",
                   "MICROSOFT_MARKETPLACE_API_URL": "https://marketplaceapi.microsoft.com/api",
                   "MICROSOFT_LOGIN_URL": "https://login.microsoftonline.com",
                   "STACKIT_MARKETPLACE_API_URL": "https://stackit-marketplace.api.stackit.cloud",
                   "STACKIT_MARKETPLACE_KEYS_URL": "https://keys.marketplace.stackit.cloud/v1/resolve-customer/keys.json",
                   "STACKIT_TOKEN_URL": "https://service-account.api.stackit.cloud/token",
                   # What the sandbox's fake Stripe signs its webhooks with (not a secret: it never leaves the machine).
                   "SANDBOX_STRIPE_WEBHOOK_SECRET": "whsec_sandbox_local"}


class ConfigError(RuntimeError):
    """The portal refuses to start with this configuration."""


def _bool(value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _minutes(value: str | None, *, default: int) -> int:
    """A whole number of minutes from 1 to 24 hours (how long a support user may impersonate a customer)."""
    if value is None or value.strip() == "":
        return default
    try:
        minutes = int(value)
    except ValueError:
        raise ConfigError(f"IMPERSONATION_MINUTES must be a whole number of minutes, not {value!r}.") from None
    if not 1 <= minutes <= 24 * 60:
        raise ConfigError("IMPERSONATION_MINUTES must be between 1 and 1440.")
    return minutes


def _days(value: str | None, *, default: int) -> int:
    """How many days a deleted account's personal data is kept before it is purged (0 to ten years)."""
    if value is None or value.strip() == "":
        return default
    try:
        days = int(value)
    except ValueError:
        raise ConfigError(f"ACCOUNT_PURGE_DAYS must be a whole number of days, not {value!r}.") from None
    if not 0 <= days <= 3650:
        raise ConfigError("ACCOUNT_PURGE_DAYS must be between 0 and 3650.")
    return days


def _cache_seconds(environ: os._Environ[str] | dict[str, str], name: str, *, default: float) -> float:
    """How long a cache (setting `name`) keeps an answer, in seconds; 0 keeps none."""
    value = environ.get(name)
    if value is None or value.strip() == "":
        return default
    try:
        seconds = float(value)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds, not {value!r}.") from None
    if not 0 <= seconds <= 3600:
        raise ConfigError(f"{name} must be between 0 (no cache) and 3600.")
    return seconds


def _hosts(value: str) -> frozenset[str]:
    """`portal.example.com, Admin.example.com` -> the lower-case names, ports dropped."""
    names = (name.strip().lower().rsplit(":", 1)[0] for name in value.split(","))
    return frozenset(name for name in names if name)


SANDBOX_URLS = ("SANDBOX_HETZNER_URL", "SANDBOX_DIGITALOCEAN_URL", "SANDBOX_STRIPE_URL", "SANDBOX_MICROSOFT_URL",
                "SANDBOX_STACKIT_URL")
SANDBOX_FILE = "sandbox_clouds.json"  # written by `flask up` while it serves the sandbox clouds


def running_sandbox(environ: os._Environ[str] | dict[str, str], env: str, instance_path: str) -> dict[str, str]:
    """Outside production, other commands (`flask jobs run`, `flask shell`) find the sandbox clouds that a
    running `flask up` serves on this machine, unless the environment names some."""
    if env == "production" or any(environ.get(key) for key in SANDBOX_URLS):
        return {}
    try:
        urls = json.loads((Path(instance_path) / SANDBOX_FILE).read_text())
    except (OSError, ValueError):
        return {}
    found = {key: urls[key] for key in SANDBOX_URLS if isinstance(urls, dict) and isinstance(urls.get(key), str)}
    return found | {"SANDBOX_FROM_RUNNING_UP": "1"} if found else {}


def normalize_database_url(url: str) -> str:
    """Use the psycopg 3 driver for PostgreSQL URLs written the usual way."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def instance_secret_key(instance_path: str) -> str:
    """Read the secret key kept in the instance folder, creating it (mode 0600) on first run."""
    path = Path(instance_path) / "secret_key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
    return path.read_text().strip()


@dataclass(frozen=True)
class Settings:
    """Typed view of the environment; turned into Flask config keys by `as_flask_config`."""

    env: str
    secret_key: str | None
    database_url: str
    redis_url: str | None
    default_tenant: str
    dns_base_domain: str
    login_limit_account: str
    login_limit_address: str
    account_email_limit: str
    account_email_limit_address: str
    account_purge_days: int
    proxy_hops: int
    log_level: str
    max_content_length: int
    sandbox_boot_seconds: float
    clouds: dict[str, str | None]
    impersonation_minutes: int
    availability_cache_seconds: float
    tenant_cache_seconds: float
    extra_hosts: frozenset[str]
    mail: dict[str, object]

    @classmethod
    def from_env(cls, environ: os._Environ[str] | dict[str, str], instance_path: str) -> Settings:
        env = environ.get("PORTAL_ENV", "development").strip().lower()
        if env not in ENVIRONMENTS:
            raise ConfigError(f"PORTAL_ENV must be one of {', '.join(ENVIRONMENTS)}, not {env!r}.")
        default_db = "sqlite:///" + os.path.join(instance_path, "portal.sqlite3")
        return cls(
            env=env,
            secret_key=environ.get("SECRET_KEY") or None,
            database_url=normalize_database_url(environ.get("DATABASE_URL") or default_db),
            redis_url=environ.get("REDIS_URL") or None,
            default_tenant=environ.get("DEFAULT_TENANT", "default"),
            dns_base_domain=environ.get("DNS_BASE_DOMAIN", "cloud.example.test"),
            login_limit_account=environ.get("LOGIN_LIMIT_ACCOUNT", "5 per minute;20 per hour"),
            login_limit_address=environ.get("LOGIN_LIMIT_ADDRESS", "20 per minute;200 per hour"),
            account_email_limit=environ.get("ACCOUNT_EMAIL_LIMIT", "5 per hour;20 per day"),
            account_email_limit_address=environ.get("ACCOUNT_EMAIL_LIMIT_ADDRESS", "20 per hour;100 per day"),
            account_purge_days=_days(environ.get("ACCOUNT_PURGE_DAYS"), default=30),
            proxy_hops=int(environ.get("PROXY_HOPS", "0")),
            log_level=environ.get("LOG_LEVEL", "INFO").upper(),
            max_content_length=int(environ.get("MAX_CONTENT_LENGTH", str(1024 * 1024))),
            sandbox_boot_seconds=float(environ.get("SANDBOX_BOOT_SECONDS", "8")),
            clouds={key: environ.get(key) or None for key in CLOUD_SETTINGS} | {
                key: environ.get(key) or default for key, default in CLOUD_ENDPOINTS.items()}
            | running_sandbox(environ, env, instance_path),
            impersonation_minutes=_minutes(environ.get("IMPERSONATION_MINUTES"), default=60),
            availability_cache_seconds=_cache_seconds(environ, "AVAILABILITY_CACHE_SECONDS", default=30),
            tenant_cache_seconds=_cache_seconds(environ, "TENANT_CACHE_SECONDS", default=30),
            extra_hosts=_hosts(environ.get("EXTRA_HOSTS", "")),
            mail=mail_settings(environ, env, instance_path),
        )

    def as_flask_config(self, instance_path: str) -> dict[str, object]:
        production = self.env == "production"
        if production and not self.secret_key:
            raise ConfigError("SECRET_KEY must be set when PORTAL_ENV=production.")
        if production and self.database_url.startswith("sqlite"):
            raise ConfigError("DATABASE_URL must point at PostgreSQL when PORTAL_ENV=production.")
        return {
            "PORTAL_ENV": self.env,
            "SECRET_KEY": self.secret_key or instance_secret_key(instance_path),
            "SQLALCHEMY_DATABASE_URI": self.database_url,
            "SQLALCHEMY_ENGINE_OPTIONS": engine_options(self.database_url),
            "REDIS_URL": self.redis_url,
            "RATELIMIT_STORAGE_URI": self.redis_url or "memory://",
            "RATELIMIT_HEADERS_ENABLED": False,
            "LOGIN_LIMIT_ACCOUNT": self.login_limit_account,
            "LOGIN_LIMIT_ADDRESS": self.login_limit_address,
            "ACCOUNT_EMAIL_LIMIT": self.account_email_limit,
            "ACCOUNT_EMAIL_LIMIT_ADDRESS": self.account_email_limit_address,
            "ACCOUNT_PURGE_DAYS": self.account_purge_days,
            "DEFAULT_TENANT": self.default_tenant,
            "DNS_BASE_DOMAIN": self.dns_base_domain,
            "PROXY_HOPS": self.proxy_hops,
            "LOG_LEVEL": self.log_level,
            "MAX_CONTENT_LENGTH": self.max_content_length,
            "MAX_FORM_PARTS": 200,
            "MAX_FORM_MEMORY_SIZE": 512 * 1024,
            "SESSION_COOKIE_HTTPONLY": True,
            "SESSION_COOKIE_SAMESITE": "Lax",
            "SESSION_COOKIE_SECURE": production,
            "SESSION_COOKIE_NAME": "__Host-session" if production else "session",
            "PREFERRED_URL_SCHEME": "https" if production else "http",
            "WTF_CSRF_TIME_LIMIT": None,
            "WTF_CSRF_SSL_STRICT": production,
            "ARGON2_PARAMETERS": {},
            "SEND_FILE_MAX_AGE_DEFAULT": 3600,
            "SANDBOX_BOOT_SECONDS": self.sandbox_boot_seconds,
            "SANDBOX_ACTION_SECONDS": self.sandbox_boot_seconds * 3 / 8,
            "SESSION_LIFETIME_HOURS": 12,
            "CLOUD_TIMEOUT": 15.0,
            "SANDBOX_IN_PROCESS": False,
            "IMPERSONATION_MINUTES": self.impersonation_minutes,
            "AVAILABILITY_CACHE_SECONDS": self.availability_cache_seconds,
            "TENANT_CACHE_SECONDS": self.tenant_cache_seconds,
            "EXTRA_HOSTS": self.extra_hosts,
            **self.mail,
            **self.clouds,
        }


MAIL_BACKENDS = ("smtp", "file", "locmem", "console")


def mail_settings(environ: os._Environ[str] | dict[str, str], env: str, instance_path: str) -> dict[str, object]:
    """How email leaves (flask-mailman's settings): SMTP in production, a local outbox folder in development,
    kept in memory in tests."""
    default_backend = {"production": "smtp", "development": "file", "testing": "locmem"}[env]
    backend = (environ.get("MAIL_BACKEND") or default_backend).strip().lower()
    if backend not in MAIL_BACKENDS:
        raise ConfigError(f"MAIL_BACKEND must be one of {', '.join(MAIL_BACKENDS)}, not {backend!r}.")
    use_tls, use_ssl = _bool(environ.get("MAIL_USE_TLS"), True), _bool(environ.get("MAIL_USE_SSL"), False)
    if use_tls and use_ssl:
        raise ConfigError("Set MAIL_USE_TLS (STARTTLS, usually port 587) or MAIL_USE_SSL (port 465), not both.")
    port = environ.get("MAIL_PORT") or ("465" if use_ssl else "587")
    try:
        retention = int(environ.get("EMAIL_BODY_RETENTION_DAYS") or "30")
        port_number = int(port)
    except ValueError:
        raise ConfigError("MAIL_PORT and EMAIL_BODY_RETENTION_DAYS must be whole numbers.") from None
    return {
        "MAIL_BACKEND": backend,
        "MAIL_SERVER": environ.get("MAIL_SERVER") or "localhost",
        "MAIL_PORT": port_number,
        "MAIL_USE_TLS": use_tls,
        "MAIL_USE_SSL": use_ssl,
        "MAIL_USERNAME": environ.get("MAIL_USERNAME") or None,
        "MAIL_PASSWORD": environ.get("MAIL_PASSWORD") or None,
        "MAIL_TIMEOUT": 20,
        "MAIL_DEFAULT_SENDER": environ.get("MAIL_DEFAULT_SENDER") or "noreply@localhost",
        "MAIL_FILE_PATH": environ.get("MAIL_FILE_PATH") or os.path.join(instance_path, "outbox"),
        "EMAIL_BODY_RETENTION_DAYS": retention,
        # The development outbox page (/outbox) lists the tenant's latest emails, reset links included, to
        # anyone: only where no email leaves the machine, and never in production.
        "OUTBOX_PAGE": env != "production" and backend != "smtp",
        # Links in emails sent by the worker (no request to take the host from) go to the tenant's first host,
        # on this port when it is not the scheme's own (`flask up` sets it to the port it serves on).
        "PUBLIC_PORT": int(environ["PUBLIC_PORT"]) if (environ.get("PUBLIC_PORT") or "").isdigit() else None,
    }


def engine_options(url: str) -> dict[str, object]:
    """Pool settings that suit each database (PostgreSQL's idle connections are pinged: app/extensions.py)."""
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": 15, "check_same_thread": False}}
    return {"pool_size": 5, "max_overflow": 10}


def read_engine(url: str, options: dict[str, object]) -> dict[str, object] | None:
    """PostgreSQL: the engine of requests that only read (app.extensions.READS), autocommit and read-only on its
    own pool; none on SQLite."""
    if not url.startswith("postgresql"):
        return None
    return {**options, "url": normalize_database_url(url), "isolation_level": "AUTOCOMMIT",
            "connect_args": {"options": "-c default_transaction_read_only=on"}}
