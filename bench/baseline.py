"""The bare baseline: the same rows as the portal's pages, with nothing of the portal.

Plain Flask, Jinja and the standard library's `sqlite3` (or `psycopg` given a postgresql:// URL): one SQL
statement per page, rows as dicts, the same template markup (bench/templates/, copied from the portal's
templates). The pages have a minimal HTML shell instead of the portal's base layout (no navigation, banners,
flashes, CSRF token or htmx), and there is no login: the customer is named in the URL. The money, date and
milestone rules are restated here in a few lines, as a bare app would write them; what the portal adds beyond
this is what is measured. The statements are the same on both databases (`?` placeholders, turned into `%s`
for psycopg); the order's inserts read their new ids with `RETURNING` on PostgreSQL.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import pickle
import sqlite3
import threading
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple, Protocol
from urllib.parse import urlencode

import psycopg
from flask import Flask, Response, g, jsonify, redirect, render_template, request
from psycopg.rows import dict_row, tuple_row
from sqlalchemy.engine import make_url

from bench import INSTANCE

TEMPLATES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates")

STATUS_LABELS = {"pending_fulfillment": "Setting up", "pending_backorder": "On backorder", "active": "Active",
                 "pending_cancel": "Pending cancellation", "suspended": "Suspended", "canceled": "Canceled"}
ITEM_LABELS = {"decommissioning": "Switched off", "decommissioned": "Deleted"}  # the others: capitalized
LOCATIONS = {"fsn1": "Falkenstein, Germany", "nbg1": "Nuremberg, Germany", "hel1": "Helsinki, Finland",
             "ash": "Ashburn, Virginia, USA", "hil": "Hillsboro, Oregon, USA", "sin": "Singapore"}
PROVIDERS = {"hetzner": "Hetzner Cloud", "digitalocean": "DigitalOcean", "none": "No provider"}
END_REASONS = {"stopped": "Stopped by support", "expired": "Time limit reached", "logged_out": "Logged out",
               "superseded": "Replaced by a newer impersonation", "session_ended": "Session ended elsewhere"}
PER_PAGE = 25  # the staff lists' page
DNS_BASE_DOMAIN = "servers.bench.test"  # the portal's, as bench/data.py configures it
SECRET_KEY = "bench-secret-key"  # noqa: S105 - the portal's, as bench/data.py sets it: the API's ids are keyed with it
ID_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
ID_PREFIXES = {"sub": "sub", "plan": "pln"}

DASHBOARD = """
SELECT s.id, s.status, s.price_minor, s.currency, s.interval, s.auto_renew, s.current_period_end,
       s.effective_at, s.canceled_at, s.servers_delete_at, s.purged_at,
       p.name AS plan_name, pr.name AS product_name, p.quantity_allowed, p.migration_target_id,
       (SELECT count(*) FROM subscription_items i WHERE i.subscription_id = s.id) AS servers,
       (SELECT count(*) FROM subscription_items i WHERE i.subscription_id = s.id AND i.status = 'active') AS ready,
       (SELECT coalesce(i.fqdn, i.hostname) FROM subscription_items i WHERE i.subscription_id = s.id
        ORDER BY i.id LIMIT 1) AS server_name
FROM subscriptions s JOIN plans p ON p.id = s.plan_id JOIN products pr ON pr.id = p.product_id
WHERE s.tenant_id = ? AND s.user_id = ?
ORDER BY s.created_at DESC, s.id DESC
"""


# The JSON API's subscription: the columns its representation shows, its plan's name joined.
API_SUBSCRIPTION = """
SELECT s.id, s.status, s.plan_id, p.name AS plan_name, s.quantity, s.price_minor, s.currency, s.interval,
       s.auto_renew, s.auto_backorder, s.requested_config, s.created_at, s.activated_at, s.current_period_start,
       s.current_period_end, s.effective_at, s.canceled_at, s.version
FROM subscriptions s JOIN plans p ON p.id = s.plan_id
WHERE s.tenant_id = ? AND s.user_id = ?
"""


CATALOGUE = """
SELECT p.id, p.slug, p.name, p.description, p.features, p.price_minor, p.currency, p.interval, p.quantity_allowed,
       pr.id AS product_id, pr.name AS product_name, pr.description AS product_description,
       st.provider, st.name AS service_type_name
FROM plans p JOIN products pr ON pr.id = p.product_id JOIN service_types st ON st.id = p.service_type_id
WHERE p.tenant_id = ? AND p.state = 'published' AND pr.state = 'published'
ORDER BY pr.name, pr.version, pr.id, p.sort_order, p.price_minor, p.id
"""


class Connection(Protocol):
    """What the pages need of a connection: `execute` with `?` placeholders, rows that read like dicts."""

    def execute(self, sql: str, parameters: Any = ..., /) -> Any: ...


class PostgreSQL:
    """psycopg in autocommit mode, rows as dicts (or tuples `by_position`); the same statements as on SQLite,
    their `?` placeholders turned into `%s`."""

    def __init__(self, url: str, *, by_position: bool = False) -> None:
        self.conn = psycopg.connect(url.replace("+psycopg", ""), autocommit=True,
                                    row_factory=tuple_row if by_position else dict_row)  # type: ignore[arg-type]

    def execute(self, sql: str, parameters: Any = ()) -> Any:
        return self.conn.execute(sql.replace("?", "%s"), parameters)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> PostgreSQL:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def is_postgresql(database: str) -> bool:
    return database.startswith(("postgresql:", "postgresql+psycopg:", "postgres:"))


def connect(database: str, *, by_position: bool = False, autocommit: bool = False) -> Any:
    """A connection to the SQLite file at the path `database`, or to the PostgreSQL database at that URL. Rows
    read by name (sqlite3.Row, psycopg's dict rows), or as plain tuples `by_position`. SQLite's connection
    opens its transactions implicitly as the sqlite3 module does, or not at all with `autocommit` (the
    statements then say BEGIN and COMMIT); psycopg's is always in autocommit mode."""
    if is_postgresql(database):
        return PostgreSQL(database, by_position=by_position)
    conn = sqlite3.connect(database, isolation_level=None) if autocommit else sqlite3.connect(database)
    if not by_position:
        conn.row_factory = sqlite3.Row
    return conn


def baseline_database(database: str) -> str:
    """What the baseline and the runner's lookups take for a database URL: a SQLite file's path, or the
    PostgreSQL URL itself."""
    url = make_url(database)
    if url.get_backend_name() == "postgresql":
        return database
    if url.get_backend_name() != "sqlite" or not url.database:
        raise SystemExit(f"the baseline reads a SQLite file or PostgreSQL, not {database}")
    return url.database


def loaded(value: Any) -> Any:
    """A JSON column's value: SQLite gives its text, psycopg the parsed value."""
    return json.loads(value) if isinstance(value, str) else value


class Milestone(NamedTuple):
    label: str
    at: datetime | None


def moment(value: str | datetime | None) -> datetime | None:
    """A stored time in UTC: SQLite keeps naive ISO text, PostgreSQL gives aware datetimes."""
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return datetime.fromisoformat(value).replace(tzinfo=UTC) if value else None


def milestone(row: Mapping[str, Any]) -> Milestone:
    """The next date that matters (app/domain/subscriptions.py next_milestone, restated)."""
    status, period_end = row["status"], moment(row["current_period_end"])
    if row["price_minor"] == 0 and status in ("active", "pending_backorder", "pending_fulfillment"):
        if status == "active":
            return Milestone("Runs until you cancel", None) if row["auto_renew"] else Milestone("Ends", period_end)
        if status == "pending_backorder":
            return Milestone("Starts when capacity is free and your server is ready", None)
        return Milestone("Starts when your server is ready", None)
    if status == "active":
        return Milestone("Renews" if row["auto_renew"] else "Ends", period_end)
    if status == "pending_cancel":
        return Milestone("Ends", moment(row["effective_at"]))
    if status == "suspended":
        return Milestone("Canceled unless paid by", moment(row["effective_at"]))
    if status == "canceled":
        if row["servers_delete_at"] and not row["purged_at"]:
            return Milestone("Servers deleted", moment(row["servers_delete_at"]))
        return Milestone("Ended", moment(row["canceled_at"]))
    if status == "pending_backorder":
        return Milestone("Billing starts when capacity is free and your server is ready", None)
    return Milestone("Billing starts when your server is ready", None)


class Outlook(NamedTuple):
    at: datetime | None
    instead: str = ""


def outlook(row: Mapping[str, Any]) -> Outlook:
    """The next charge, or why there is none (app/domain/subscriptions.py charge_outlook, restated)."""
    status = row["status"]
    if row["price_minor"] == 0:
        return Outlook(None)
    if status == "active" and row["auto_renew"] and row["current_period_end"]:
        return Outlook(moment(row["current_period_end"]))
    if status in ("active", "pending_cancel"):
        return Outlook(None, "No further charges: it ends with the current period")
    if status == "suspended":
        return Outlook(None, "No charges while suspended: paying the open invoice reinstates it")
    return Outlook(None, "No further charges" if status == "canceled" else "")


def money(amount: int, currency: str) -> str:
    symbol = {"EUR": "€", "USD": "$", "GBP": "£"}.get(currency)
    major, minor = divmod(abs(amount), 100)
    digits = f"{major:,}.{minor:02d}"
    sign = "-" if amount < 0 else ""
    return f"{sign}{symbol}{digits}" if symbol else f"{sign}{digits} {currency}"


def per_interval(interval: str) -> str:
    return {"month": "per month", "year": "per year"}[interval]


def date(value: datetime | None) -> str:
    return value.strftime("%-d %b %Y") if value else "—"


def dashboard_rows(conn: Connection, tenant_id: int, user_id: int) -> list[dict[str, Any]]:
    rows = []
    for row in conn.execute(DASHBOARD, (tenant_id, user_id)):
        shown = dict(row)
        shown["status_label"] = STATUS_LABELS[row["status"]]
        shown["milestone"] = milestone(row)
        shown["changeable"] = changeable = row["status"] == "active" and row["current_period_end"] is not None
        shown["migrates"] = changeable and row["migration_target_id"] is not None
        shown["quantity_allowed"] = bool(row["quantity_allowed"]) and not row["servers"]
        rows.append(shown)
    return rows


def catalogue_offers(conn: Connection, tenant_id: int) -> list[dict[str, Any]]:
    """Published plans of published products, grouped by product (the customer's view of the catalogue)."""
    offers: list[dict[str, Any]] = []
    for row in conn.execute(CATALOGUE, (tenant_id,)):
        plan = dict(row)
        plan["features"] = loaded(row["features"] or "[]")
        if not offers or offers[-1]["product"]["id"] != row["product_id"]:
            offers.append({"product": {"id": row["product_id"], "name": row["product_name"],
                                       "description": row["product_description"]}, "plans": []})
        offers[-1]["plans"].append(plan)
    return offers


PLAN = """
SELECT p.id, p.name, p.description, p.price_minor, p.currency, p.interval, p.config_defaults,
       p.allow_customer_location_selection, pr.name AS product_name, st.provider, st.service_kind, st.config_schema,
       t.slug AS tenant_slug
FROM plans p JOIN products pr ON pr.id = p.product_id JOIN service_types st ON st.id = p.service_type_id
JOIN tenants t ON t.id = p.tenant_id
WHERE p.id = ? AND p.tenant_id = ? AND p.state = 'published' AND pr.state = 'published'
"""
KEYS = "SELECT id, name, fingerprint, public_key, is_default FROM ssh_keys WHERE tenant_id = ? AND user_id = ? " \
       "ORDER BY name, id"


def orderable(conn: Connection, tenant_id: int, plan_id: int) -> dict[str, Any] | None:
    """The published plan with its product's name and its service type (the order form and the order)."""
    row = conn.execute(PLAN, (plan_id, tenant_id)).fetchone()
    if row is None:
        return None
    plan = dict(row)
    plan.update(config_defaults=loaded(row["config_defaults"]), config_schema=loaded(row["config_schema"]))
    return plan


def quote_of(plan: dict[str, Any], quantity: int) -> dict[str, Any]:
    """The price times the quantity, due in full when the server is ready."""
    total = plan["price_minor"] * quantity
    line = {"description": f"Plan, {per_interval(plan['interval'])}", "quantity": quantity, "amount": total}
    return {"lines": [line], "recurring": total, "due_now": total, "currency": plan["currency"],
            "interval": plan["interval"]}


def preview_quote(conn: Connection, tenant_id: int, plan_id: int, quantity: int) -> dict[str, Any] | None:
    """The plan and its quote."""
    row = conn.execute("SELECT id, name, price_minor, currency, interval FROM plans "
                       "WHERE id = ? AND tenant_id = ? AND state = 'published'", (plan_id, tenant_id)).fetchone()
    if row is None:
        return None
    return {"plan": dict(row), "quote": quote_of(dict(row), quantity)}


def choices(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """The order form's selects: each enum of the schema, in its order; the location only when selectable."""
    fields = []
    for name, spec in plan["config_schema"].get("properties", {}).items():
        if name in ("location", "region") and not plan["allow_customer_location_selection"]:
            continue
        if isinstance(spec.get("enum"), list):
            labels = location if name in ("location", "region") else str
            fields.append({"name": name, "title": spec.get("title", name), "default": plan["config_defaults"].get(name),
                           "choices": [(value, labels(value)) for value in spec["enum"]]})
    return fields


SUMMARY = """
SELECT s.*, p.name AS plan_name, pr.name AS product_name, t.retention_days, p.migration_target_id,
       p.quantity_allowed, st.provider, sc.effective_at AS change_at, sc.quantity AS change_quantity,
       sc.price_minor AS change_price_minor, sc.server_type AS change_server_type, cp.name AS change_plan_name
FROM subscriptions s JOIN plans p ON p.id = s.plan_id JOIN products pr ON pr.id = p.product_id
JOIN service_types st ON st.id = p.service_type_id JOIN tenants t ON t.id = s.tenant_id
LEFT JOIN scheduled_plan_changes sc ON sc.subscription_id = s.id AND sc.status = 'scheduled'
LEFT JOIN plans cp ON cp.id = sc.plan_id
WHERE s.id = ? AND s.tenant_id = ? AND s.user_id = ?
"""


class Entry(NamedTuple):
    label: str
    at: datetime
    done: bool


def timeline(row: Mapping[str, Any], now: datetime) -> list[Entry]:
    """Its dates, past and ahead (app/domain/timeline.py, restated)."""
    status, retention = row["status"], timedelta(days=row["retention_days"])
    period_end, effective = moment(row["current_period_end"]), moment(row["effective_at"])
    canceled, suspended = moment(row["canceled_at"]), moment(row["suspended_at"])
    entries = [Entry("Ordered", moment(row["created_at"]), True)]  # type: ignore[arg-type]
    if row["activated_at"]:
        entries.append(Entry("Active since", moment(row["activated_at"]), True))  # type: ignore[arg-type]
    if status == "active" and period_end:
        if row["auto_renew"]:
            entries += [] if row["price_minor"] == 0 else [Entry("Renews on", period_end, False)]
        else:
            entries += [Entry("Ends on", period_end, False), Entry("Servers deleted on", period_end + retention, False)]
    elif status == "pending_cancel" and effective:
        entries += [Entry("Ends on", effective, False), Entry("Servers deleted on", effective + retention, False)]
    elif status == "suspended" and suspended:
        entries.append(Entry("Suspended on", suspended, True))
        if effective:
            entries += [Entry("Canceled if unpaid on", effective, False),
                        Entry("Servers deleted on", effective + retention, False)]
    elif status == "canceled" and canceled:
        entries.append(Entry("Canceled on", canceled, True))
        deleted = moment(row["purged_at"]) or moment(row["servers_delete_at"])
        if deleted:
            entries.append(Entry("Servers deleted on", deleted, row["purged_at"] is not None))
    return [Entry(e.label, e.at, e.done or e.at <= now) for e in entries]


def summary_row(conn: Connection, tenant_id: int, user_id: int, subscription_id: int) -> dict[str, Any] | None:
    row = conn.execute(SUMMARY, (subscription_id, tenant_id, user_id)).fetchone()
    if row is None:
        return None
    shown = dict(row)
    for name in ("suspended_at", "effective_at", "canceled_at", "purged_at", "servers_delete_at"):
        shown[name] = moment(row[name])
    shown.update(status_label=STATUS_LABELS[row["status"]], milestone=milestone(row), outlook=outlook(row),
                 timeline=timeline(row, datetime.now(UTC)), change_at=moment(row["change_at"]),
                 changeable=row["status"] == "active" and row["current_period_end"] is not None)
    return shown


def datetime_utc(value: datetime | None) -> str:
    return value.strftime("%-d %b %Y, %H:%M UTC") if value else "—"


def location(code: str) -> str:
    return f"{LOCATIONS[code]} ({code})" if code in LOCATIONS else code


def humanize(value: str) -> str:
    return str(value).replace("_", " ").capitalize()


def status_label(value: str) -> str:
    return STATUS_LABELS.get(value) or ITEM_LABELS.get(value) or humanize(value)


def stamp(value: datetime) -> str:
    """A moment as SQLAlchemy keeps it in SQLite: UTC, no offset."""
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")


def shown_item(row: Mapping[str, Any]) -> dict[str, Any]:
    item = dict(row)
    item.update(config=loaded(row["config"] or "{}"), in_progress=row["status"] in ("pending", "provisioning"),
                status_label=ITEM_LABELS.get(row["status"], row["status"].capitalize()),
                name=row["fqdn"] or row["hostname"] or f"Server {row['id']}")
    for name in ("powered_off_at", "deleted_at", "servers_delete_at"):
        if name in item:
            item[name] = moment(item[name])
    return item


def items_of(conn: Connection, tenant_id: int, subscription_id: int) -> list[dict[str, Any]]:
    return [shown_item(row) for row in conn.execute(
        "SELECT * FROM subscription_items WHERE subscription_id = ? AND tenant_id = ? ORDER BY id",
        (subscription_id, tenant_id))]


EVENTS = """
SELECT e.*, a.name AS actor_name, i.name AS impersonator_name
FROM subscription_events e LEFT JOIN users a ON a.id = e.actor_id LEFT JOIN users i ON i.id = e.impersonator_id
WHERE e.subscription_id = ? AND e.tenant_id = ?
ORDER BY e.created_at DESC, e.id DESC LIMIT 100
"""


def history_context(conn: Connection, tenant_id: int, status: str, subscription_id: int,
                    items: list[dict[str, Any]]) -> dict[str, Any]:
    """The history region: the events with who acted, the servers they name, and whether something runs."""
    events = [{**dict(row), "created_at": moment(row["created_at"])}
              for row in conn.execute(EVENTS, (subscription_id, tenant_id))]
    return {"events": events, "servers": {item["id"]: item["name"] for item in items},
            "busy": status == "pending_fulfillment" or any(item["in_progress"] for item in items)}


ITEM = """
SELECT i.*, s.servers_delete_at, s.status AS subscription_status
FROM subscription_items i JOIN subscriptions s ON s.id = i.subscription_id
WHERE i.id = ? AND i.subscription_id = ? AND s.tenant_id = ? AND s.user_id = ?
"""


def ssh_keys(conn: Connection, tenant_id: int, user_id: int, ids: list[int] | None = None) -> list[dict[str, Any]]:
    """The customer's SSH keys by name (those of `ids` only, when given)."""
    rows = [dict(row) for row in conn.execute(KEYS, (tenant_id, user_id)).fetchall()]
    return rows if ids is None else [row for row in rows if row["id"] in ids]


def order_rows(conn: Connection, plan: dict[str, Any], tenant_id: int, user_id: int,
               form: dict[str, Any]) -> tuple[int, int]:
    """What an order writes, in one transaction: the subscription, its item (named, with the chosen SSH keys
    kept) and its event. (id, item id)
    SQLite takes the write lock at BEGIN and gives the new ids as `lastrowid`; PostgreSQL returns them
    (`RETURNING id`) and takes aware datetimes for its timestamps."""
    schema = plan["config_schema"].get("properties", {})
    chosen = {name: value for name, value in form.items() if name in schema and value in schema[name].get("enum", ())}
    requested = {**plan["config_defaults"], **chosen}
    keys = [{"name": k["name"], "fingerprint": k["fingerprint"], "public_key": k["public_key"]}
            for k in ssh_keys(conn, tenant_id, user_id, [int(i) for i in form.get("ssh_keys", [])])]
    config = json.dumps(requested)
    item_config = json.dumps({**requested, "sshKeys": keys}) if keys else config
    hostname = form["hostname"]
    fqdn = f"{hostname}.{plan['tenant_slug']}.{DNS_BASE_DOMAIN}"
    postgresql = isinstance(conn, PostgreSQL)
    now: datetime | str = datetime.now(UTC) if postgresql else stamp(datetime.now(UTC))

    def inserted(sql: str, parameters: tuple[Any, ...]) -> int:
        if postgresql:
            return int(conn.execute(f"{sql} RETURNING id", parameters).fetchone()["id"])
        return conn.execute(sql, parameters).lastrowid or 0

    status = "pending_fulfillment"
    conn.execute("BEGIN" if postgresql else "BEGIN IMMEDIATE")
    subscription_id = inserted(
        "INSERT INTO subscriptions (tenant_id, user_id, plan_id, status, quantity, price_minor, currency, interval, "
        "requested_config, auto_renew, auto_backorder, idempotency_key, version, created_at, updated_at) "
        "VALUES (?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?)",
        (tenant_id, user_id, plan["id"], status, plan["price_minor"], plan["currency"], plan["interval"], config,
         True, "auto_backorder" in form, form["idempotency_key"], now, now))
    item_id = inserted(
        "INSERT INTO subscription_items (tenant_id, subscription_id, status, service_kind, provider, config, "
        "hostname, fqdn, created_at, updated_at) VALUES (?, ?, 'pending', ?, ?, ?, ?, ?, ?, ?)",
        (tenant_id, subscription_id, plan["service_kind"], plan["provider"], item_config, hostname, fqdn, now, now))
    data = {"plan": plan["name"], "price": plan["price_minor"], "currency": plan["currency"], "quantity": 1}
    conn.execute("INSERT INTO subscription_events (tenant_id, subscription_id, kind, to_status, actor_id, reason, "
                 "data, created_at) VALUES (?, ?, 'ordered', ?, ?, '', ?, ?)",
                 (tenant_id, subscription_id, status, user_id, json.dumps(data), now))
    conn.execute("COMMIT")
    return subscription_id, item_id


# The bare queue: Huey's SQLite task table, one pickled message per job, written after the commit.
QUEUE_TABLE = "CREATE TABLE IF NOT EXISTS task (id INTEGER PRIMARY KEY, queue TEXT NOT NULL, data BLOB NOT NULL, " \
              "priority REAL NOT NULL DEFAULT 0.0)"


def bare_queue(database: str) -> str:
    """The bare app's queue: `bare-queue.sqlite3` beside the SQLite database, or in the benchmark's instance
    folder (bench/__init__.py) beside the portal's queue when the data is on PostgreSQL."""
    folder = INSTANCE if is_postgresql(database) else os.path.dirname(os.path.abspath(database))
    return os.path.join(folder, "bare-queue.sqlite3")


def enqueue(queue_path: str, job: str, *args: object) -> None:
    with connect(queue_path, autocommit=True) as conn:
        conn.execute("INSERT INTO task (queue, data, priority) VALUES ('bare', ?, 0)", (pickle.dumps((job, args)),))
    conn.close()


SUPPORT_SEARCH = """
SELECT id, name, email, is_active, created_at, email_verified_at, deleted_at, purge_at, purged_at FROM users
WHERE tenant_id = ? AND role = 'customer' AND (lower(name) LIKE ? ESCAPE '\\' OR email LIKE ? ESCAPE '\\')
ORDER BY name, id LIMIT ? OFFSET ?
"""


def page_of(rows: list[dict[str, Any]], page: int) -> dict[str, Any]:
    """One page of a staff list from PER_PAGE + 1 rows read."""
    return {"rows": rows[:PER_PAGE], "page": page, "has_prev": page > 1, "has_next": len(rows) > PER_PAGE}


def customers_matching(conn: Connection, tenant_id: int, query: str, page: int) -> dict[str, Any]:
    pattern = "%" + query.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    rows = [{**dict(row), "created_at": moment(row["created_at"])} for row in conn.execute(
        SUPPORT_SEARCH, (tenant_id, pattern, pattern, PER_PAGE + 1, (page - 1) * PER_PAGE))]
    return page_of(rows, page)


def tenant_name(conn: Connection, tenant_id: int) -> str:
    return conn.execute("SELECT name FROM tenants WHERE id = ?", (tenant_id,)).fetchone()["name"]


ADMIN_PLANS = """
SELECT p.*, st.name AS service_type_name, p.subscription_count AS subscriptions,
       (SELECT count(DISTINCT pp.price_minor) FROM plan_prices pp WHERE pp.plan_id = p.id) > 1
       OR EXISTS (SELECT 1 FROM plan_locations pl WHERE pl.plan_id = p.id AND pl.surcharge_minor > 0) AS varies
FROM plans p JOIN service_types st ON st.id = p.service_type_id WHERE p.tenant_id = ? ORDER BY p.sort_order
"""
# The lifecycle links (app/domain/plan_lifecycle.py's table and app/blueprints/admin/catalogue_lifecycle.py's
# order, restated): by state; "Clear target" only with a target, "Next version" once published.
PLAN_LIFECYCLE = {"draft": ["publish"], "published": ["deprecate", "set_target", "clear_target", "replace", "retire"],
                  "deprecated": ["set_target", "clear_target", "replace", "retire"], "retired": []}
PRODUCT_LIFECYCLE = {"draft": ["publish"], "published": ["supersede", "replace", "retire", "next_version"],
                     "deprecated": ["supersede", "replace", "retire", "next_version"], "retired": []}


def plan_actions(plan: Mapping[str, Any]) -> list[str]:
    return [action for action in PLAN_LIFECYCLE[plan["state"]]
            if action != "clear_target" or plan["migration_target_id"] is not None]


def admin_catalogue(conn: Connection, tenant_id: int) -> dict[str, Any]:
    """Every product with its plans in any state, the service types, and the counts."""
    plans = [{**dict(row), "actions": plan_actions(row)} for row in conn.execute(ADMIN_PLANS, (tenant_id,))]
    products = [{**dict(row), "plans": [p for p in plans if p["product_id"] == row["id"]],
                 "actions": PRODUCT_LIFECYCLE[row["state"]]} for row in conn.execute(
        "SELECT * FROM products WHERE tenant_id = ? ORDER BY name, version", (tenant_id,))]
    service_types = [{**dict(row), "provider_label": PROVIDERS[row["provider"]],
                      "configurable": ", ".join(loaded(row["config_schema"]).get("properties") or {})}
                     for row in conn.execute("SELECT * FROM service_types WHERE tenant_id = ? ORDER BY name",
                                             (tenant_id,))]
    customers = conn.execute("SELECT count(*) AS customers FROM users WHERE tenant_id = ? AND role = 'customer'",
                             (tenant_id,)).fetchone()["customers"]
    return {"products": products, "service_types": service_types, "customer_count": customers,
            "subscription_count": sum(plan["subscriptions"] for plan in plans)}


ATTENTION = """
SELECT i.id, coalesce(i.fqdn, i.hostname) AS name, i.provider, i.server_id, i.config, i.error_message, i.updated_at,
       s.id AS subscription_id,
       s.status AS subscription_status, u.name AS user_name, u.email AS user_email, p.name AS plan_name
FROM subscription_items i JOIN subscriptions s ON s.id = i.subscription_id JOIN users u ON u.id = s.user_id
JOIN plans p ON p.id = s.plan_id
WHERE i.tenant_id = ? AND i.status = 'failed' ORDER BY i.updated_at DESC LIMIT 200
"""


def failed_items(conn: Connection, tenant_id: int) -> list[dict[str, Any]]:
    return [{**dict(row), "config": loaded(row["config"] or "{}"), "updated_at": moment(row["updated_at"])}
            for row in conn.execute(ATTENTION, (tenant_id,))]


AUDIT = """
SELECT m.*, su.name AS support_name, su.email AS support_email, c.name AS customer_name, c.email AS customer_email,
       (SELECT count(*) FROM impersonation_actions a WHERE a.impersonation_id = m.id AND a.method != 'GET') AS changes,
       (SELECT count(*) FROM impersonation_actions a WHERE a.impersonation_id = m.id AND a.method = 'GET') AS views
FROM impersonations m JOIN users su ON su.id = m.support_user_id JOIN users c ON c.id = m.customer_id
WHERE m.tenant_id = ? ORDER BY m.started_at DESC, m.id DESC LIMIT ? OFFSET ?
"""


def audit_page(conn: Connection, tenant_id: int, page: int) -> dict[str, Any]:
    rows = [{**dict(row), **{name: moment(row[name]) for name in ("started_at", "ends_at", "ended_at")}}
            for row in conn.execute(AUDIT, (tenant_id, PER_PAGE + 1, (page - 1) * PER_PAGE))]
    return page_of(rows, page)


STAFF_SUBSCRIPTIONS = """
SELECT s.id, u.name AS customer_name, u.email AS customer_email, p.name AS plan_name, s.status, s.price_minor,
       s.currency, s.interval, s.quantity, s.current_period_end, s.effective_at, s.canceled_at, s.auto_renew,
       s.servers_delete_at, s.purged_at,
       (SELECT count(*) FROM subscription_items i WHERE i.subscription_id = s.id) AS servers,
       (SELECT count(*) FROM subscription_items i WHERE i.subscription_id = s.id AND i.status = 'active') AS ready,
       (SELECT coalesce(i.fqdn, i.hostname) FROM subscription_items i WHERE i.subscription_id = s.id
        ORDER BY i.id LIMIT 1) AS server_name
FROM subscriptions s JOIN users u ON u.id = s.user_id JOIN plans p ON p.id = s.plan_id
WHERE s.tenant_id = ? ORDER BY s.created_at DESC, s.id DESC LIMIT ? OFFSET ?
"""


def staff_subscriptions(conn: Connection, tenant_id: int, page: int) -> dict[str, Any]:
    rows = [{**dict(row), "status_label": STATUS_LABELS[row["status"]], "milestone": milestone(row)}
            for row in conn.execute(STAFF_SUBSCRIPTIONS, (tenant_id, PER_PAGE + 1, (page - 1) * PER_PAGE))]
    return page_of(rows, page)


def pages_of(path: str, **params: str) -> Callable[[int], str]:
    """The pager's link to page n of a list at `path` with `params` (as url_for writes it: page first)."""
    return lambda page: f"{path}?{urlencode({'page': page, **params})}"



BILLING_INVOICES = """
SELECT id, number, status, currency, total_minor, amount_due_minor, finalized_at, due_at
FROM invoices WHERE user_id = ? AND tenant_id = ? AND status IN ('open', 'paid', 'void', 'uncollectible')
ORDER BY created_at DESC, id DESC LIMIT 100
"""
BILLING_SUMMARY = """
SELECT 'spend' AS kind, currency AS code, '' AS text, finalized_at AS at, total_minor AS amount FROM invoices
WHERE user_id = ? AND tenant_id = ? AND status IN ('open', 'paid') AND finalized_at >= ?
UNION ALL SELECT 'balance', currency, '', NULL, sum(amount_minor) FROM balance_entries
WHERE user_id = ? AND tenant_id = ? GROUP BY currency
UNION ALL SELECT 'card', brand, last4, NULL, exp_year * 100 + exp_month FROM payment_methods
WHERE user_id = ? AND tenant_id = ? AND is_default AND removed_at IS NULL
"""
INVOICE_LABELS = {"draft": "Draft", "open": "Open", "paid": "Paid", "void": "Void", "uncollectible": "Uncollectible"}
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def bar_chart(title: str, points: list[tuple[str, int]], currency: str,
              axis: list[tuple[str, str]]) -> dict[str, Any]:
    """The spend chart's geometry (app/domain/charts.py bar_chart, restated)."""
    width, height, left, bottom, top_margin = 640, 220, 64, 28, 12
    top = max((v for _, v in points), default=0)
    ceiling, magnitude = 1, 1
    if top > 1:
        while magnitude * 10 < top:
            magnitude *= 10
        ceiling = next(step * magnitude for step in (1, 2, 5, 10) if step * magnitude >= top)
    plot = height - bottom - top_margin
    ticks = [{"text": money(v, currency), "y": height - bottom - plot * v / ceiling}
             for v in sorted({round(ceiling * step / 4) for step in range(5)})]
    left = max(left, 12 + 7 * max(len(tick["text"]) for tick in ticks))
    slot = (width - left) / max(len(points), 1)
    bars = [{"label": label, "text": money(value, currency), "x": left + i * slot + slot * 0.15,
             "y": height - bottom - plot * value / ceiling, "width": slot * 0.7, "height": plot * value / ceiling,
             "axis_label": axis[i][0], "axis_note": axis[i][1]}
            for i, (label, value) in enumerate(points)]
    return {"title": title, "bars": bars, "ticks": ticks, "width": width, "height": height, "left": left}


def billing_overview(conn: Connection, tenant_id: int, user_id: int, today: datetime) -> dict[str, Any]:
    invoices = []
    for row in conn.execute(BILLING_INVOICES, (user_id, tenant_id)):
        shown = dict(row)
        shown.update(issued_at=moment(row["finalized_at"]), due_at=moment(row["due_at"]),
                     status_label=INVOICE_LABELS[row["status"]],
                     payable=row["status"] == "open" and row["amount_due_minor"] > 0)
        invoices.append(shown)
    index = today.year * 12 + today.month - 1
    months = [((i // 12), i % 12 + 1) for i in range(index - 11, index + 1)]
    since = datetime(months[0][0], months[0][1], 1, tzinfo=UTC).strftime("%Y-%m-%d %H:%M:%S+00:00")
    spend: dict[str, dict[tuple[int, int], int]] = {}
    balances, card = [], None
    for row in conn.execute(BILLING_SUMMARY, (user_id, tenant_id, since, user_id, tenant_id, user_id, tenant_id)):
        if row["kind"] == "spend":
            at = moment(row["at"])
            per_month = spend.setdefault(row["code"], {})
            per_month[(at.year, at.month)] = per_month.get((at.year, at.month), 0) + row["amount"]
        elif row["kind"] == "balance" and row["amount"]:
            balances.append((row["code"], row["amount"]))
        elif row["kind"] == "card":
            card = {"brand": row["code"], "last4": row["text"], "exp_month": row["amount"] % 100,
                    "exp_year": row["amount"] // 100}
    axis = [(MONTHS[m - 1], str(y) if i == 0 or m == 1 else "") for i, (y, m) in enumerate(months)]
    charts = [(currency, bar_chart(f"Billed per month in {currency}, last 12 months",
                                   [(f"{MONTHS[m - 1]} {y}", totals.get((y, m), 0)) for y, m in months], currency,
                                   axis))
              for currency, totals in sorted(spend.items())]
    return {"invoices": invoices, "balances": sorted(balances), "card": card, "charts": charts}


INVOICE = """
SELECT * FROM invoices WHERE id = ? AND tenant_id = ? AND user_id = ? AND status IN ('open', 'paid', 'void',
'uncollectible')
"""
INVOICE_LINES = "SELECT * FROM charges WHERE invoice_id = ? ORDER BY id"
CREDIT_NOTES = "SELECT * FROM credit_notes WHERE invoice_id = ? AND tenant_id = ? ORDER BY sequence"


def split_tax(tax: int, nets: list[int]) -> list[int]:
    """The invoice's tax over its lines by the largest remainder (app/domain/invoicing.py line_taxes, restated
    for lines that add up to a positive net, as the data set's do)."""
    whole = sum(nets)
    if whole <= 0:
        return [0 for _ in nets]
    shares = [tax * net // whole for net in nets]
    order = sorted(range(len(nets)), key=lambda i: (-(tax * nets[i] % whole), i))
    for index in order[:tax - sum(shares)]:
        shares[index] += 1
    return shares


def party_lines(snapshot: Any) -> list[str]:
    """An address block (app/web/formatting.py party_lines, restated for the data set's snapshots)."""
    snapshot = loaded(snapshot) or {}
    vat_id = snapshot.get("vat_id")
    lines = [snapshot.get("name") or "", *snapshot.get("address", []),
             {"DE": "Germany"}.get(snapshot.get("country", ""), snapshot.get("country", "")),
             f"VAT ID {vat_id}" if vat_id else ""]
    return [line for line in lines if line]


def invoice_document(conn: Connection, tenant_id: int, user_id: int, invoice_id: int) -> dict[str, Any] | None:
    row = conn.execute(INVOICE, (invoice_id, tenant_id, user_id)).fetchone()
    if row is None:
        return None
    invoice = dict(row)
    for name in ("finalized_at", "due_at", "paid_at", "voided_at"):
        invoice[name] = moment(row[name])
    lines = conn.execute(INVOICE_LINES, (invoice_id,)).fetchall()
    taxes = split_tax(row["tax_minor"], [line["amount_minor"] for line in lines])
    invoice.update(status_label=INVOICE_LABELS[row["status"]], seller=party_lines(row["seller"]),
                   bill_to=party_lines(row["bill_to"]), lines=[
                       {**dict(line), "tax_minor": tax, "period_start": moment(line["period_start"]),
                        "period_end": moment(line["period_end"])}
                       for line, tax in zip(lines, taxes, strict=True)])
    optional = [("Customer balance applied", -row["balance_applied_minor"]), ("Credited", -row["credited_minor"]),
                ("Paid", -row["amount_paid_minor"])]
    totals = [("Net", row["subtotal_minor"]), (f"Tax ({row['tax_rate_bp'] / 100:g} %)", row["tax_minor"]),
              ("Total", row["total_minor"]), *[(label, v) for label, v in optional if v],
              ("Amount due", row["amount_due_minor"])]
    notes = [{**dict(note), "created_at": moment(note["created_at"])}
             for note in conn.execute(CREDIT_NOTES, (invoice_id, tenant_id))]
    return {"invoice": invoice, "totals": totals, "credit_notes": notes}


def opaque_id(kind: str, number: int) -> str:
    """The API's opaque id of a row: the keyed 4-round Feistel permutation of its 32 bits, in base32."""
    left, right = number >> 16, number & 0xFFFF
    for index in range(4):
        key = hmac.new(SECRET_KEY.encode(), f"api-id:{kind}:{index}".encode(), hashlib.sha256).digest()
        left, right = right, left ^ int.from_bytes(hmac.new(key, right.to_bytes(2, "big"),
                                                            hashlib.sha256).digest()[:2], "big")
    block = (left << 16) | right
    return ID_PREFIXES[kind] + "_" + "".join(ID_ALPHABET[(block >> (5 * i)) & 31] for i in reversed(range(7)))


def iso(value: str | datetime | None) -> str | None:
    at = moment(value)
    return at.isoformat() if at else None


def api_subscription(row: Mapping[str, Any]) -> dict[str, Any]:
    """A subscription as the JSON API shows it."""
    return {"id": opaque_id("sub", row["id"]), "status": row["status"], "planId": opaque_id("plan", row["plan_id"]),
            "planName": row["plan_name"], "quantity": row["quantity"],
            "price": {"amount": row["price_minor"], "currency": row["currency"]}, "interval": row["interval"],
            "autoRenew": bool(row["auto_renew"]), "autoBackorder": bool(row["auto_backorder"]),
            "requestedConfig": loaded(row["requested_config"]), "createdAt": iso(row["created_at"]),
            "activatedAt": iso(row["activated_at"]), "currentPeriodStart": iso(row["current_period_start"]),
            "currentPeriodEnd": iso(row["current_period_end"]), "effectiveAt": iso(row["effective_at"]),
            "canceledAt": iso(row["canceled_at"]), "version": row["version"]}


def create_baseline(database: str) -> Flask:
    """The bare app on a SQLite file's path (one connection per request, as the portal has) or on a
    postgresql:// URL (one connection kept per thread, as the portal's pool lends one)."""
    app = Flask(__name__, template_folder=TEMPLATES)
    for name, function in (("money", money), ("per_interval", per_interval), ("date", date),
                           ("datetime_utc", datetime_utc), ("location", location), ("humanize", humanize),
                           ("status_label", status_label), ("provider_label", PROVIDERS.__getitem__),
                           ("end_reason_label", END_REASONS.__getitem__)):
        app.add_template_filter(function, name)
    queue_path = bare_queue(database)
    os.makedirs(os.path.dirname(queue_path), exist_ok=True)
    with connect(queue_path, by_position=True) as queue:
        queue.execute("PRAGMA journal_mode=WAL")  # as Huey keeps its SQLite queue
        queue.execute(QUEUE_TABLE)
    queue.close()

    kept = threading.local()

    def connection() -> Connection:
        if is_postgresql(database):
            if not hasattr(kept, "db"):
                kept.db = connect(database)
            return kept.db  # type: ignore[no-any-return]
        if "db" not in g:
            g.db = connect(database, autocommit=True)  # transactions as the portal has them
        return g.db  # type: ignore[no-any-return]

    @app.teardown_appcontext
    def close(_: BaseException | None) -> None:
        conn = g.pop("db", None)
        if conn is not None:
            conn.close()

    customer_pages(app, connection, queue_path)
    api_endpoints(app, connection)
    billing_pages(app, connection)
    staff_pages(app, connection)
    return app


def api_endpoints(app: Flask, connection: Callable[[], Connection]) -> None:
    """The JSON API's subscriptions, the same JSON; the customer is named in the URL (no token)."""

    @app.get("/<int:tenant_id>/<int:user_id>/api/subscriptions")
    def api_subscriptions(tenant_id: int, user_id: int) -> Response:
        limit = int(request.args.get("limit", "20"))
        rows = connection().execute(API_SUBSCRIPTION + " ORDER BY s.id DESC LIMIT ?",
                                    (tenant_id, user_id, limit + 1)).fetchall()
        page = rows[:limit]
        more = "more" if len(rows) > limit else None  # the portal's cursor is signed; only its presence is compared
        return jsonify({"data": [api_subscription(row) for row in page], "nextCursor": more})

    @app.get("/<int:tenant_id>/<int:user_id>/api/subscriptions/<int:subscription_id>")
    def api_subscription_one(tenant_id: int, user_id: int, subscription_id: int) -> Response | tuple[str, int]:
        row = connection().execute(API_SUBSCRIPTION + " AND s.id = ?", (tenant_id, user_id, subscription_id)
                                   ).fetchone()
        if row is None:
            return "", 404
        response = jsonify(api_subscription(row))
        response.headers["ETag"] = f'"v{row["version"]}"'
        return response


def billing_pages(app: Flask, connection: Callable[[], Connection]) -> None:
    """The customer's Billing overview and printable invoice; the customer is named in the URL."""

    @app.get("/<int:tenant_id>/<int:user_id>/billing")
    def billing(tenant_id: int, user_id: int) -> str:
        return render_template("billing.html", **billing_overview(connection(), tenant_id, user_id,
                                                                  datetime.now(UTC)))

    @app.get("/<int:tenant_id>/<int:user_id>/billing/invoices/<int:invoice_id>")
    def invoice(tenant_id: int, user_id: int, invoice_id: int) -> str | tuple[str, int]:
        found = invoice_document(connection(), tenant_id, user_id, invoice_id)
        if found is None:
            return "", 404
        return render_template("invoice.html", **found)


def customer_pages(app: Flask, connection: Callable[[], Connection], queue_path: str) -> None:
    """The customer's pages and fragments; the customer is named in the URL."""

    @app.get("/<int:tenant_id>/<int:user_id>/subscriptions/")
    def index(tenant_id: int, user_id: int) -> str:
        return render_template("index.html", subscriptions=dashboard_rows(connection(), tenant_id, user_id))

    @app.get("/<int:tenant_id>/catalogue/")
    def catalogue(tenant_id: int) -> str:
        return render_template("catalogue.html", offers=catalogue_offers(connection(), tenant_id))

    @app.get("/<int:tenant_id>/order/<int:plan_id>/preview")
    def preview(tenant_id: int, plan_id: int) -> str | tuple[str, int]:
        found = preview_quote(connection(), tenant_id, plan_id, int(request.args.get("quantity", "1")))
        if found is None:
            return "", 404
        return render_template("_preview.html", **found)

    @app.get("/<int:tenant_id>/<int:user_id>/subscriptions/<int:subscription_id>/summary")
    def summary(tenant_id: int, user_id: int, subscription_id: int) -> str | tuple[str, int]:
        row = summary_row(connection(), tenant_id, user_id, subscription_id)
        if row is None:
            return "", 404
        return render_template("_summary.html", s=row)

    @app.get("/<int:tenant_id>/<int:user_id>/subscriptions/<int:subscription_id>")
    def detail(tenant_id: int, user_id: int, subscription_id: int) -> str | tuple[str, int]:
        conn = connection()
        row = summary_row(conn, tenant_id, user_id, subscription_id)
        if row is None:
            return "", 404
        items = items_of(conn, tenant_id, subscription_id)
        return render_template("detail.html", s=row, items=items,
                               **history_context(conn, tenant_id, row["status"], subscription_id, items))

    @app.get("/<int:tenant_id>/<int:user_id>/subscriptions/<int:subscription_id>/history")
    def history(tenant_id: int, user_id: int, subscription_id: int) -> str | tuple[str, int]:
        conn = connection()
        row = conn.execute("SELECT id, status FROM subscriptions WHERE id = ? AND tenant_id = ? AND user_id = ?",
                           (subscription_id, tenant_id, user_id)).fetchone()
        if row is None:
            return "", 404
        items = items_of(conn, tenant_id, subscription_id)
        return render_template("_history_panel.html", s=dict(row),
                               **history_context(conn, tenant_id, row["status"], subscription_id, items))

    @app.get("/<int:tenant_id>/<int:user_id>/subscriptions/<int:subscription_id>/items/<int:item_id>")
    def item(tenant_id: int, user_id: int, subscription_id: int, item_id: int) -> str | tuple[str, int]:
        row = connection().execute(ITEM, (item_id, subscription_id, tenant_id, user_id)).fetchone()
        if row is None:
            return "", 404
        shown = shown_item(row)
        return render_template("_item.html", item=shown,
                               s={"id": subscription_id, "servers_delete_at": shown["servers_delete_at"],
                                  "status": shown["subscription_status"]})

    @app.get("/<int:tenant_id>/<int:user_id>/order/<int:plan_id>")
    def order_form(tenant_id: int, user_id: int, plan_id: int) -> str | tuple[str, int]:
        conn = connection()
        plan = orderable(conn, tenant_id, plan_id)
        if plan is None:
            return "", 404
        return render_template("order.html", plan=plan, fields=choices(plan), quote=quote_of(plan, 1),
                               idempotency_key=uuid.uuid4().hex, hostname=f"server-{uuid.uuid4().hex[:8]}",
                               domain=f"{plan['tenant_slug']}.{DNS_BASE_DOMAIN}",
                               keys=ssh_keys(conn, tenant_id, user_id))

    @app.post("/<int:tenant_id>/<int:user_id>/order/<int:plan_id>")
    def order(tenant_id: int, user_id: int, plan_id: int) -> Response | tuple[str, int]:
        conn = connection()
        plan = orderable(conn, tenant_id, plan_id)
        if plan is None:
            return "", 404
        form = {**request.form.to_dict(), "ssh_keys": request.form.getlist("ssh_keys")}
        subscription_id, item_id = order_rows(conn, plan, tenant_id, user_id, form)
        enqueue(queue_path, "provision_item", item_id)
        return redirect(f"/subscriptions/{subscription_id}", 303)


def staff_pages(app: Flask, connection: Callable[[], Connection]) -> None:
    """Support's search and the tenant admin's lists; the tenant is named in the URL."""

    @app.get("/<int:tenant_id>/support/")
    def support(tenant_id: int) -> str:
        conn, query = connection(), request.args.get("q", "")[:200]
        page = request.args.get("page", 1, type=int) or 1
        return render_template("support.html", tenant_name=tenant_name(conn, tenant_id), query=query,
                               results=customers_matching(conn, tenant_id, query.strip(), page),
                               href=pages_of("/support/", **({"q": query} if query else {})))

    @app.get("/<int:tenant_id>/admin/")
    def admin(tenant_id: int) -> str:
        conn = connection()
        return render_template("admin_catalogue.html", tenant_name=tenant_name(conn, tenant_id),
                               **admin_catalogue(conn, tenant_id))

    @app.get("/<int:tenant_id>/admin/servers")
    def servers(tenant_id: int) -> str:
        return render_template("servers.html", items=failed_items(connection(), tenant_id))

    @app.get("/<int:tenant_id>/admin/audit")
    def audit(tenant_id: int) -> str:
        conn, page = connection(), request.args.get("page", 1, type=int) or 1
        return render_template("audit.html", tenant_name=tenant_name(conn, tenant_id),
                               results=audit_page(conn, tenant_id, page), href=pages_of("/admin/audit"))

    @app.get("/<int:tenant_id>/admin/subscriptions")
    def subscriptions(tenant_id: int) -> str:
        conn, page = connection(), request.args.get("page", 1, type=int) or 1
        return render_template("admin_subscriptions.html", tenant_name=tenant_name(conn, tenant_id),
                               statuses=STATUS_LABELS, results=staff_subscriptions(conn, tenant_id, page),
                               href=pages_of("/admin/subscriptions"))
