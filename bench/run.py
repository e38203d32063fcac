"""Measure the portal against the bare baselines, interleaved, and check the speed goals.

    python -m bench.run --database sqlite:///instance/bench-S.sqlite3 [--rounds N] [--requests N] [--quick]
    python -m bench.run --database sqlite:///instance/bench-S.sqlite3 --compare sqlite:///instance/bench-M.sqlite3
    python -m bench.run --quick --build S     # CI: build S (a few seconds), then the quick run
    python -m bench.run --database postgresql://127.0.0.1:5432/bench [--quick]

Both apps run in this process behind Flask test clients. Each round times a batch of requests to the portal
and a batch to the baseline (A B, then B A in the next round, ...); the ratio of the two is the round's
figure, and the median over the rounds with its range is what counts. SQL statements are counted on the
portal's engine, and the statements of one request of each operation are checked with SQLite's
`EXPLAIN QUERY PLAN` or PostgreSQL's `EXPLAIN (FORMAT JSON)` (bench/plans.py). The data set is a SQLite file
or a PostgreSQL database (`--database postgresql://127.0.0.1:5432/bench`, built with `python -m bench.data`);
the bare pages read it with `sqlite3` or psycopg, and the runner's own reads and clean-ups go through
`bench.baseline.connect` as well. With `--compare`, the portal on the second data set is timed in the
same rounds, and each operation's M/S ratio of the portal's time is checked against the growth goal.
Exits 1 when a goal is missed. To measure another operation, add a line to `operations()`.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import re
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from huey.storage import SqliteStorage
from sqlalchemy import event

from app.extensions import READS, db
from app.tasks import huey
from bench import INSTANCE
from bench.baseline import bare_queue, baseline_database, connect, create_baseline, is_postgresql, opaque_id
from bench.data import (
    ADMIN_EMAIL,
    ATTENTION,
    FEW,
    FEW_EMAIL,
    MANY,
    MANY_EMAIL,
    ORDER_EMAIL,
    PASSWORD,
    PLANS,
    SIZES,
    SUPPORT_EMAIL,
    absolute,
    api_token,
    bench_app,
    build,
)
from bench.plans import missed_indexes

HTMX = {"HX-Request": "true"}
CSRF = re.compile(r'"X-CSRFToken": "([^"]+)"')
ROW = re.compile(r"<tr>\s*<td>")
CARD = re.compile(r'<article class="plan-card')
# Values that differ on every page by design (a form's CSRF token and order key, the suggested server name): not
# compared.
PER_REQUEST = re.compile(r'((?:name="(?:csrf_token|idempotency_key)" type="hidden"|name="hostname"[^>]*?) value=")'
                         r'[^"]*"')
# Quick mode (5 rounds of 20 requests, as CI runs it on shared 2-core machines) lets each ratio exceed its
# goal by this much before failing: medians of such short runs moved by up to about 15% between runs here.
NOISE_MARGIN = 0.15
ROUNDS, REQUESTS = 7, 100  # a full run: rounds, and requests per batch
ATTEMPTS = 4  # quick mode: full runs of an operation that missed, before the miss counts
GROWTH = 1.2  # each page at M within 1.2x of its time at S
SEARCH = "customer 1"  # support's search: many matches, one full page of them
PER_PAGE = 25  # the staff lists' page
SESSION_COOKIE = "session"  # the portal's, outside production


@dataclass(frozen=True)
class Goal:
    max_ratio: float
    max_statements: int | None
    text: str


LIST_GOAL = Goal(2.0, 3, "within 2x of bare, at most 3 statements")
SMALL_GOAL = Goal(3.0, None, "within 3x of bare")
# The preview's own statement and the session check every logged-in request makes (the bare app has no login).
PREVIEW_GOAL = Goal(3.0, 2, "within 3x of bare, 1 statement besides the session check")
ORDER_GOAL = Goal(2.0, None, "within 2x of a raw insert")


@dataclass
class Operation:
    """One measured request: the portal's and the bare one serving the same rows, and its goal."""

    name: str
    portal: Callable[[], str]
    baseline: Callable[[], str]
    goal: Goal
    rows: int | None = None  # table rows both pages must show
    cards: int | None = None  # plan cards both pages must show
    region: tuple[str, str] | None = None  # where both pages must show the same markup (whitespace aside)
    same: str | None = None  # operations with the same `same` must run the same number of statements
    check: Callable[[Operation], None] | None = None  # instead of comparing pages (e.g. the rows a POST wrote)
    cleanup: Callable[[], None] | None = None  # after measuring (e.g. remove the orders placed)
    ratios: list[float] = field(default_factory=list)
    growth: list[float] = field(default_factory=list)  # the portal's time at M over its time at S, per round
    statements: float = 0.0
    missed_plans: list[tuple[str, list[str]]] = field(default_factory=list)

    def ratio_met(self, margin: float) -> bool:
        return statistics.median(self.ratios) <= self.goal.max_ratio * (1 + margin)

    def statements_met(self) -> bool:
        return self.goal.max_statements is None or self.statements <= self.goal.max_statements

    def growth_met(self, margin: float) -> bool:
        return not self.growth or statistics.median(self.growth) <= GROWTH * (1 + margin)

    def met(self, margin: float) -> bool:
        return (self.ratio_met(margin) and self.statements_met() and self.growth_met(margin)
                and not self.missed_plans)


# Transaction control is not a query (the portal sends SQLite an explicit BEGIN: app/extensions.py); the
# tests count the same way (tests/querycount.py).
TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")


class Recorder:
    """Counts the SQL statements the portal's engine runs (transaction control aside) and, while `capturing`,
    keeps them with parameters."""

    def __init__(self) -> None:
        self.count = 0
        self.capturing = False
        self.statements: list[tuple[str, Any]] = []

    def __call__(self, _conn: object, _cursor: object, statement: str, parameters: Any, _context: object,
                 executemany: bool) -> None:
        if statement.lstrip()[:9].upper().startswith(TRANSACTION_CONTROL):
            return
        self.count += 1
        if self.capturing:
            self.statements.append((statement, parameters[0] if executemany else parameters))


@dataclass(frozen=True)
class Viewer:
    """A logged-in portal client and who it is."""

    client: FlaskClient
    tenant_id: int
    user_id: int


class Bench:
    """One data set: the portal on it, its statement recorder, the bare app, and logins made once."""

    def __init__(self, database: str) -> None:
        self.database = database
        self.path = baseline_database(database)  # a SQLite file's path, or the PostgreSQL URL
        self.portal = bench_app(database)
        self.bare = create_baseline(self.path).test_client()
        self.recorder = Recorder()
        with self.portal.app_context():
            for engine in (db.engine, self.portal.extensions.get(READS)):  # on PostgreSQL, GETs read through READS
                if engine is not None:
                    event.listen(engine, "before_cursor_execute", self.recorder)
        self.viewers: dict[str, Viewer] = {}

    def login(self, email: str) -> Viewer:
        if email not in self.viewers:
            tenant_id, user_id = user_ids(self.path, email)
            self.viewers[email] = Viewer(logged_in(self.portal, email), tenant_id, user_id)
        return self.viewers[email]

    def api(self, name: str, who: str, portal_path: str, bare_path: str, goal: Goal, **checks: Any) -> Operation:
        """A GET of the JSON API's `portal_path` with `who`'s API token against the bare app's `bare_path`; both
        must answer the same JSON (and `rows` items in `data`, if given)."""
        tenant_id, user_id = user_ids(self.path, who)
        headers = {"Authorization": f"Bearer {api_token(user_id)}"}
        rows = checks.pop("rows", None)
        return Operation(name, get(self.portal.test_client(), portal_path, headers),
                         get(self.bare, bare_path.format(t=tenant_id, u=user_id)), goal,
                         check=lambda op: same_json(op, rows), **checks)

    def page(self, name: str, who: str, portal_path: str, bare_path: str, goal: Goal, *, fragment: bool = False,
             **checks: Any) -> Operation:
        """A GET of `portal_path` as `who` against the bare app's `bare_path` ({t}: tenant id, {u}: user id)."""
        viewer = self.login(who)
        bare = bare_path.format(t=viewer.tenant_id, u=viewer.user_id)
        headers = HTMX if fragment else None
        return Operation(name, get(viewer.client, portal_path, headers), get(self.bare, bare, headers), goal,
                         **checks)


def get(client: FlaskClient, path: str, headers: dict[str, str] | None = None) -> Callable[[], str]:
    def request() -> str:
        response = client.get(path, headers=headers)
        if response.status_code != 200:
            raise SystemExit(f"GET {path} answered {response.status_code}")
        return response.get_data(as_text=True)
    return request


def csrf_token(client: FlaskClient, path: str) -> str:
    token = CSRF.search(client.get(path).get_data(as_text=True))
    if token is None:
        raise SystemExit(f"no CSRF token on {path}")
    return token.group(1)


def logged_in(app: Flask, email: str) -> FlaskClient:
    """A test client of the portal after a real login: the login form's CSRF token, then the POST."""
    client = app.test_client()
    data = {"csrf_token": csrf_token(client, "/login"), "email": email, "password": PASSWORD}
    response = client.post("/login", data=data)
    if response.status_code not in (302, 303):
        raise SystemExit(f"login as {email} answered {response.status_code}")
    return client


def user_ids(path: str, email: str) -> tuple[int, int]:
    """(tenant id, user id) of the known user of the tenant on `localhost`."""
    row = query(path, "SELECT u.tenant_id, u.id FROM users u JOIN tenant_hosts h ON h.tenant_id = u.tenant_id "
                      "WHERE h.hostname = 'localhost' AND u.email = ?", email)
    if row is None:
        raise SystemExit(f"{email} is not in {path}: build the data with python -m bench.data")
    return row[0], row[1]


@contextmanager
def connection(path: str) -> Iterator[Any]:
    """A connection to the data set (a SQLite file's path or a PostgreSQL URL) outside the portal, rows as
    tuples; SQLite's transaction is committed on the way out (psycopg's connection is in autocommit mode), and
    the connection closed."""
    conn = connect(path, by_position=True)
    try:
        if is_postgresql(path):
            yield conn
        else:
            with conn:
                yield conn
    finally:
        conn.close()


def query(path: str, sql: str, *parameters: object) -> Any:
    """The first row of a read of the data set, outside the portal."""
    with connection(path) as conn:
        return conn.execute(sql, parameters).fetchone()


def operations(bench: Bench) -> list[Operation]:
    """The registry: what is measured, against what, with which goal."""
    few = bench.login(FEW_EMAIL)
    sid = query(bench.path, "SELECT max(id) FROM subscriptions WHERE user_id = ? AND status = 'active'", few.user_id)[0]
    item = query(bench.path, "SELECT min(id) FROM subscription_items WHERE subscription_id = ?", sid)[0]
    plan = query(bench.path, "SELECT min(id) FROM plans WHERE tenant_id = ? AND price_minor > 0", few.tenant_id)[0]
    invoice = query(bench.path, "SELECT max(id) FROM invoices WHERE user_id = ?", few.user_id)[0]
    mine = f"/subscriptions/{sid}"
    theirs = "/{t}/{u}" + mine
    table, main, section = ("<table", "</table>"), ("</main>",), ("<section", "</section>")
    return [
        bench.page("dashboard, 5 rows", FEW_EMAIL, "/subscriptions/", "/{t}/{u}/subscriptions/", LIST_GOAL, rows=FEW,
                   region=table, same="dashboard"),
        bench.page("dashboard, 50 rows", MANY_EMAIL, "/subscriptions/", "/{t}/{u}/subscriptions/", LIST_GOAL,
                   rows=MANY, region=table, same="dashboard"),
        bench.page("catalogue", FEW_EMAIL, "/", "/{t}/catalogue/", SMALL_GOAL, cards=len(PLANS),
                   region=('<div class="plan-grid">', *main)),
        bench.page("detail page", FEW_EMAIL, mine, theirs, SMALL_GOAL,
                   region=('<p class="muted small"><a href="/subscriptions/">', *main)),
        bench.page("summary fragment", FEW_EMAIL, f"{mine}/summary", f"{theirs}/summary", SMALL_GOAL, fragment=True,
                   region=section),
        bench.page("item fragment", FEW_EMAIL, f"{mine}/items/{item}", f"{theirs}/items/{item}", SMALL_GOAL,
                   fragment=True, region=("<article", "</article>")),
        bench.page("history fragment", FEW_EMAIL, f"{mine}/history", f"{theirs}/history", SMALL_GOAL, fragment=True,
                   region=section),
        bench.page("order form", ORDER_EMAIL, f"/order/{plan}", f"/{{t}}/{{u}}/order/{plan}", SMALL_GOAL,
                   region=('<header class="page-header">', *main)),
        bench.page("price preview", FEW_EMAIL, f"/order/{plan}/preview?quantity=1",
                   f"/{{t}}/order/{plan}/preview?quantity=1", PREVIEW_GOAL, fragment=True, region=section),
        bench.page("billing, 50 invoices", MANY_EMAIL, "/billing", "/{t}/{u}/billing", LIST_GOAL, rows=MANY,
                   region=('<div class="billing-facts">', *main)),
        bench.page("printable invoice", FEW_EMAIL, f"/billing/invoices/{invoice}",
                   f"/{{t}}/{{u}}/billing/invoices/{invoice}", SMALL_GOAL,
                   region=('<article class="invoice-document"', "</article>")),
        bench.page("support search", SUPPORT_EMAIL, f"/support/?q={SEARCH}", f"/{{t}}/support/?q={SEARCH}",
                   LIST_GOAL, rows=PER_PAGE, region=('<header class="page-header">', *main)),
        bench.page("admin catalogue", ADMIN_EMAIL, "/admin/", "/{t}/admin/", LIST_GOAL,
                   region=('<nav class="tabs"', *main)),
        bench.page("admin servers", ADMIN_EMAIL, "/admin/servers", "/{t}/admin/servers", LIST_GOAL, rows=ATTENTION,
                   region=('<nav class="tabs"', *main)),
        bench.page("admin audit", ADMIN_EMAIL, "/admin/audit", "/{t}/admin/audit", LIST_GOAL, rows=PER_PAGE,
                   region=('<nav class="tabs"', *main)),
        bench.page("admin subscriptions", ADMIN_EMAIL, "/admin/subscriptions", "/{t}/admin/subscriptions", LIST_GOAL,
                   rows=PER_PAGE, region=('<nav class="tabs"', *main)),
        bench.api("API list, 5 rows", FEW_EMAIL, "/api/v1/subscriptions?limit=50",
                  "/{t}/{u}/api/subscriptions?limit=50", LIST_GOAL, rows=FEW, same="API list"),
        bench.api("API list, 50 rows", MANY_EMAIL, "/api/v1/subscriptions?limit=50",
                  "/{t}/{u}/api/subscriptions?limit=50", LIST_GOAL, rows=MANY, same="API list"),
        bench.api("API subscription", FEW_EMAIL, f"/api/v1/subscriptions/{opaque_id('sub', sid)}",
                  f"/{{t}}/{{u}}/api/subscriptions/{sid}", SMALL_GOAL),
        order(bench, plan),
    ]


def order(bench: Bench, plan: int) -> Operation:
    """The order POST as a browser sends it (a new order key each time) against a raw insert of the same rows."""
    viewer = bench.login(ORDER_EMAIL)
    key = query(bench.path, "SELECT min(id) FROM ssh_keys WHERE user_id = ?", viewer.user_id)[0]
    form = {"csrf_token": csrf_token(viewer.client, f"/order/{plan}"), "quantity": "1", "serverType": "cx32",
            "location": "nbg1", "image": "debian-12", "ssh_keys": str(key)}

    # The session as the order form left it. A browser follows each order's redirect, and the page it lands on
    # takes the order's "Thank you" message out of the session; this client does not, so each POST starts from
    # that session again instead of carrying every earlier order's message in a growing cookie.
    session = viewer.client.get_cookie(SESSION_COOKIE)

    def post(client: FlaskClient, path: str) -> Callable[[], str]:
        def request() -> str:
            if session is not None and client is viewer.client:
                client.set_cookie(SESSION_COOKIE, session.value, domain=session.domain, path=session.path)
            order_key = uuid.uuid4().hex  # server names are unique in the tenant: a new one per order, as a customer's
            response = client.post(path, data={**form, "idempotency_key": order_key, "hostname": f"o-{order_key}"})
            if response.status_code != 303:
                raise SystemExit(f"POST {path} answered {response.status_code}")
            return response.headers["Location"]
        return request

    def cleanup() -> None:
        remove_orders(bench.path, viewer.user_id)
        huey.flush()  # the bench's own queue (bench/__init__.py)

    cleanup()
    return Operation("order POST", post(viewer.client, f"/order/{plan}"),
                     post(bench.bare, f"/{viewer.tenant_id}/{viewer.user_id}/order/{plan}"), ORDER_GOAL,
                     check=lambda op: same_orders(bench.path, op), cleanup=cleanup)


ORDERED = {"subscriptions": "SELECT tenant_id, user_id, plan_id, status, quantity, price_minor, currency, interval, "
                            "requested_config, auto_renew, auto_backorder, version FROM subscriptions WHERE id = ?",
           "subscription_items": "SELECT tenant_id, status, service_kind, provider, config, hostname IS NOT NULL, "
                                 "substr(fqdn, length(hostname) + 1) FROM subscription_items "
                                 "WHERE subscription_id = ? ORDER BY id",
           "subscription_events": "SELECT tenant_id, kind, from_status, to_status, actor_id, impersonator_id, item_id, "
                                  "reason, json(data) FROM subscription_events WHERE subscription_id = ? ORDER BY id"}
# PostgreSQL gives JSON columns parsed, so they compare as values; it has no json() function.
ORDERED_POSTGRESQL = {**ORDERED, "subscription_events": ORDERED["subscription_events"].replace("json(data)", "data")}


def same_orders(path: str, op: Operation) -> None:
    """Both orders wrote the same rows (ids, keys and times aside), so like is measured against like."""
    ids = [int(location.rstrip("/").rsplit("/", 1)[1]) for location in (op.portal(), op.baseline())]
    with connection(path) as conn:
        for table, sql in (ORDERED_POSTGRESQL if is_postgresql(path) else ORDERED).items():
            portal, bare = (conn.execute(sql, (sid,)).fetchall() for sid in ids)
            if not portal or portal != bare:
                raise SystemExit(f"{op.name}: the portal and the baseline wrote different {table}: {portal} {bare}")


def remove_orders(path: str, user_id: int) -> None:
    """Remove the orders placed while measuring, and what came with them: the data set stays as built."""
    with connection(path) as conn:
        owned = "SELECT id FROM subscriptions WHERE user_id = ?"
        for table in ("subscription_events", "subscription_items", "backorders"):
            conn.execute(f"DELETE FROM {table} WHERE subscription_id IN ({owned})", (user_id,))  # noqa: S608
        conn.execute("DELETE FROM subscriptions WHERE user_id = ?", (user_id,))
    with connection(bare_queue(path)) as queue:
        queue.execute("DELETE FROM task")


def same_json(op: Operation, rows: int | None) -> None:
    """Both answers are the same JSON, so like is measured against like."""
    portal, bare = json.loads(op.portal()), json.loads(op.baseline())
    if portal != bare:
        raise SystemExit(f"{op.name}: the portal and the baseline answer different JSON:\n{portal}\n{bare}")
    if rows is not None and len(portal["data"]) != rows:
        raise SystemExit(f"{op.name}: {len(portal['data'])} rows, expected {rows}")


def cut(page: str, region: tuple[str, str]) -> str:
    start = page.find(region[0])
    end = page.find(region[1], start)
    return PER_REQUEST.sub(r'\1"', " ".join(page[start:end].split())) if start >= 0 and end >= 0 else ""


def check_pages(op: Operation) -> None:
    """Both pages show the same rows with the same markup, so like is measured against like."""
    portal, bare = op.portal(), op.baseline()
    if op.region is not None and (not cut(portal, op.region) or cut(portal, op.region) != cut(bare, op.region)):
        import difflib

        diff = "\n".join(difflib.unified_diff(cut(bare, op.region).split("> <"), cut(portal, op.region).split("> <"),
                                            "baseline", "portal", lineterm="", n=1))
        raise SystemExit(f"{op.name}: the portal and the baseline show different markup in {op.region[0]}\n{diff}")
    shown = len(ROW.findall(portal)), len(ROW.findall(bare))
    if op.rows is not None and shown != (op.rows, op.rows):
        raise SystemExit(f"{op.name}: portal shows {shown[0]} rows, baseline {shown[1]}, expected {op.rows}")
    cards = len(CARD.findall(portal)), len(CARD.findall(bare))
    if op.cards is not None and cards != (op.cards, op.cards):
        raise SystemExit(f"{op.name}: portal shows {cards[0]} plans, baseline {cards[1]}, expected {op.cards}")


def checked(op: Operation, bench: Bench) -> None:
    """Compare what both sides show or write, and check the plans of the statements of one portal request."""
    (op.check or check_pages)(op)
    bench.recorder.statements, bench.recorder.capturing = [], True
    op.portal()
    bench.recorder.capturing = False
    op.missed_plans = missed_indexes(bench.path, bench.recorder.statements)


def timed(request: Callable[[], str], count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        request()
    return time.perf_counter() - started


def rounds_of(requests: list[Callable[[], str]], rounds: int, count: int) -> list[list[float]]:
    """The time of a batch of each request, per round; every other round in the reverse order."""
    for request in requests:
        timed(request, count // 4 + 1)  # warm up
    times = []
    for index in range(rounds):
        order = range(len(requests)) if index % 2 == 0 else reversed(range(len(requests)))
        batch = {i: timed(requests[i], count) for i in order}
        times.append([batch[i] for i in range(len(requests))])
    return times


def measure(pairs: list[tuple[Operation, Bench]], rounds: int, count: int) -> None:
    """Time one operation on one data set or more (S, then M): ratios to bare, statements, and M/S growth."""
    for op, bench in pairs:
        checked(op, bench)
        bench.recorder.count = 0
    requests = [request for op, _ in pairs for request in (op.portal, op.baseline)]
    for times in rounds_of(requests, rounds, count):
        for index, (op, _) in enumerate(pairs):
            op.ratios.append(times[2 * index] / times[2 * index + 1])
        if len(pairs) == 2:
            pairs[0][0].growth.append(times[2] / times[0])
    for op, bench in pairs:
        op.statements = bench.recorder.count / (rounds * count + count // 4 + 1)  # the rounds and the warm-up
        if op.cleanup:
            op.cleanup()


def remeasure_misses(registries: list[list[Operation]], benches: list[Bench], margin: float) -> list[str]:
    """Measure again, as a full run does, each operation whose quick figures missed a ratio goal: up to
    `ATTEMPTS` times, in turns over all those still missing (so one operation's attempts are spread over the
    run), keeping each one's best run; returns their names. Batches on a shared machine land on other
    processes' busy moments, sometimes for many seconds; a real miss stays a miss however often it is measured."""
    def missing(ops: tuple[Operation, ...]) -> bool:
        return not all(op.ratio_met(margin) and op.growth_met(margin) for op in ops)

    again: list[str] = []
    best = {id(op): (op.ratios, op.growth) for ops in registries for op in ops}
    for _ in range(ATTEMPTS):
        turn = [ops for ops in zip(*registries, strict=True) if missing(ops)]
        for ops in turn:
            for op in ops:
                op.ratios, op.growth = [], []
            measure(list(zip(ops, benches, strict=True)), ROUNDS, REQUESTS)
            for op in ops:
                best[id(op)] = min(best[id(op)], (op.ratios, op.growth), key=lambda run: statistics.median(run[0]))
                op.ratios, op.growth = best[id(op)]
            again.append(ops[0].name)
    return list(dict.fromkeys(again))


def report(title: str, ops: list[Operation], margin: float) -> None:
    print(title)
    print(f"{'operation':22} {'ratio median (min-max)':>24} {'statements':>11}  goal")
    for op in ops:
        ratio = f"{statistics.median(op.ratios):.2f}x ({min(op.ratios):.2f}-{max(op.ratios):.2f})"
        mark = "met" if op.ratio_met(margin) and op.statements_met() else "MISSED"
        print(f"{op.name:22} {ratio:>24} {op.statements:>11.1f}  {op.goal.text}: {mark}")
    print()


def report_growth(ops: list[Operation], margin: float) -> None:
    print(f"Growth: the portal's time at M over S, goal at most {GROWTH}x")
    for op in ops:
        mark = "met" if op.growth_met(margin) else "MISSED"
        print(f"{op.name:22} {statistics.median(op.growth):>7.2f}x ({min(op.growth):.2f}-{max(op.growth):.2f})"
              f"  {mark}")
    print()


def report_plans(ops: list[Operation]) -> None:
    print("Query plans: no statement walks a big table without an index")
    for op in ops:
        for sql, scans in op.missed_plans:
            print(f"{op.name}: MISSED, {'; '.join(scans)} in\n    {' '.join(sql.split())}")
    if not any(op.missed_plans for op in ops):
        print("met")
    print()


def same_statements(ops: list[Operation], label: str) -> list[tuple[str, bool]]:
    """For each family (`same`): its operations run the same number of statements (5 and 50 rows alike)."""
    families: dict[str, set[float]] = {}
    for op in ops:
        if op.same:
            # Rounded: once in a long run a request reads the tenant again (its cache lasts TENANT_CACHE_SECONDS),
            # one statement in a thousand requests; a page that grew by a statement per row shows whole ones.
            families.setdefault(op.same, set()).add(round(op.statements, 1))
    return [(f"{label}: {name} statements the same for each size", len(counts) == 1)
            for name, counts in families.items()]


def own_queue() -> None:
    """The orders placed while measuring go to the benchmark's own queue, which is emptied after use."""
    if not isinstance(huey.storage, SqliteStorage) or not huey.storage.filename.startswith(INSTANCE):
        raise SystemExit(f"run the benchmark without REDIS_URL and INSTANCE_PATH: its orders queue work in {INSTANCE}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", default=None, help="default: sqlite:///instance/bench-S.sqlite3, "
                                                        "or bench-<size> with --build")
    parser.add_argument("--compare", default=None, metavar="DATABASE", help="a bigger data set (M): the growth")
    parser.add_argument("--build", choices=sorted(SIZES), help="build this size into --database first (seed 1)")
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--requests", type=int, default=REQUESTS, help="requests per batch")
    parser.add_argument("--quick", action="store_true",
                        help=f"5 rounds of 20 requests; ratios may exceed their goals by {NOISE_MARGIN * 100:.0f}%%")
    parser.add_argument("--only", action="append", metavar="TEXT",
                        help="measure only the operations whose name contains TEXT (repeatable)")
    args = parser.parse_args(argv)
    rounds, count = (5, 20) if args.quick else (args.rounds, args.requests)
    margin = NOISE_MARGIN if args.quick else 0.0
    database = absolute(args.database or f"sqlite:///instance/bench-{args.build or 'S'}.sqlite3")
    baseline_database(database)  # a SQLite file or PostgreSQL, before anything is built
    if args.build:
        build(SIZES[args.build], 1, database)
    own_queue()
    logging.disable(logging.INFO)  # a log line per request would be measured too
    benches = [Bench(database)] + ([Bench(absolute(args.compare))] if args.compare else [])
    gc.freeze()  # as wsgi.py does in the portal's processes once the app is made; both apps here gain alike
    registries = [[op for op in operations(bench) if not args.only or any(text in op.name for text in args.only)]
                  for bench in benches]
    for ops in zip(*registries, strict=True):
        measure(list(zip(ops, benches, strict=True)), rounds, count)
    again = remeasure_misses(registries, benches, margin) if args.quick else []
    print(f"{rounds} rounds of {count} requests each, interleaved, in process"
          + (f"; quick: ratios may exceed their goals by {NOISE_MARGIN:.0%}" if args.quick else "")
          + (f"; measured again with {ROUNDS} rounds of {REQUESTS}: {', '.join(again)}" if again else "") + "\n")
    for bench, ops in zip(benches, registries, strict=True):
        report(bench.database, ops, margin)
    if args.compare:
        report_growth(registries[0], margin)
    report_plans([op for ops in registries for op in ops])
    extra = [check for bench, ops in zip(benches, registries, strict=True)
             for check in same_statements(ops, bench.path.rsplit("/", 1)[-1])]
    for text, ok in extra:
        print(f"{text}: {'met' if ok else 'MISSED'}")
    missed = [op.name for ops in registries for op in ops if not op.met(margin)] + [t for t, ok in extra if not ok]
    print(f"\nGoals missed: {', '.join(dict.fromkeys(missed))}" if missed else "\nEvery goal met.")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
