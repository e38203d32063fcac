"""Scale-out check: concurrent orders through two web processes and two background workers, as in production.

    python -m bench.scaleout [--database postgresql://127.0.0.1:5432/bench_scale] [--redis redis://127.0.0.1:6379/15]
                             [--clients 8 32] [--orders 3] [--timeout 180]

Everything is configured from the environment as production is (PORTAL_ENV=production, SECRET_KEY,
DATABASE_URL, REDIS_URL, SANDBOX_*_URL): the database is emptied (its `public` schema dropped), migrated with
`flask db upgrade` and given the demo data (`flask demo-data`); the portal's queue in that Redis database is
flushed. Then it starts the sandbox clouds (`flask fake-clouds`), two gunicorn processes (`wsgi:app`, 2 sync
workers each, on two ports) and two background workers (`flask worker`), and creates one customer with a
complete billing profile per client. Each phase (8, then 32 clients by default) runs one thread per client:
the client logs in through the login form of one web process, then places its orders: it loads the order form
for the Standard plan and submits it as a browser does (CSRF token, idempotency key, the preselected options),
twice at once, once through each web process (a double click that reaches two machines).

Checks, each failing the exit status: every answer is a redirect to the subscription (no 5xx, no error page, no
"database is locked" in any answer or log), both submissions of an order name the same subscription, each order
made exactly one subscription and one server at the cloud, every ordered server is active within the timeout,
each subscription was activated once, and both worker processes ran provisioning. The portal records nothing in
the database about which process ran a task (job runs and subscription events name none), so the spread is read
from each worker's log: Huey's "Executing app.tasks.jobs.provision_item" lines (steps) and the lifecycle's
"subscription N: activate" lines (which worker delivered which subscription). Both workers keep the periodic
schedule; a job that ran more than once for the same minute (`job_runs`) fails the check too (each scheduled
run is claimed by one process: `job_claims`, which also names it). The database must exist (e.g.
`psql -h 127.0.0.1 -U postgres -c 'create database bench_scale owner root'`); sandbox servers boot in 2 s.
Logs are kept in instance/scaleout/. All processes are stopped at the end, Ctrl+C included.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import requests
from argon2 import PasswordHasher
from huey import RedisHuey

from bench.baseline import connect
from bench.data import fresh
from bench.throughput import ROOT, free_port, gunicorn, started, terminate_on_sigterm, wait_until_answering

PASSWORD = "scaleout-customer-pass"  # noqa: S105 - a known password of generated test data
PLAN_SLUG = "standard-monthly"  # Nimbus Cloud's Standard plan, on the sandbox Hetzner cloud
LOGS = Path(ROOT) / "instance" / "scaleout"
EXECUTING = "Executing app.tasks.jobs.provision_item"
ACTIVATED = re.compile(r"app\.services\.lifecycle: subscription (\d+): activate ")
CREATED = re.compile(r'POST /v1/servers HTTP/1\.1\S*" 201 ')  # the fake Hetzner API's log: a server made
LOCKED = "database is locked"
FLASK = [sys.executable, "-m", "flask", "--app", "wsgi"]


class FormFields(HTMLParser):
    """The fields a browser would submit with the form that posts to `action` (the page's own path: a form
    without an action posts there too): inputs with their values (checkboxes only when checked), each select
    with its selected option (else its first)."""

    def __init__(self, action: str) -> None:
        super().__init__()
        self.action = action
        self.inside = False
        self.fields: dict[str, str] = {}
        self.select: str | None = None
        self.first_option: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = {name: value or "" for name, value in attrs}
        if tag == "form":
            self.inside = attr.get("action", self.action) in (self.action, "")
        elif not self.inside:
            return
        elif tag == "input" and "name" in attr and (attr.get("type") != "checkbox" or "checked" in attr):
            self.fields[attr["name"]] = attr.get("value", "on" if attr.get("type") == "checkbox" else "")
        elif tag == "select":
            self.select, self.first_option = attr.get("name"), None
        elif tag == "option" and self.select:
            value = attr.get("value", "")
            if self.first_option is None:
                self.first_option = value
                self.fields.setdefault(self.select, value)
            if "selected" in attr:
                self.fields[self.select] = value

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.inside = False
        elif tag == "select":
            self.select = None


def form_fields(page: str, action: str) -> dict[str, str]:
    parser = FormFields(action)
    parser.feed(page)
    if "csrf_token" not in parser.fields:
        raise Failure(f"no form posting to {action} with a CSRF token on the page")
    return parser.fields


class Failure(Exception):
    """An answer the check does not accept."""


@dataclass
class Client:
    """A browser of one customer: its cookies (set as a browser would, the Secure flag aside: plain HTTP)."""

    email: str
    cookies: dict[str, str] = field(default_factory=dict)

    def send(self, method: str, url: str, data: dict[str, str] | None = None) -> requests.Response:
        answer = requests.request(method, url, data=data, cookies=self.cookies, allow_redirects=False, timeout=60)
        self.cookies.update(answer.cookies.get_dict())
        if answer.status_code >= 500 or LOCKED in answer.text:
            request_id = answer.headers.get("X-Request-ID", "-")
            raise Failure(f"{method} {url} answered {answer.status_code} (request id {request_id})"
                          f"{': database is locked' if LOCKED in answer.text else ''}")
        return answer

    def login(self, base: str) -> None:
        fields = form_fields(self.send("GET", f"{base}/login").text, "/login")
        answer = self.send("POST", f"{base}/login", {**fields, "email": self.email, "password": PASSWORD})
        if answer.status_code not in (302, 303):
            raise Failure(f"login of {self.email} answered {answer.status_code}")


@dataclass
class Phase:
    """What one phase saw: the subscription of each order, the latencies, what went wrong."""

    clients: int
    subscriptions: list[int] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)


def place(client: Client, bases: tuple[str, str], plan_id: int, phase: Phase) -> None:
    """Load the order form and submit it twice at once, once through each web process."""
    action = f"/order/{plan_id}"
    fields = form_fields(client.send("GET", bases[0] + action).text, action)
    started_at = time.perf_counter()
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda base: client.send("POST", base + action, fields), bases))
    elapsed = time.perf_counter() - started_at
    targets = {answer.headers.get("Location", "") for answer in answers}
    found = [re.fullmatch(r"(?:https?://[^/]+)?/subscriptions/(\d+)", target) for target in targets]
    if any(answer.status_code != 303 for answer in answers) or len(targets) != 1 or found[0] is None:
        raise Failure(f"order of {client.email}: answers {[a.status_code for a in answers]}, "
                      f"redirects to {sorted(targets)} (expected one subscription for both submissions)")
    with phase.lock:
        phase.subscriptions.append(int(found[0].group(1)))
        phase.latencies.append(elapsed)


def customer_run(client: Client, bases: tuple[str, str], plan_id: int, orders: int, phase: Phase) -> None:
    try:
        client.login(bases[0])
        for _ in range(orders):
            place(client, bases, plan_id, phase)
    except (Failure, requests.RequestException) as error:
        with phase.lock:
            phase.failures.append(str(error))


def run_phase(clients: list[Client], webs: list[str], plan_id: int, orders: int) -> Phase:
    phase = Phase(len(clients))
    started_at = time.perf_counter()
    threads = [threading.Thread(target=customer_run, args=(client, (webs[i % 2], webs[(i + 1) % 2]), plan_id,
                                                           orders, phase)) for i, client in enumerate(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    phase.seconds = time.perf_counter() - started_at
    return phase


def create_customers(database: str, count: int, start: int) -> list[Client]:
    """Customers of the default tenant (Nimbus Cloud) with confirmed addresses, complete billing profiles and a
    saved card (a paid plan asks for one), written directly (the registration form allows 10 sign-ups per hour
    and address); the hash has the portal's production parameters (Argon2id, argon2-cffi's defaults)."""
    password_hash = PasswordHasher().hash(PASSWORD)
    emails = [f"scaleout-{start + i}@example.com" for i in range(count)]
    with connect(database, by_position=True) as conn:
        tenant_id = conn.execute("SELECT id FROM tenants WHERE slug = 'default'").fetchone()[0]
        for email in emails:
            user_id = conn.execute(
                "INSERT INTO users (tenant_id, email, name, password_hash, role, is_active, email_verified_at, "
                "created_at, updated_at) VALUES (?, ?, ?, ?, 'customer', true, now(), now(), now()) RETURNING id",
                (tenant_id, email, email.split("@")[0], password_hash)).fetchone()[0]
            conn.execute("INSERT INTO customer_profiles (user_id, full_name, billing_email, company, address, "
                         "postal_code, city, country, created_at, updated_at) VALUES (?, ?, ?, '', '1 Main Street',"
                         " '10115', 'Berlin', 'DE', now(), now())", (user_id, email.split("@")[0], email))
            conn.execute("INSERT INTO payment_methods (tenant_id, user_id, provider, external_id, brand, last4, "
                         "exp_month, exp_year, is_default, created_at) VALUES (?, ?, 'stripe-sandbox', ?, 'visa', "
                         "'4242', 12, 2035, true, now())", (tenant_id, user_id, f"pm_scaleout_{user_id}"))
    return [Client(email) for email in emails]


def provisioned(database: str, subscriptions: list[int], timeout: float) -> tuple[dict[str, int], float]:
    """Wait until every item of `subscriptions` is active (or failed); returns the items per status, the wait."""
    started_at = time.monotonic()
    while True:
        with connect(database, by_position=True) as conn:
            statuses = dict(conn.execute("SELECT status, count(*) FROM subscription_items "
                                         "WHERE subscription_id = ANY(?) GROUP BY status",
                                         (subscriptions,)).fetchall())
        waited = time.monotonic() - started_at
        if set(statuses) <= {"active", "failed"} or waited > timeout:
            return statuses, waited
        time.sleep(1)


def subscriptions_of(database: str, emails: list[str]) -> int:
    with connect(database, by_position=True) as conn:
        return int(conn.execute("SELECT count(*) FROM subscriptions s JOIN users u ON u.id = s.user_id "
                                "WHERE u.email = ANY(?)", (emails,)).fetchone()[0])


@dataclass(frozen=True)
class Logged:
    """What the logs say so far: provisioning steps and activated subscriptions per worker, servers created."""

    steps: list[int]
    activated: list[list[int]]
    servers_created: int

    @classmethod
    def read(cls, workers: list[Path], clouds: Path) -> Logged:
        texts = [log.read_text(errors="replace") for log in workers]
        return cls([text.count(EXECUTING) for text in texts],
                   [[int(found) for found in ACTIVATED.findall(text)] for text in texts],
                   len(CREATED.findall(clouds.read_text(errors="replace"))))

    def since(self, before: Logged) -> Logged:
        return Logged([a - b for a, b in zip(self.steps, before.steps, strict=True)],
                      [a[len(b):] for a, b in zip(self.activated, before.activated, strict=True)],
                      self.servers_created - before.servers_created)


def log_problems(logs: list[Path]) -> list[str]:
    """Tracebacks, errors and locked databases in the processes' logs."""
    found = []
    for log in logs:
        for line in log.read_text(errors="replace").splitlines():
            if "Traceback" in line or " ERROR " in line or " CRITICAL " in line or LOCKED in line:
                found.append(f"{log.name}: {line.strip()[:300]}")
    return found


def repeated_periodic_runs(database: str) -> list[str]:
    """Periodic jobs that ran more than once for the same minute (every worker process keeps the schedule)."""
    with connect(database, by_position=True) as conn:
        rows = conn.execute("SELECT job, date_trunc('minute', started_at), count(*) FROM job_runs "
                            "WHERE trigger = 'schedule' GROUP BY 1, 2 HAVING count(*) > 1 ORDER BY 2, 1").fetchall()
    return [f"{job} at {minute:%H:%M}: {count} runs" for job, minute, count in rows]


def prepare(database: str, environment: dict[str, str], redis_url: str) -> int:
    """A fresh, migrated database with the demo data and an empty queue; returns the Standard plan's id."""
    fresh(database)
    for command in (["db", "upgrade"], ["demo-data"]):
        subprocess.run([*FLASK, *command], cwd=ROOT, env={**os.environ, "PYTHONPATH": ROOT, **environment},  # noqa: S603
                       check=True, capture_output=True)
    RedisHuey("portal", url=redis_url).flush()
    with connect(database, by_position=True) as conn:
        return int(conn.execute("SELECT p.id FROM plans p JOIN tenants t ON t.id = p.tenant_id "
                                "WHERE t.slug = 'default' AND p.slug = ?", (PLAN_SLUG,)).fetchone()[0])


@dataclass
class Result:
    phase: Phase
    orders: int
    made: int
    statuses: dict[str, int]
    waited: float
    logged: Logged

    def failures(self, timeout: float) -> list[str]:
        found = list(self.phase.failures)
        if len(self.phase.subscriptions) != self.orders:
            found.append(f"{len(self.phase.subscriptions)} of {self.orders} orders answered with their subscription")
        if self.made != self.orders or len(set(self.phase.subscriptions)) != len(self.phase.subscriptions):
            found.append(f"{self.made} subscriptions for {self.orders} orders "
                         f"({len(set(self.phase.subscriptions))} distinct in the answers)")
        if self.statuses.get("active", 0) != len(self.phase.subscriptions):
            found.append(f"servers not active after {timeout:.0f} s: {self.statuses}")
        if self.logged.servers_created != len(self.phase.subscriptions):
            found.append(f"{self.logged.servers_created} servers created at the cloud for "
                         f"{len(self.phase.subscriptions)} orders")
        activated = sorted(found for ids in self.logged.activated for found in ids)
        if activated != sorted(self.phase.subscriptions):
            found.append(f"activations in the worker logs {activated} do not match the orders "
                         f"{sorted(self.phase.subscriptions)}")
        if min(self.logged.steps) == 0:
            found.append(f"provisioning ran on one worker process only: {self.logged.steps} steps per process")
        return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", default="postgresql://127.0.0.1:5432/bench_scale")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/15")
    parser.add_argument("--clients", type=int, nargs="+", default=[8, 32], help="one phase per number")
    parser.add_argument("--orders", type=int, default=3, help="orders per client")
    parser.add_argument("--timeout", type=float, default=180, help="seconds for every server to be active")
    args = parser.parse_args(argv)
    terminate_on_sigterm()
    LOGS.mkdir(parents=True, exist_ok=True)
    for old in LOGS.glob("*.log"):
        old.unlink()
    hetzner, digitalocean = free_port(), free_port()
    environment = {"PORTAL_ENV": "production", "SECRET_KEY": "bench-scaleout-secret-key", "DATABASE_URL":
                   args.database, "REDIS_URL": args.redis, "INSTANCE_PATH": str(LOGS), "LOG_LEVEL": "INFO",
                   "SANDBOX_HETZNER_URL": f"http://127.0.0.1:{hetzner}/v1",
                   "SANDBOX_DIGITALOCEAN_URL": f"http://127.0.0.1:{digitalocean}/v2/", "SANDBOX_BOOT_SECONDS": "2"}
    plan_id = prepare(args.database, environment, args.redis)
    worker_logs, clouds_log = [LOGS / f"worker-{i}.log" for i in (1, 2)], LOGS / "clouds.log"
    results: list[Result] = []
    with ExitStack() as stack:
        clouds = stack.enter_context(started([*FLASK, "fake-clouds", "--hetzner-port", str(hetzner),
                                              "--digitalocean-port", str(digitalocean)], environment,
                                             str(clouds_log)))
        wait_until_answering(f"http://127.0.0.1:{hetzner}", clouds)
        requests.post(f"http://127.0.0.1:{hetzner}/_control/rate_limit", json={"per_hour": 1_000_000}, timeout=10)
        webs = [stack.enter_context(gunicorn("wsgi:app", environment, log=str(LOGS / f"web-{i}.log")))
                for i in (1, 2)]
        for log in worker_logs:
            stack.enter_context(started([*FLASK, "worker"], environment, str(log)))
        created = 0
        for count in args.clients:
            clients = create_customers(args.database, count, created)
            created += count
            before = Logged.read(worker_logs, clouds_log)
            phase = run_phase(clients, webs, plan_id, args.orders)
            statuses, waited = provisioned(args.database, phase.subscriptions, args.timeout)
            time.sleep(1)  # the last log lines
            made = subscriptions_of(args.database, [client.email for client in clients])
            results.append(Result(phase, count * args.orders, made, statuses, waited,
                                  Logged.read(worker_logs, clouds_log).since(before)))
    return report(results, args.timeout, log_problems(sorted(LOGS.glob("*.log"))),
                  repeated_periodic_runs(args.database))


def report(results: list[Result], timeout: float, problems: list[str], repeated: list[str]) -> int:
    print("Two gunicorn processes (2 sync workers each), two `flask worker` processes, PostgreSQL and Redis; "
          "each order submitted twice at once, once through each web process\n")
    failed = False
    for result in results:
        phase = result.phase
        latencies = sorted(phase.latencies) or [0.0]
        print(f"{phase.clients} clients: {len(phase.subscriptions)} of {result.orders} orders in {phase.seconds:.1f} s "
              f"({len(phase.subscriptions) / phase.seconds:.1f} orders/s); double submission median "
              f"{statistics.median(latencies):.2f} s, max {latencies[-1]:.2f} s")
        logged = result.logged
        print(f"  subscriptions made: {result.made}; servers created at the cloud: {logged.servers_created}; "
              f"items {result.statuses} after {result.waited:.0f} s")
        print(f"  per worker process: provisioning steps {logged.steps}, subscriptions activated "
              f"{[len(ids) for ids in logged.activated]}")
        for failure in result.failures(timeout):
            failed = True
            print(f"  FAILED: {failure}")
    if problems:
        failed = True
        print(f"\nErrors in the logs ({LOGS}):")
        for line in problems[:20]:
            print(f"  {line}")
    if repeated:
        failed = True
        print(f"\nFAILED: periodic jobs ran more than once in the same minute: {'; '.join(repeated)}")
    print(f"\n{'FAILED' if failed else 'all checks passed'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
