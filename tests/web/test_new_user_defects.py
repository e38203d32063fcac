"""What a new customer, support and admin met on their first visit: each defect, fixed and kept fixed."""

from __future__ import annotations

import logging

HX = {"HX-Request": "true"}


# --- 16: `flask up` does not log every poll --------------------------------------------------------


class _Headers(dict):
    def get(self, key, default=None):  # type: ignore[override]
        return super().get(key, default)


def _handler(method: str, path: str, headers: dict[str, str], kind: str = "QuietPollingHandler"):
    from app import cli

    cls = getattr(cli, kind)
    handler = cls.__new__(cls)
    handler.command, handler.path, handler.request_version = method, path, "HTTP/1.1"
    handler.requestline = f"{method} {path} HTTP/1.1"
    handler.headers = _Headers(headers)
    handler.client_address = ("127.0.0.1", 50000)
    return handler


def test_flask_up_leaves_successful_htmx_gets_out_of_the_access_log(caplog):
    caplog.set_level(logging.INFO, logger="werkzeug")
    _handler("GET", "/subscriptions/1/summary", HX).log_request(200)
    _handler("GET", "/subscriptions/1/items/1/server-info", HX).log_request(304)
    assert "/subscriptions/1" not in caplog.text

    _handler("GET", "/subscriptions/1", {}).log_request(200)  # a page
    _handler("POST", "/subscriptions/1/items/1/actions/stop", HX).log_request(200)  # an action
    _handler("GET", "/subscriptions/2/summary", HX).log_request(500)  # an error
    logged = caplog.text
    assert '"GET /subscriptions/1 HTTP/1.1" 200' in logged
    assert "POST /subscriptions/1/items/1/actions/stop" in logged
    assert "GET /subscriptions/2/summary" in logged


def test_flask_up_logs_only_the_errors_of_the_sandbox_clouds(caplog):
    caplog.set_level(logging.INFO, logger="werkzeug")
    _handler("GET", "/v1/servers/1", {}, "QuietSuccessHandler").log_request(200)
    _handler("POST", "/v1/servers", {}, "QuietSuccessHandler").log_request(201)
    assert "/v1/servers" not in caplog.text
    _handler("POST", "/v1/servers", {}, "QuietSuccessHandler").log_request(412)
    assert '"POST /v1/servers HTTP/1.1" 412' in caplog.text


def test_flask_up_can_log_every_request(app, runner, monkeypatch):
    from app import cli

    served = {}
    monkeypatch.setattr("werkzeug.serving.run_simple", lambda *args, **kwargs: served.update(kwargs))
    monkeypatch.setattr("app.tasks.worker.start_beside_web_server", lambda workers: _NoWorker())
    monkeypatch.setattr(cli, "upgrade", lambda: None)
    monkeypatch.setitem(app.config, "SANDBOX_HETZNER_URL", "http://127.0.0.1:9/v1")  # no sandbox clouds started

    result = runner.invoke(args=["up", "--no-demo", "--log-requests", "all"])
    assert result.exit_code == 0, result.output
    assert served["request_handler"] is not cli.QuietPollingHandler

    monkeypatch.setenv("LOG_REQUESTS", "quiet")
    result = runner.invoke(args=["up", "--no-demo"])
    assert result.exit_code == 0, result.output
    assert served["request_handler"] is cli.QuietPollingHandler


class _NoWorker:
    def stop(self) -> None:
        pass
