"""Browser tests: the real portal, served on 127.0.0.1, driven by Debian's Chromium through Playwright.

Every test in this folder is marked `browser` (`pytest -m browser`, `pytest -m "not browser"`).
Without Chromium these tests are skipped; with REQUIRE_BROWSER=1 (CI) they fail instead.
Set CHROMIUM_PATH to use another Chromium binary (a path that does not exist counts as "no Chromium").

The server is independent of the per-test rollback fixtures in tests/conftest.py: its own app on its own
SQLite file, built by the real migrations and the demo data, shared by all browser tests of a session.
Tests must not request the `app` fixture (that would start a second, unrelated app and its rollback).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask
from playwright.sync_api import BrowserContext, ConsoleMessage, Page, Route, WebError
from playwright.sync_api import Error as PlaywrightError
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from tests.conftest import config_for_tests

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
    from app.extensions import db

    instance = tmp_path_factory.mktemp("live-instance")
    database_url = f"sqlite:///{instance}/live.sqlite3"
    with pytest.MonkeyPatch.context() as patch:  # create_app reads INSTANCE_PATH from the environment
        patch.setenv("INSTANCE_PATH", str(instance))
        app = create_app(config_for_tests(database_url, str(instance)))
    _migrate_and_load_demo_data(app)

    server: BaseWSGIServer = make_server(LOOPBACK, 0, app, threaded=True, request_handler=_QuietRequestHandler)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    try:
        yield LiveServer(app=app, host=LOOPBACK, port=server.server_port)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


@pytest.fixture(scope="session")
def base_url(live_server: LiveServer) -> str:
    """Relative URLs in page.goto() go to the live server (pytest-playwright passes this to every context).

    This also replaces pytest-playwright's own fallback `base_url` fixture (used when pytest-base-url is
    not installed): that one is an instance method of a plugin class, which pytest 9 deprecates with a
    PytestRemovedIn10Warning, an error under this project's `filterwarnings = error`.
    """
    return live_server.url


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
