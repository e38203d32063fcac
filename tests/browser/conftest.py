"""Browser tests: the real portal, served on 127.0.0.1, driven by Debian's Chromium through Playwright.

Every test in this folder is marked `browser` (`pytest -m browser`, `pytest -m "not browser"`).
Without Chromium these tests are skipped; with REQUIRE_BROWSER=1 (CI) they fail instead.
Set CHROMIUM_PATH to use another Chromium binary (a path that does not exist counts as "no Chromium").

The server is independent of the per-test rollback fixtures in tests/conftest.py: its own app on its own
SQLite file, built by the real migrations and the demo data, shared by all browser tests of a session.
Tests must not request the `app` fixture (that would start a second, unrelated app and its rollback).

Background work runs as with `flask up`: while the tests of this folder run, a real Huey consumer (worker
threads in this process, on its own SQLite queue in the tmp dir) executes the live server's tasks in the
live server's app, so an order is provisioned and followed up. Before and after them, the rest of the
suite keeps tests/conftest.py's immediate mode (see `live_worker`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import signal
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest
from flask import Flask
from huey.consumer import Consumer
from playwright.sync_api import BrowserContext, ConsoleMessage, Page, Route, WebError, expect
from playwright.sync_api import Error as PlaywrightError
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from app.services.actors import Actor
from tests.conftest import config_for_tests

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

HERE = Path(__file__).resolve().parent
LOOPBACK = "127.0.0.1"
NOT_FOUND_HINT = "Chromium not found: apt-get install chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


# --- marking -------------------------------------------------------------------------------------------

@pytest.hookimpl(tryfirst=True)  # before `-m` deselects anything
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test collected from this folder `browser` (the hook sees the whole session's items)."""
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.browser)


# --- Chromium ------------------------------------------------------------------------------------------

def find_chromium() -> str | None:
    """CHROMIUM_PATH if set (and executable), else `chromium` on PATH, else Debian's /usr/bin/chromium."""
    override = os.environ.get("CHROMIUM_PATH")
    candidates = [override] if override else [shutil.which("chromium"), "/usr/bin/chromium"]
    for candidate in candidates:
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


@pytest.fixture(scope="session", autouse=True)
def chromium_executable() -> str:
    """Session-wide and autouse, so a missing browser skips before the server is even started."""
    path = find_chromium()
    if path is None:
        if os.environ.get("REQUIRE_BROWSER") == "1":
            pytest.fail(f"{NOT_FOUND_HINT} (REQUIRE_BROWSER=1: browser tests must run here)", pytrace=False)
        pytest.skip(NOT_FOUND_HINT)
    return path


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any], chromium_executable: str
                             ) -> dict[str, Any]:
    """pytest-playwright's launch options (--headed, --slowmo...) plus Debian's Chromium, headless."""
    return {
        "headless": True,
        **browser_type_launch_args,
        "executable_path": chromium_executable,
        "args": CHROMIUM_ARGS,
    }


# --- the live server -----------------------------------------------------------------------------------

@dataclass
class LiveServer:
    app: Flask
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def url_for(self, path: str) -> str:
        return self.url + path


class _QuietRequestHandler(WSGIRequestHandler):
    """Log only the requests that went wrong (4xx, 5xx): every asset's 200 would bury them."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        if str(code).isdigit() and int(code) < 400:
            return
        super().log_request(code, size)


def _closing(app: WSGIApplication) -> WSGIApplication:
    """`app`, whose response iterables are closed even when the browser drops the connection mid-response.

    Werkzeug's development server does not close the iterable then (a page that navigates away while a
    static file is still being sent): the file would be closed only by the garbage collector, with a
    ResourceWarning that this project's `filterwarnings = error` turns into a random test's failure. A
    generator's `finally` runs when the server lets go of it, however the response ended.
    """

    def wsgi(environ: WSGIEnvironment, start_response: StartResponse) -> Iterator[bytes]:
        iterable = app(environ, start_response)
        try:
            yield from iterable
        finally:
            close = getattr(iterable, "close", None)
            if close is not None:
                close()

    return wsgi


def _migrate_and_load_demo_data(app: Flask) -> None:
    from flask_migrate import upgrade

    from app.extensions import db
    from app.services.demo import load_demo_data

    # Alembic's env.py runs logging.config.fileConfig(), which replaces the root logger's handlers
    # (pytest's capturing handlers among them) and level; put them back afterwards, as `flask up` does.
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        with app.app_context():
            upgrade()
            load_demo_data()
            db.session.remove()
    finally:
        for handler in root.handlers[:]:
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The portal on its own SQLite file (real migrations + demo data), served on 127.0.0.1:<free port>."""
    from app import create_app
    from app.extensions import db, dispose_engines
    from app.sandbox import start_sandbox_clouds
    from app.services.clouds import forget_adapters

    instance = tmp_path_factory.mktemp("live-instance")
    database_url = f"sqlite:///{instance}/live.sqlite3"
    with pytest.MonkeyPatch.context() as patch:  # create_app reads INSTANCE_PATH from the environment
        patch.setenv("INSTANCE_PATH", str(instance))
        # As `flask up` runs it: the sandbox clouds are the fake Hetzner and DigitalOcean APIs over HTTP,
        # driven by the real SDKs (servers boot in 8 s, as in the demo).
        app = create_app({**config_for_tests(database_url, str(instance)), "SANDBOX_IN_PROCESS": False})
    clouds = start_sandbox_clouds(app.config)
    _migrate_and_load_demo_data(app)

    server: BaseWSGIServer = make_server(LOOPBACK, 0, _closing(app), threaded=True, request_handler=_QuietRequestHandler)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    try:
        yield LiveServer(app=app, host=LOOPBACK, port=server.server_port)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
        forget_adapters()  # their pooled connections to the fake clouds
        for cloud in clouds:
            cloud.shutdown()
        with app.app_context():
            db.session.remove()
            dispose_engines()


@pytest.fixture(scope="session")
def base_url(live_server: LiveServer) -> str:
    """Relative URLs in page.goto() go to the live server (pytest-playwright passes this to every context).

    This also replaces pytest-playwright's own fallback `base_url` fixture (used when pytest-base-url is
    not installed): that one is an instance method of a plugin class, which pytest 9 deprecates with a
    PytestRemovedIn10Warning, an error under this project's `filterwarnings = error`.
    """
    return live_server.url


@pytest.fixture(scope="package", autouse=True)
def live_worker(live_server: LiveServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Consumer]:
    """A real Huey consumer for the live server, for the tests of this folder (package scope, not session).

    tests/conftest.py puts the shared `huey` in immediate mode: tasks run inline and the ones scheduled
    for later (provisioning's follow-up polls) are put aside for good. Here the queue becomes a real one,
    on its own SQLite file, consumed by worker threads, and task bodies run in the live server's app.
    Package scope: the live server lives for the session, but the rest of the suite must get immediate
    mode and its own app binding back as soon as the browser tests are done.
    """
    from huey.storage import SqliteStorage

    from app import tasks
    from app.sandbox.cloud import reset_sandboxes
    from app.tasks import huey
    from app.tasks.worker import consumer

    saved = (huey.immediate, huey.immediate_use_memory, huey.storage, huey._timeout_handler, tasks._app)
    reset_sandboxes()  # fresh demo clouds (DEMO_SOLD_OUT applied), whatever earlier tests did to them
    # Without immediate_use_memory the setter keeps the storage it finds (it would otherwise open the
    # default queue file in the instance folder), and switching back keeps the one restored below.
    huey.immediate_use_memory = False
    huey.immediate = False
    huey.storage = SqliteStorage(huey.name, filename=str(tmp_path_factory.mktemp("live-queue") / "queue.sqlite3"),
                                 timeout=15)
    tasks.init_app(live_server.app)
    worker = consumer(2)
    worker.shutdown_timeout = 15  # stop() waits for running tasks, not forever
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    worker.start()
    for signum, handler in handlers.items():  # Consumer.start() installs its own; give them back
        signal.signal(signum, signal.SIG_DFL if handler is None else handler)
    try:
        yield worker
    finally:
        worker.stop(graceful=True)
        huey.storage.close()
        immediate, use_memory, storage, timeout_handler, app = saved
        huey.immediate = immediate
        huey.storage = storage
        huey.immediate_use_memory = use_memory
        huey._timeout_handler = timeout_handler
        tasks._app = app


# --- watching the browser: CSP violations, console errors, requests off the machine ----------------------

CSP_INIT_SCRIPT = """
(() => {
  if (window.__cspViolations) { return; }
  window.__cspViolations = [];
  document.addEventListener("securitypolicyviolation", (event) => {
    const violation = {
      directive: event.effectiveDirective || event.violatedDirective,
      blocked: event.blockedURI,
      source: event.sourceFile,
      line: event.lineNumber,
      sample: event.sample,
      page: location.href,
    };
    window.__cspViolations.push(violation);
    if (typeof window.__portalReportCsp === "function") { window.__portalReportCsp(violation); }
  }, true);
})();
"""


def _is_csp_message(text: str) -> bool:
    return "Content Security Policy" in text or "Refused to" in text


@dataclass(frozen=True)
class ConsoleError:
    page_url: str
    text: str
    source_url: str

    def expected(self, statuses: tuple[int, ...]) -> bool:
        """The error page's own document answered with one of `statuses` (and nothing else failed)."""
        return self.source_url == self.page_url and any(
            self.text.startswith(f"Failed to load resource: the server responded with a status of {status} ")
            for status in statuses
        )

    def __str__(self) -> str:
        return f"{self.page_url}: {self.text} ({self.source_url})"


@dataclass
class BrowserWatch:
    """What went wrong in a browser context, over all its pages and navigations.

    CSP violations arrive two ways: Chromium's console messages ("Refused to ... Content Security
    Policy ..."), and a `securitypolicyviolation` listener injected by add_init_script (Playwright
    runs init scripts outside the page's CSP) that pushes into window.__cspViolations and reports each
    one to Python at once through an exposed binding, so none is lost when the page navigates away.
    """

    context: BrowserContext = field(repr=False)
    allowed_host: str = LOOPBACK
    console_csp: list[str] = field(default_factory=list)
    reported_csp: list[dict[str, Any]] = field(default_factory=list)
    console_errors: list[ConsoleError] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    offsite_requests: list[str] = field(default_factory=list)

    @classmethod
    def attach(cls, context: BrowserContext, allowed_host: str = LOOPBACK) -> BrowserWatch:
        watch = cls(context, allowed_host)
        context.route("**/*", watch._guard)
        context.expose_function("__portalReportCsp", watch._on_reported_csp)
        context.add_init_script(CSP_INIT_SCRIPT)
        context.on("console", watch._on_console)
        context.on("weberror", watch._on_web_error)
        return watch

    def _guard(self, route: Route) -> None:
        """No request may leave this machine: anything not for 127.0.0.1 is aborted and noted."""
        url = route.request.url
        if urlsplit(url).hostname == self.allowed_host:
            route.continue_()
        else:
            self.offsite_requests.append(url)
            route.abort("blockedbyclient")

    def _on_reported_csp(self, violation: dict[str, Any]) -> None:
        self.reported_csp.append(violation)

    def _on_console(self, message: ConsoleMessage) -> None:
        text = message.text
        where = message.page.url if message.page else "?"
        if _is_csp_message(text):
            self.console_csp.append(f"{where}: {text}")
        elif message.type == "error":
            self.console_errors.append(ConsoleError(where, text, message.location.get("url", "")))

    def _on_web_error(self, error: WebError) -> None:
        where = error.page.url if error.page else "?"
        self.page_errors.append(f"{where}: {error.error}")

    def flush(self) -> None:
        """Let pending events (console messages, binding calls) reach Python: one round trip per page."""
        for page in self.context.pages:
            with contextlib.suppress(PlaywrightError):  # closed, navigating, or on Chromium's error page
                page.evaluate("() => (window.__cspViolations || []).length")

    def in_page_csp(self, page: Page) -> list[dict[str, Any]]:
        """The violations the injected listener saw in `page`'s current document."""
        return page.evaluate("() => window.__cspViolations || null") or []

    def csp_violations(self) -> list[str]:
        self.flush()
        reported = [
            f"{v.get('page')}: {v.get('directive')} blocked {v.get('blocked') or v.get('sample') or '?'}"
            f" ({v.get('source')}:{v.get('line')})"
            for v in self.reported_csp
        ]
        return reported + self.console_csp

    def problems(self, expected_statuses: tuple[int, ...] = ()) -> list[str]:
        """Everything a clean page must not have: CSP violations, console errors, uncaught errors.

        `expected_statuses`: Chromium logs "Failed to load resource: ... status of 404" for an error
        page's own document too; that one line is expected when the test asked for the error page.
        """
        self.flush()
        return (
            [f"CSP: {v}" for v in self.csp_violations()]
            + [f"console error: {e}" for e in self.console_errors if not e.expected(expected_statuses)]
            + [f"page error: {e}" for e in self.page_errors]
            + [f"off-machine request: {u}" for u in self.offsite_requests]
        )

    def clear(self) -> None:
        for items in (self.console_csp, self.reported_csp, self.console_errors, self.page_errors):
            items.clear()


@pytest.fixture
def watch(context: BrowserContext, live_server: LiveServer) -> Iterator[BrowserWatch]:
    """Watches the test's browser context; any request that would leave 127.0.0.1 fails the test."""
    watch = BrowserWatch.attach(context, live_server.host)
    yield watch
    assert not watch.offsite_requests, f"requests that would have left {LOOPBACK}: {watch.offsite_requests}"


@pytest.fixture
def page(context: BrowserContext, watch: BrowserWatch) -> Page:
    """pytest-playwright's page, created after the watch is attached to its context."""
    return context.new_page()


@pytest.fixture
def csp_violations(watch: BrowserWatch) -> Callable[[], list[str]]:
    """`assert csp_violations() == []`: every CSP violation in the test's pages so far."""
    return watch.csp_violations


@pytest.fixture
def ready_customer(live_server: LiveServer) -> tuple[str, str]:
    """A fresh customer with a complete billing profile, an SSH key (preselected) and a saved card, so orders go
    straight to the cloud, DigitalOcean's too."""
    from sqlalchemy import select

    from app.extensions import db
    from app.models import Tenant
    from app.services.accounts import register_customer
    from app.services.profiles import save_profile
    from app.services.ssh_keys import add_key
    from tests.sshkeys import ed25519_key

    email, password = f"soldout-{uuid.uuid4().hex[:12]}@example.com", "a sold-out password"
    with live_server.app.app_context():
        tenant = db.session.scalar(select(Tenant).where(Tenant.slug == "default"))
        assert tenant is not None
        user = register_customer(tenant=tenant, name="Sol Doubt", email=email, password=password)
        assert user is not None
        confirmed(user)
        save_profile(actor=Actor(user), full_name="Sol Doubt", billing_email=email, company="", address="Main St 1",
                     postal_code="10115", city="Berlin", country="DE")
        add_key(tenant=tenant, actor=Actor(user), public_key=ed25519_key("sol@laptop"))
        save_card(live_server, tenant, user)
        db.session.remove()
    return email, password


def save_card(live_server: LiveServer, tenant: Any, user: Any, number: str = "4242 4242 4242 4242") -> None:
    """Save a card for `user` as the browser would: a setup, the card typed on the fake Stripe's hosted page,
    the return page read back (in the live server's app context)."""
    import requests

    from app.services.payment_methods import finish_setup, start_setup

    url = start_setup(tenant=tenant, actor=Actor(user),
                      return_url=live_server.url_for("/billing/payment-methods/added"))
    typed = requests.post(url, data={"number": number, "expiry": "12 / 34", "cvc": "123"}, allow_redirects=False,
                          timeout=10)
    assert typed.status_code == 303, typed.text
    session_id = typed.headers["Location"].rsplit("session_id=", 1)[1]
    assert finish_setup(tenant=tenant, actor=Actor(user), session_id=session_id).method is not None


def type_card(page: Page, number: str, *, expiry: str = "12 / 34", cvc: str = "123") -> None:
    """On the fake Stripe's hosted card page: type the card and save it."""
    expect(page.get_by_role("heading", name="Save a card", level=1)).to_be_visible()
    page.get_by_label("Card number").fill(number)
    page.get_by_label("Expiry (MM / YY)").fill(expiry)
    page.get_by_label("CVC").fill(cvc)
    page.get_by_role("button", name="Save card").click()


# --- accounts ------------------------------------------------------------------------------------------

def confirmed(user: Any) -> None:
    """Confirm a registered user's address as its link would (journeys that confirm by email do it in the
    browser, with `emailed_link`)."""
    from app.clock import now
    from app.extensions import db

    user.email_verified_at = now()
    db.session.commit()


_LINK = re.compile(r"https?://[^/\s]+(/(?:reset-password|confirm-email)/\S+)")


def emailed_link(live_server: LiveServer, address: str) -> str:
    """The path of the latest account link the live server emailed to `address`, from its email log."""
    from sqlalchemy import select

    from app.extensions import db
    from app.models import EmailMessage

    with live_server.app.app_context():
        bodies = db.session.scalars(select(EmailMessage.text_body).where(EmailMessage.to_address == address)
                                    .order_by(EmailMessage.id.desc())).all()
        db.session.remove()
    for body in bodies:
        if match := _LINK.search(body or ""):
            return match.group(1)
    raise AssertionError(f"no link was emailed to {address}")
