"""Throughput under gunicorn: the portal's 50-row dashboard (or the API's 50-row subscription list) against the
bare page, in requests per second.

    python -m bench.throughput --database sqlite:///instance/bench-S.sqlite3 [--rounds N] [--seconds N] [--quick]
    python -m bench.throughput --api [--quick]     # GET /api/v1/subscriptions?limit=50 with the customer's token

The portal (`bench.data.bench_app`: no debug, fast password hashing, no login rate limit) and the bare app
(`bench.baseline.create_baseline`) each run under gunicorn with 2 sync workers on 127.0.0.1. The runner logs
in as the customer with 50 subscriptions through the real login form, checks that both pages show the 50
rows, then runs `wrk -c8 -t2` against each dashboard, interleaved (portal, bare, bare, portal, ...), with the
session cookie as a header. It prints the requests per second of each, the ratio portal/bare (median and
range) and exits 1 when any answer was not 2xx, wrk saw a socket error, or the median ratio is under the
goal (0.4). With `--api` the same is done for the JSON API's list of the same 50 subscriptions, with the
customer's API token (`bench.data.api_token`), against the bare JSON. `measure()` returns the figures for other
runners. The gunicorn processes are stopped on any
exit, Ctrl+C included.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

import requests
from flask import Flask

from bench.baseline import baseline_database, create_baseline
from bench.data import MANY, MANY_EMAIL, PASSWORD, absolute, api_token, bench_app
from bench.run import CSRF, ROW, user_ids

GOAL = 0.4  # portal requests/s over bare requests/s, at least
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATABASE_VARIABLE = "BENCH_DATABASE"  # how the gunicorn app factories below learn the database

# Counts the answers that are not 2xx in every wrk thread and prints their sum (wrk itself counts 3xx as fine).
WRK_SCRIPT = """
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) bad = 0 end
function response(status, headers, body) if status < 200 or status > 299 then bad = bad + 1 end end
function done(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do total = total + thread:get("bad") end
  io.write(string.format("non-2xx: %d\\n", total))
end
"""


def portal_wsgi() -> Flask:
    """gunicorn's app factory for the portal (`bench.throughput:portal_wsgi()`); frozen for the garbage
    collector as wsgi.py freezes the portal's own processes."""
    app = bench_app(os.environ[DATABASE_VARIABLE])
    gc.freeze()
    return app  # type: ignore[no-any-return]


def bare_wsgi() -> Flask:
    """gunicorn's app factory for the bare app (`bench.throughput:bare_wsgi()`), frozen alike."""
    app = create_baseline(baseline_database(os.environ[DATABASE_VARIABLE]))
    gc.freeze()
    return app


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def started(command: list[str], environment: dict[str, str], log: str | None = None
            ) -> Iterator[subprocess.Popen[bytes]]:
    """Run `command` from the project root in a process group of its own, its output appended to `log`; the
    whole group is stopped on the way out, however that is taken."""
    env = {**os.environ, "PYTHONPATH": ROOT, **environment}
    with open(log or os.devnull, "ab") as output:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=output,  # noqa: S603 - our own command
                                   stderr=output, start_new_session=True)
    try:
        yield process
    finally:
        stop(process)


@contextmanager
def gunicorn(app: str, environment: dict[str, str], log: str | None = None) -> Iterator[str]:
    """Serve `app` (gunicorn's `module:name` or `module:factory()`) with 2 sync workers on a free port of
    127.0.0.1; yields its root URL once it answers."""
    port = free_port()
    command = [sys.executable, "-m", "gunicorn", "--workers", "2", "--bind", f"127.0.0.1:{port}",
               "--log-level", "warning", app]
    with started(command, environment, log) as process:
        url = f"http://127.0.0.1:{port}"
        wait_until_answering(url, process)
        yield url


def wait_until_answering(url: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    """Return once `url` answers anything; fail when its server exits first or takes longer than `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server for {url} exited with status {process.returncode}")
        try:
            requests.get(url + "/", timeout=10, allow_redirects=False)
            return
        except requests.RequestException:  # not listening yet, or a worker still booting
            time.sleep(0.2)
    raise SystemExit(f"the server for {url} did not answer within {timeout:.0f} s")


def stop(process: subprocess.Popen[Any], grace: float = 10) -> None:
    """SIGTERM to the process group (e.g. gunicorn's master and its workers, even when the master has gone
    already), SIGKILL if the leader has not exited after `grace`."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:  # the whole group has gone
        process.wait()


def terminate_on_sigterm() -> None:
    """A SIGTERM unwinds like Ctrl+C does, so the `finally` blocks stop the servers."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


def login_cookie(base: str, email: str, password: str = PASSWORD) -> str:
    """The Cookie header of a session logged in through the real form: its CSRF token, then the POST."""
    session = requests.Session()
    page = session.get(f"{base}/login", timeout=10)
    token = CSRF.search(page.text)
    if token is None:
        raise SystemExit(f"no CSRF token on {base}/login (status {page.status_code})")
    answer = session.post(f"{base}/login", data={"csrf_token": token.group(1), "email": email, "password": password},
                          allow_redirects=False, timeout=10)
    if answer.status_code not in (302, 303):
        raise SystemExit(f"login as {email} at {base} answered {answer.status_code}")
    return "; ".join(f"{cookie.name}={cookie.value}" for cookie in session.cookies)


def check_page(url: str, headers: dict[str, str], rows: int) -> None:
    """The page answers 200 with `rows` table rows (a lost session would answer a redirect to the login), or
    the JSON answer has `rows` items in `data`."""
    answer = requests.get(url, headers=headers, allow_redirects=False, timeout=10)
    is_json = answer.headers.get("Content-Type", "").startswith("application/json")
    shown = len(json.loads(answer.text)["data"]) if is_json else len(ROW.findall(answer.text))
    if answer.status_code != 200 or shown != rows:
        raise SystemExit(f"GET {url} answered {answer.status_code} with {shown} rows, expected 200 with {rows}")


@dataclass
class Run:
    """One wrk run: requests per second and what went wrong."""

    rate: float
    non_2xx: int
    socket_errors: int


def wrk(url: str, seconds: float, headers: dict[str, str], script: str) -> Run:
    """`wrk -c8 -t2` for `seconds` with `script` (WRK_SCRIPT, which counts the answers that are not 2xx)."""
    command = ["wrk", "-c8", "-t2", f"-d{seconds:g}s", "-s", script, url]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout  # noqa: S603
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    bad = re.search(r"non-2xx: (\d+)", output)
    if rate is None or bad is None:
        raise SystemExit(f"could not read wrk's output:\n{output}")
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    return Run(float(rate.group(1)), int(bad.group(1)), sum(map(int, errors.groups())) if errors else 0)


@dataclass
class Throughput:
    """The figures of one measurement: requests per second of each app per round, and their ratios."""

    portal: list[Run] = field(default_factory=list)
    bare: list[Run] = field(default_factory=list)

    @property
    def ratios(self) -> list[float]:
        return [p.rate / b.rate for p, b in zip(self.portal, self.bare, strict=True)]

    @property
    def ratio(self) -> float:
        return statistics.median(self.ratios)

    @property
    def failures(self) -> int:
        return sum(run.non_2xx + run.socket_errors for run in self.portal + self.bare)

    def met(self) -> bool:
        return self.failures == 0 and self.ratio >= GOAL


def measure(database: str, rounds: int = 3, seconds: float = 10, *, api: bool = False) -> Throughput:
    """Serve both apps under gunicorn and measure their 50-row dashboards (`api`: the API's 50-row list) with
    wrk, interleaved."""
    database = absolute(database)
    tenant_id, user_id = user_ids(baseline_database(database), MANY_EMAIL)
    environment = {DATABASE_VARIABLE: database}
    figures = Throughput()
    with ExitStack() as stack, tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(WRK_SCRIPT)
        script.flush()
        portal = stack.enter_context(gunicorn("bench.throughput:portal_wsgi()", environment))
        bare = stack.enter_context(gunicorn("bench.throughput:bare_wsgi()", environment))
        if api:
            targets = {"portal": (f"{portal}/api/v1/subscriptions?limit={MANY}",
                                  {"Authorization": f"Bearer {api_token(user_id)}"}),
                       "bare": (f"{bare}/{tenant_id}/{user_id}/api/subscriptions?limit={MANY}", {})}
        else:
            targets = {"portal": (f"{portal}/subscriptions/", {"Cookie": login_cookie(portal, MANY_EMAIL)}),
                       "bare": (f"{bare}/{tenant_id}/{user_id}/subscriptions/", {})}
        for url, headers in targets.values():
            check_page(url, headers, MANY)
            warm_up = wrk(url, min(seconds, 2), headers, script.name)
            if warm_up.non_2xx or warm_up.socket_errors:
                raise SystemExit(f"warming up on {url}: {warm_up.non_2xx} answers not 2xx, "
                                 f"{warm_up.socket_errors} socket errors")
        for index in range(rounds):
            order = ("portal", "bare") if index % 2 == 0 else ("bare", "portal")
            for name in order:
                url, headers = targets[name]
                getattr(figures, name).append(wrk(url, seconds, headers, script.name))
        check_page(*targets["portal"], MANY)  # the session (token) held to the end: no run measured a refusal
    return figures


def report(figures: Throughput) -> None:
    for name in ("portal", "bare"):
        rates = [run.rate for run in getattr(figures, name)]
        print(f"{name:7} requests/s median {statistics.median(rates):7.0f} "
              f"({', '.join(f'{rate:.0f}' for rate in rates)})")
    ratios = figures.ratios
    print(f"ratio portal/bare: {figures.ratio:.2f} ({min(ratios):.2f}-{max(ratios):.2f}), goal at least {GOAL}: "
          f"{'met' if figures.ratio >= GOAL else 'MISSED'}")
    non_2xx = sum(run.non_2xx for run in figures.portal + figures.bare)
    sockets = sum(run.socket_errors for run in figures.portal + figures.bare)
    print(f"answers not 2xx: {non_2xx}, socket errors: {sockets}{'' if non_2xx + sockets == 0 else ': FAILED'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", default="sqlite:///instance/bench-S.sqlite3")
    parser.add_argument("--rounds", type=int, default=3, help="each round runs wrk once against each app")
    parser.add_argument("--seconds", type=float, default=10, help="length of each wrk run")
    parser.add_argument("--quick", action="store_true", help="2 rounds of 3 s")
    parser.add_argument("--api", action="store_true", help="the API's 50-row subscription list, not the dashboard")
    args = parser.parse_args(argv)
    rounds, seconds = (2, 3.0) if args.quick else (args.rounds, args.seconds)
    terminate_on_sigterm()
    figures = measure(args.database, rounds, seconds, api=args.api)
    what = f"GET /api/v1/subscriptions?limit={MANY}" if args.api else f"dashboard with {MANY} rows"
    print(f"{absolute(args.database)}: {what}, gunicorn with 2 sync workers each, "
          f"wrk -c8 -t2, {rounds} rounds of {seconds:g} s, interleaved\n")
    report(figures)
    return 0 if figures.met() else 1


if __name__ == "__main__":
    sys.exit(main())
