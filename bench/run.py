"""Measure the portal against the bare baselines, interleaved, and check the speed goals.

    python -m bench.run --database sqlite:///instance/bench-S.sqlite3 [--rounds N] [--requests N] [--quick]

Both apps run in this process behind Flask test clients. Each round times a batch of requests to the portal
and a batch to the baseline (A B, then B A in the next round, ...); the ratio of the two is the round's
figure, and the median over the rounds with its range is what counts. SQL statements are counted on the
portal's engine. Exits 1 when a goal is missed. To measure another operation, add an `Operation` to
`operations()`.
"""

from __future__ import annotations

import argparse
import logging
import re
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from flask.testing import FlaskClient
from sqlalchemy import event
from sqlalchemy.engine import make_url

from app.extensions import db
from bench.baseline import connect, create_baseline
from bench.data import FEW, FEW_EMAIL, MANY, MANY_EMAIL, PASSWORD, PLANS, absolute, bench_app

HTMX = {"HX-Request": "true"}
CSRF = re.compile(r'"X-CSRFToken": "([^"]+)"')
ROW = re.compile(r"<tr>\s*<td>")
CARD = re.compile(r'<article class="plan-card')


@dataclass(frozen=True)
class Goal:
    max_ratio: float
    max_statements: int | None
    text: str


LIST_GOAL = Goal(2.0, 3, "within 2x of bare, at most 3 statements")
SMALL_GOAL = Goal(3.0, None, "within 3x of bare")
PREVIEW_GOAL = Goal(3.0, 1, "within 3x of bare, at most 1 statement")


@dataclass
class Operation:
    """One measured page: a portal request and the bare request serving the same rows, and its goal."""

    name: str
    portal: Callable[[], str]
    baseline: Callable[[], str]
    goal: Goal
    rows: int | None = None  # table rows both pages must show
    cards: int | None = None  # plan cards both pages must show
    region: tuple[str, str] | None = None  # where both pages must show the same markup (whitespace aside)
    ratios: list[float] = field(default_factory=list)
    statements: float = 0.0

    def met(self) -> bool:
        ratio_ok = statistics.median(self.ratios) <= self.goal.max_ratio
        return ratio_ok and (self.goal.max_statements is None or self.statements <= self.goal.max_statements)


class Counter:
    """Counts the SQL statements the portal's engine runs."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, *args: object) -> None:
        self.count += 1


def get(client: FlaskClient, path: str, headers: dict[str, str] | None = None) -> Callable[[], str]:
    def request() -> str:
        response = client.get(path, headers=headers)
        if response.status_code != 200:
            raise SystemExit(f"GET {path} answered {response.status_code}")
        return response.get_data(as_text=True)
    return request


def logged_in(app: object, email: str) -> FlaskClient:
    """A test client of the portal after a real login: the login form's CSRF token, then the POST."""
    client = app.test_client()  # type: ignore[attr-defined]
    token = CSRF.search(client.get("/login").get_data(as_text=True))
    if token is None:
        raise SystemExit("no CSRF token on /login")
    response = client.post("/login", data={"csrf_token": token.group(1), "email": email, "password": PASSWORD})
    if response.status_code not in (302, 303):
        raise SystemExit(f"login as {email} answered {response.status_code}")
    return client


def customer_ids(path: str, email: str) -> tuple[int, int]:
    """(tenant id, user id) of the known customer of the tenant on `localhost`."""
    with connect(path, by_position=True) as conn:
        row = conn.execute("SELECT u.tenant_id, u.id FROM users u JOIN tenant_hosts h ON h.tenant_id = u.tenant_id "
                           "WHERE h.hostname = 'localhost' AND u.email = ?", (email,)).fetchone()
    if row is None:
        raise SystemExit(f"{email} is not in {path}: build the data with python -m bench.data")
    return row[0], row[1]


def operations(portal_app: object, path: str) -> list[Operation]:
    """The registry: what is measured, against what, with which goal."""
    bare = create_baseline(path).test_client()
    ops = []
    for email, rows in ((FEW_EMAIL, FEW), (MANY_EMAIL, MANY)):
        tenant_id, user_id = customer_ids(path, email)
        ops.append(Operation(f"dashboard, {rows} rows", get(logged_in(portal_app, email), "/subscriptions/"),
                             get(bare, f"/{tenant_id}/{user_id}/subscriptions/"), LIST_GOAL, rows=rows,
                             region=("<table", "</table>")))
    tenant_id, _ = customer_ids(path, FEW_EMAIL)
    ops.append(Operation("catalogue", get(logged_in(portal_app, FEW_EMAIL), "/"),
                         get(bare, f"/{tenant_id}/catalogue/"), SMALL_GOAL, cards=len(PLANS),
                         region=('<div class="plan-grid">', "</main>")))
    tenant_id, user_id = customer_ids(path, FEW_EMAIL)
    subscription_id = active_subscription(path, user_id)
    ops.append(Operation("summary fragment", get(logged_in(portal_app, FEW_EMAIL),
                                                 f"/subscriptions/{subscription_id}/summary", HTMX),
                         get(bare, f"/{tenant_id}/{user_id}/subscriptions/{subscription_id}/summary"), SMALL_GOAL,
                         region=("<section", "</section>")))
    plan_id = paid_plan(path, tenant_id)
    ops.append(Operation("price preview", get(logged_in(portal_app, FEW_EMAIL), f"/order/{plan_id}/preview?quantity=1",
                                              HTMX),
                         get(bare, f"/{tenant_id}/order/{plan_id}/preview?quantity=1"), PREVIEW_GOAL,
                         region=("<section", "</section>")))
    return ops


def active_subscription(path: str, user_id: int) -> int:
    """The customer's newest active subscription (what the summary fragment is measured on)."""
    with connect(path, by_position=True) as conn:
        row = conn.execute("SELECT max(id) FROM subscriptions WHERE user_id = ? AND status = 'active'",
                           (user_id,)).fetchone()
    if row[0] is None:
        raise SystemExit("the bench customer has no active subscription: build the data with python -m bench.data")
    return row[0]


def paid_plan(path: str, tenant_id: int) -> int:
    with connect(path, by_position=True) as conn:
        return conn.execute("SELECT min(id) FROM plans WHERE tenant_id = ? AND price_minor > 0",
                            (tenant_id,)).fetchone()[0]


def cut(page: str, region: tuple[str, str]) -> str:
    start = page.find(region[0])
    end = page.find(region[1], start)
    return " ".join(page[start:end].split()) if start >= 0 and end >= 0 else ""


def check_rows(op: Operation) -> None:
    """Both pages show the same rows with the same markup, so like is measured against like."""
    if op.region is not None and (not cut(op.portal(), op.region) or cut(op.portal(), op.region)
                                  != cut(op.baseline(), op.region)):
        raise SystemExit(f"{op.name}: the portal and the baseline show different markup in {op.region[0]}")
    shown = len(ROW.findall(op.portal())), len(ROW.findall(op.baseline()))
    if op.rows is not None and shown != (op.rows, op.rows):
        raise SystemExit(f"{op.name}: portal shows {shown[0]} rows, baseline {shown[1]}, expected {op.rows}")
    cards = len(CARD.findall(op.portal())), len(CARD.findall(op.baseline()))
    if op.cards is not None and cards != (op.cards, op.cards):
        raise SystemExit(f"{op.name}: portal shows {cards[0]} plans, baseline {cards[1]}, expected {op.cards}")


def timed(request: Callable[[], str], count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        request()
    return time.perf_counter() - started


def measure(op: Operation, counter: Counter, rounds: int, requests: int) -> None:
    check_rows(op)
    timed(op.portal, requests // 4 + 1)  # warm up both
    timed(op.baseline, requests // 4 + 1)
    counter.count = 0
    for index in range(rounds):
        if index % 2 == 0:
            portal = timed(op.portal, requests)
            bare = timed(op.baseline, requests)
        else:
            bare = timed(op.baseline, requests)
            portal = timed(op.portal, requests)
        op.ratios.append(portal / bare)
    op.statements = counter.count / (rounds * requests)


def report(ops: list[Operation], extra: list[tuple[str, bool]]) -> bool:
    print(f"{'operation':24} {'ratio median (min-max)':>24} {'statements':>11}  goal")
    for op in ops:
        ratio = f"{statistics.median(op.ratios):.2f}x ({min(op.ratios):.2f}-{max(op.ratios):.2f})"
        mark = "met" if op.met() else "MISSED"
        print(f"{op.name:24} {ratio:>24} {op.statements:>11.1f}  {op.goal.text}: {mark}")
    for text, ok in extra:
        print(f"{text}: {'met' if ok else 'MISSED'}")
    return all(op.met() for op in ops) and all(ok for _, ok in extra)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", default="sqlite:///instance/bench-S.sqlite3")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--requests", type=int, default=100, help="requests per batch")
    parser.add_argument("--quick", action="store_true", help="3 rounds of 20 requests")
    args = parser.parse_args(argv)
    rounds, requests = (3, 20) if args.quick else (args.rounds, args.requests)
    database = absolute(args.database)
    # The baseline and the checks read a SQLite file by its path, PostgreSQL by its URL.
    path = make_url(database).database if make_url(database).get_backend_name() == "sqlite" else database
    if not path:
        raise SystemExit(f"no database file in {database}")
    logging.disable(logging.INFO)  # a log line per request would be measured too
    portal_app = bench_app(database)
    counter = Counter()
    with portal_app.app_context():
        event.listen(db.engine, "before_cursor_execute", counter)
    ops = operations(portal_app, path)
    for op in ops:
        measure(op, counter, rounds, requests)
    lists = [op.statements for op in ops if op.goal is LIST_GOAL]
    extra = [("dashboard statements the same for 5 and 50 rows", len(set(lists)) <= 1)]
    print(f"{database}: {rounds} rounds of {requests} requests each, interleaved, in process\n")
    return 0 if report(ops, extra) else 1


if __name__ == "__main__":
    sys.exit(main())
