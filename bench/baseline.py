"""The bare baseline: the same rows as the portal's pages, with nothing of the portal.

Plain Flask, Jinja and the standard library's `sqlite3` (or `psycopg` given a postgresql:// URL): one SQL
statement per page, rows as dicts, the same template markup (bench/templates/, copied from the portal's
templates). The pages have a minimal HTML shell instead of the portal's base layout (no navigation, banners,
flashes, CSRF token or htmx), and there is no login: the customer is named in the URL. The money, date and
milestone rules are restated here in a few lines, as a bare app would write them; what the portal adds beyond
this is what is measured.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple, Protocol

import psycopg
from flask import Flask, g, render_template, request
from psycopg.rows import dict_row, tuple_row

TEMPLATES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates")

STATUS_LABELS = {"pending_fulfillment": "Setting up", "pending_backorder": "On backorder", "active": "Active",
                 "pending_cancel": "Pending cancellation", "suspended": "Suspended", "canceled": "Canceled"}

DASHBOARD = """
SELECT s.id, s.status, s.price_minor, s.currency, s.interval, s.auto_renew, s.current_period_end,
       s.effective_at, s.canceled_at, s.servers_delete_at, s.purged_at,
       p.name AS plan_name, pr.name AS product_name,
       (SELECT count(*) FROM subscription_items i WHERE i.subscription_id = s.id) AS servers,
       (SELECT count(*) FROM subscription_items i WHERE i.subscription_id = s.id AND i.status = 'active') AS ready
FROM subscriptions s JOIN plans p ON p.id = s.plan_id JOIN products pr ON pr.id = p.product_id
WHERE s.tenant_id = ? AND s.user_id = ?
ORDER BY s.created_at DESC, s.id DESC
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

    def execute(self, sql: str, parameters: tuple[Any, ...] = ..., /) -> Any: ...


class PostgreSQL:
    """psycopg with dict rows; the same statements as on SQLite, their `?` placeholders turned into `%s`."""

    def __init__(self, url: str, *, by_position: bool = False) -> None:
        self.conn = psycopg.connect(url.replace("+psycopg", ""), autocommit=True,
                                    row_factory=tuple_row if by_position else dict_row)  # type: ignore[arg-type]

    def execute(self, sql: str, parameters: tuple[Any, ...] = ()) -> Iterable[Mapping[str, Any]]:
        return self.conn.execute(sql.replace("?", "%s"), parameters)  # type: ignore[arg-type]

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> PostgreSQL:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def is_postgresql(database: str) -> bool:
    return database.startswith(("postgresql:", "postgresql+psycopg:", "postgres:"))


def connect(database: str, *, by_position: bool = False) -> Any:
    """A connection to the SQLite file at the path `database`, or to the PostgreSQL database at that URL;
    rows read by name, or `by_position` (sqlite3.Row reads both ways, psycopg's rows one)."""
    if is_postgresql(database):
        return PostgreSQL(database, by_position=by_position)
    conn = sqlite3.connect(database)
    conn.row_factory = sqlite3.Row
    return conn


class Milestone(NamedTuple):
    label: str
    at: datetime | None


def moment(value: str | datetime | None) -> datetime | None:
    """A stored time in UTC: SQLite keeps naive ISO text, PostgreSQL gives aware datetimes."""
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return datetime.fromisoformat(value).replace(tzinfo=UTC) if value else None


def milestone(row: sqlite3.Row) -> Milestone:
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
        rows.append(shown)
    return rows


def catalogue_offers(conn: Connection, tenant_id: int) -> list[dict[str, Any]]:
    """Published plans of published products, grouped by product (the customer's view of the catalogue)."""
    offers: list[dict[str, Any]] = []
    for row in conn.execute(CATALOGUE, (tenant_id,)):
        plan = dict(row)
        features = row["features"] or "[]"  # JSON text on SQLite, already a list from PostgreSQL
        plan["features"] = json.loads(features) if isinstance(features, str) else features
        if not offers or offers[-1]["product"]["id"] != row["product_id"]:
            offers.append({"product": {"id": row["product_id"], "name": row["product_name"],
                                       "description": row["product_description"]}, "plans": []})
        offers[-1]["plans"].append(plan)
    return offers


def preview_quote(conn: Connection, tenant_id: int, plan_id: int, quantity: int) -> dict[str, Any] | None:
    """The plan and its quote: the price times the quantity, due in full when the server is ready."""
    row = conn.execute("SELECT id, name, price_minor, currency, interval FROM plans "
                       "WHERE id = ? AND tenant_id = ? AND state = 'published'", (plan_id, tenant_id)).fetchone()
    if row is None:
        return None
    total = row["price_minor"] * quantity
    line = {"description": f"Plan, {per_interval(row['interval'])}", "quantity": quantity,
            "amount": total}
    return {"plan": dict(row), "quote": {"lines": [line], "recurring": total, "due_now": total,
                                         "currency": row["currency"], "interval": row["interval"]}}


SUMMARY = """
SELECT s.*, p.name AS plan_name, pr.name AS product_name, t.retention_days
FROM subscriptions s JOIN plans p ON p.id = s.plan_id JOIN products pr ON pr.id = p.product_id
JOIN tenants t ON t.id = s.tenant_id
WHERE s.id = ? AND s.tenant_id = ? AND s.user_id = ?
"""


class Entry(NamedTuple):
    label: str
    at: datetime
    done: bool


def timeline(row: sqlite3.Row, now: datetime) -> list[Entry]:
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
    shown.update(status_label=STATUS_LABELS[row["status"]], milestone=milestone(row),
                 timeline=timeline(row, datetime.now(UTC)))
    return shown


def datetime_utc(value: datetime | None) -> str:
    return value.strftime("%-d %b %Y, %H:%M UTC") if value else "—"


def create_baseline(database: str) -> Flask:
    """The bare app on a SQLite file's path (one connection per request, as the portal has) or on a
    postgresql:// URL (one connection kept per thread, as the portal's pool lends one)."""
    app = Flask(__name__, template_folder=TEMPLATES)
    app.add_template_filter(money)
    app.add_template_filter(per_interval)
    app.add_template_filter(date)
    app.add_template_filter(datetime_utc)

    kept = threading.local()

    def connection() -> Connection:
        if is_postgresql(database):
            if not hasattr(kept, "db"):
                kept.db = connect(database)
            return kept.db
        if "db" not in g:
            g.db = connect(database)
        return g.db

    @app.teardown_appcontext
    def close(_: BaseException | None) -> None:
        conn = g.pop("db", None)
        if conn is not None:
            conn.close()

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

    @app.get("/subscriptions/<int:subscription_id>")
    def detail(subscription_id: int) -> str:  # only a link target of the dashboard so far
        return str(subscription_id)

    return app
