"""The portal's app factory: `create_app()` builds a configured Flask app in small steps."""

from __future__ import annotations

import logging
import os
from typing import Any

from flask import Flask, g
from sqlalchemy import create_engine
from werkzeug.middleware.proxy_fix import ProxyFix

from app import tasks
from app.clock import SystemClock
from app.config import Settings, read_engine
from app.extensions import READS, csrf, db, limiter, login_manager, mail, migrate
from app.web.access import load_user

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the app from the environment; `test_config` overrides any setting (tests only)."""
    app = Flask(
        __name__,
        instance_path=os.environ.get("INSTANCE_PATH") or os.path.join(PROJECT_ROOT, "instance"),
        template_folder=os.path.join(PROJECT_ROOT, "templates"),
        static_folder=os.path.join(PROJECT_ROOT, "static"),
    )
    configure_settings(app, test_config)
    configure_logging(app)
    configure_request_checks(app)
    configure_extensions(app)
    configure_web(app)
    configure_blueprints(app)
    configure_cli(app)
    return app


def configure_settings(app: Flask, test_config: dict[str, Any] | None) -> None:
    os.makedirs(app.instance_path, exist_ok=True)
    app.config.from_mapping(Settings.from_env(os.environ, app.instance_path).as_flask_config(app.instance_path))
    if test_config:
        app.config.from_mapping(test_config)
    app.extensions["clock"] = app.config.get("CLOCK") or SystemClock()
    if app.config["PROXY_HOPS"]:
        hops = app.config["PROXY_HOPS"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            record.request_id = g.get("request_id", "-")
        except RuntimeError:  # outside a request
            record.request_id = "-"
        return True


def configure_logging(app: Flask) -> None:
    root = logging.getLogger()
    if not any(getattr(h, "_portal", False) for h in root.handlers):
        handler = logging.StreamHandler()
        handler._portal = True  # type: ignore[attr-defined]
        handler.addFilter(_RequestIdFilter())
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s"))
        root.addHandler(handler)
    root.setLevel(app.config["LOG_LEVEL"])


def configure_extensions(app: Flask) -> None:
    from app import models  # noqa: F401  (register the models on the metadata)

    db.init_app(app)
    reads = read_engine(app.config["SQLALCHEMY_DATABASE_URI"], app.config.get("SQLALCHEMY_ENGINE_OPTIONS") or {})
    if reads is not None:
        app.extensions[READS] = create_engine(**reads)
    migrate.init_app(app, db, directory=os.path.join(PROJECT_ROOT, "migrations"))
    csrf.init_app(app)
    limiter.init_app(app)
    mail.init_app(app)
    login_manager.init_app(app)
    login_manager.session_protection = "basic"
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please log in to continue."
    login_manager.login_message_category = "info"
    login_manager.user_loader(load_user)
    tasks.init_app(app)


def configure_request_checks(app: Flask) -> None:
    """First on every request, before the extensions' own checks (CSRF, rate limits), so that even their
    refusals carry a request id and the tenant's brand: the request id, the tenant, the input checks."""
    from app.web import api, inputs, security, tenancy

    api.init_app(app)
    security.init_app(app)
    tenancy.init_app(app)
    inputs.init_app(app)


def configure_web(app: Flask) -> None:
    from app.web import errors, formatting, impersonation

    impersonation.init_app(app)  # after tenancy: it needs the tenant
    errors.init_app(app)
    formatting.init_app(app)


def configure_blueprints(app: Flask) -> None:
    from app.blueprints import api
    from app.blueprints.account import bp as account_bp
    from app.blueprints.admin import bp as admin_bp
    from app.blueprints.auth import bp as auth_bp
    from app.blueprints.billing import bp as billing_bp
    from app.blueprints.catalogue import bp as catalogue_bp
    from app.blueprints.marketplace import bp as marketplace_bp
    from app.blueprints.orders import bp as orders_bp
    from app.blueprints.outbox import bp as outbox_bp
    from app.blueprints.subscriptions import bp as subscriptions_bp
    from app.blueprints.support import bp as support_bp
    from app.blueprints.webhooks import bp as webhooks_bp

    app.register_blueprint(catalogue_bp)
    app.register_blueprint(auth_bp)
    app.register_blueprint(orders_bp)
    app.register_blueprint(subscriptions_bp, url_prefix="/subscriptions")
    app.register_blueprint(admin_bp, url_prefix="/admin")
    app.register_blueprint(support_bp, url_prefix="/support")
    app.register_blueprint(account_bp, url_prefix="/account")
    app.register_blueprint(billing_bp)
    app.register_blueprint(marketplace_bp)
    app.register_blueprint(webhooks_bp)  # signed by the payment provider, not by a session: no CSRF token
    app.register_blueprint(outbox_bp)  # answers 404 in production
    api.init_app(app)  # /api/v1: bearer tokens, no session cookie, no CSRF token; its OpenAPI document


def configure_cli(app: Flask) -> None:
    from app.cli import register

    register(app)
