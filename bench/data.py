"""Build a benchmark data set (sizes S, M and L) reproducibly from a seed, on SQLite or PostgreSQL.

    python -m bench.data --size S --seed 1 --database sqlite:///instance/bench-S.sqlite3
    python -m bench.data --size L --seed 1 --database postgresql://127.0.0.1:5432/bench

The database is created fresh (a SQLite file is deleted; on PostgreSQL the `public` schema is dropped and
created again) and migrated with the portal's own migrations, then filled with set-based inserts (SQLAlchemy
Core, lists of rows in batches; `COPY` on PostgreSQL, which builds L in under 3 minutes); on PostgreSQL the
sequences are moved past the numbered rows. The planner's statistics are gathered (`ANALYZE`; `VACUUM ANALYZE`
on PostgreSQL, as autovacuum would after a bulk load). Sizes: S is one tenant; M and L have 10 tenants, one
holding half the rows (L: 100k customers, 1M subscriptions, meant for PostgreSQL). Each tenant has one known
customer owning exactly 5 subscriptions and another owning exactly 50 (the dashboard and API measurements; each
has a read API token, `api_token(user_id)`, made from its id as the password is known), a customer
with a complete profile, one SSH key (preselected for orders) and no subscriptions (who places the measured
orders), a support user and a tenant
admin, 50 failed servers (the admin's attention list) and 50 ended support impersonations with their actions
(the audit); every size has all of them, on SQLite and PostgreSQL alike. Every subscription has one finalized
invoice with one line (paid, or open for suspended ones and every tenth), spread over 2026. The same
seed gives the same rows, but for the password hash (its salt is random).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from itertools import chain
from typing import Any

import flask_migrate
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import Table, func, insert, select, update
from sqlalchemy.engine import Connection, make_url

from app import create_app
from app.config import engine_options, normalize_database_url
from app.domain.accounts import Role
from app.domain.api_tokens import ALPHABET, LOOKUP_LENGTH, PREFIX, SECRET_LENGTH, Scope, checksum, token_hash
from app.domain.billing import ChargeKind, InvoiceStatus
from app.domain.catalogue import CatalogueState, ChangeRule, Interval, Provider
from app.domain.ssh_keys import parse_public_key
from app.domain.subscriptions import ItemStatus, SubscriptionStatus
from app.extensions import db
from app.models import (
    ApiToken,
    Charge,
    CustomerProfile,
    Impersonation,
    ImpersonationAction,
    Invoice,
    PaymentMethod,
    Plan,
    Product,
    ServiceType,
    SshKey,
    Subscription,
    SubscriptionEvent,
    SubscriptionItem,
    Tenant,
    TenantHost,
    User,
)
from app.models.impersonation import EndReason
from app.services.demo import HETZNER_SCHEMA  # the demo cloud server type: the order form has its choices
from app.services.passwords import hash_password
from bench.baseline import DNS_BASE_DOMAIN, SECRET_KEY

PASSWORD = "bench-customer-pass"  # noqa: S105 - a known password of generated test data
FEW_EMAIL = "bench-customer@example.com"  # owns exactly 5 subscriptions
MANY_EMAIL = "bench-customer-50@example.com"  # owns exactly 50 subscriptions
ORDER_EMAIL = "bench-orderer@example.com"  # owns none: the runner's orders, removed after each run
SUPPORT_EMAIL = "bench-support@example.com"
ADMIN_EMAIL = "bench-admin@example.com"
FEW, MANY = 5, 50
API_TOKEN_DAYS = 365  # the longest a token lives; a data set built today serves the API for a year
ATTENTION = 50  # failed servers per tenant: the admin's attention list, the same length at every size
AUDITS = 50  # ended impersonations per tenant, each with ACTIONS actions (the first a change, the rest views)
ACTIONS = 4
BATCH = 5000
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
SELLER = {"name": "Bench Cloud GmbH", "address": ["Hauptstraße 1", "10115 Berlin"], "country": "DE",
          "vat_id": "DE123456789"}
MIGRATIONS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "migrations")


@dataclass(frozen=True)
class Size:
    tenants: int
    customers: int
    subscriptions: int


SIZES = {"S": Size(tenants=1, customers=1_000, subscriptions=10_000),
         "M": Size(tenants=10, customers=10_000, subscriptions=100_000),
         "L": Size(tenants=10, customers=100_000, subscriptions=1_000_000)}

# (slug, name, price in cents, interval): the plans every tenant sells.
PLANS = [("trial", "Trial", 0, Interval.MONTH), ("standard", "Standard", 990, Interval.MONTH),
         ("performance", "Performance", 2490, Interval.MONTH), ("standard-yearly", "Standard yearly", 9900,
                                                                 Interval.YEAR)]
# Status of a subscription and of its one item, with a weight.
STATES = [(SubscriptionStatus.ACTIVE, ItemStatus.ACTIVE, 80), (SubscriptionStatus.PENDING_CANCEL, ItemStatus.ACTIVE, 5),
          (SubscriptionStatus.SUSPENDED, ItemStatus.ACTIVE, 3), (SubscriptionStatus.CANCELED,
                                                                  ItemStatus.DECOMMISSIONED, 10),
          (SubscriptionStatus.PENDING_FULFILLMENT, ItemStatus.PROVISIONING, 2)]

# What a failed item looks like: no server, and the message its customer and the admin see.
FAILURE = {"server_id": None, "hostname": None, "fqdn": None, "ipv4": None, "ready_at": None,
           "error_message": "The cloud could not create the server (server type cx22 sold out in fsn1)."}


def shares(total: int, tenants: int) -> list[int]:
    """One tenant holds half the rows (all of them when alone); the others share the rest evenly."""
    if tenants == 1:
        return [total]
    first = total // 2
    rest = total - first
    return [first] + [rest // (tenants - 1) + (1 if i < rest % (tenants - 1) else 0) for i in range(tenants - 1)]


def batches(rows: Iterable[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


class Builder:
    """Writes the rows of one data set through one connection, numbering primary keys itself."""

    def __init__(self, conn: Connection, seed: int, password_hash: str) -> None:
        self.conn = conn
        self.rng = random.Random(seed)  # noqa: S311 - reproducible data, not secrets
        self.password_hash = password_hash
        self.counts: dict[str, int] = {}

    def put(self, table: Table, rows: Iterable[dict[str, Any]]) -> None:
        if self.conn.dialect.name == "postgresql":
            self.copy(table, rows)
            return
        for batch in batches(rows):
            self.conn.execute(insert(table), batch)
            self.counts[table.name] = self.counts.get(table.name, 0) + len(batch)

    def copy(self, table: Table, rows: Iterable[dict[str, Any]]) -> None:
        """PostgreSQL's COPY, in this transaction; the Python-side column defaults an INSERT would apply are
        applied here."""
        rows = iter(rows)
        first = next(rows, None)
        if first is None:
            return
        defaults = {column.name: column.default.arg(None) if column.default.is_callable else column.default.arg
                    for column in table.columns if column.name not in first and column.default is not None
                    and (column.default.is_scalar or column.default.is_callable)}
        names = [*first, *defaults]
        quoted = ", ".join(f'"{name}"' for name in names)
        cursor = self.conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        count = 0
        with cursor.copy(f"COPY {table.name} ({quoted}) FROM STDIN") as copy:
            for row in chain([first], rows):
                copy.write_row([copy_value(value) for value in chain((row[name] for name in first),
                                                                     defaults.values())])
                count += 1
        self.counts[table.name] = self.counts.get(table.name, 0) + count

    def tenant(self, index: int, customers: int, subscriptions: int) -> None:
        tenant_id = index + 1
        stamp = {"created_at": EPOCH, "updated_at": EPOCH}
        self.put(Tenant.__table__, [{"id": tenant_id, "slug": f"bench-{index}", "name": f"Bench Cloud {index}",
                                     "retention_days": 7, **stamp}])
        host = "localhost" if index == 0 else f"bench-{index}.localhost"
        self.put(TenantHost.__table__, [{"tenant_id": tenant_id, "hostname": host}])
        plan_ids = self.catalogue(tenant_id, stamp)
        user_ids = self.customers(tenant_id, customers, stamp)
        support_id, _ = self.staff(tenant_id, stamp)
        self.subscriptions(tenant_id, user_ids, plan_ids, subscriptions)
        self.impersonations(tenant_id, support_id, user_ids)

    def catalogue(self, tenant_id: int, stamp: dict[str, datetime]) -> list[tuple[int, int, Interval]]:
        self.put(ServiceType.__table__, [{"id": tenant_id, "tenant_id": tenant_id, "slug": "cloud-server",
                                          "name": "Cloud server", "provider": Provider.HETZNER.value,
                                          "service_kind": "server", "config_schema": HETZNER_SCHEMA,
                                          "cloud_init_template": "", **stamp}])
        self.put(Product.__table__, [{"id": tenant_id, "tenant_id": tenant_id, "slug": "cloud-servers",
                                      "name": "Cloud Servers", "description": "Servers on Hetzner Cloud.",
                                      "version": 1, "state": CatalogueState.PUBLISHED.value, **stamp}])
        first = (tenant_id - 1) * len(PLANS) + 1
        rows = [{"id": first + i, "tenant_id": tenant_id, "product_id": tenant_id, "service_type_id": tenant_id,
                 "slug": slug, "name": name, "description": "", "features": ["1 server"], "price_minor": price,
                 "currency": "EUR", "interval": interval.value, "quantity_allowed": False,
                 "config_defaults": {"serverType": "cx22", "location": "fsn1", "image": "ubuntu-24.04"},
                 "allow_customer_location_selection": True, "cancellation_rule": ChangeRule.PERIOD_END.value,
                 "downgrade_rule": ChangeRule.PERIOD_END.value, "state": CatalogueState.PUBLISHED.value,
                 "sort_order": i, **stamp} for i, (slug, name, price, interval) in enumerate(PLANS)]
        self.put(Plan.__table__, rows)
        return [(row["id"], row["price_minor"], Interval(row["interval"])) for row in rows]

    def customers(self, tenant_id: int, count: int, stamp: dict[str, datetime]) -> list[int]:
        first = self.counts.get("users", 0) + 1
        ids = list(range(first, first + count))
        emails = [FEW_EMAIL, MANY_EMAIL, ORDER_EMAIL] + [f"customer-{i}@example.com" for i in range(3, count)]
        self.put(User.__table__, ({"id": uid, "tenant_id": tenant_id, "email": email,
                                   "name": f"Customer {uid}", "password_hash": self.password_hash,
                                   "email_verified_at": stamp["created_at"],
                                   "role": Role.CUSTOMER.value, "is_active": True, **stamp}
                                  for uid, email in zip(ids, emails, strict=True)))
        self.put(CustomerProfile.__table__, ({"user_id": uid, "full_name": f"Customer {uid}",
                                              "billing_email": f"billing-{uid}@example.com", "company": "",
                                              "address": f"{uid} Main Street", "postal_code": "10115",
                                              "city": "Berlin", "country": "DE", **stamp} for uid in ids))
        self.put(SshKey.__table__, [self.ssh_key(tenant_id, ids[2])])  # the orderer's
        # The API's measured customers (5 and 50 subscriptions) each have a read token, known as the password is.
        issued = datetime.now(UTC)  # a token must not have expired when the data set is used
        self.put(ApiToken.__table__, [{"tenant_id": tenant_id, "user_id": uid, "name": "bench",
                                       "lookup": api_token(uid)[len(PREFIX):len(PREFIX) + LOOKUP_LENGTH],
                                       "secret_hash": token_hash(api_token(uid)), "scopes": Scope.READ.value,
                                       "created_at": issued, "expires_at": issued + timedelta(days=API_TOKEN_DAYS)}
                                      for uid in ids[:2]])
        # The orderer's saved card: paid plans are ordered with one (the portal only checks that there is one).
        self.put(PaymentMethod.__table__, [{"tenant_id": tenant_id, "user_id": ids[2], "provider": "sandbox",
                                            "external_id": f"pm_bench{ids[2]}", "brand": "visa", "last4": "4242",
                                            "exp_month": 12, "exp_year": 2034, "is_default": True,
                                            "created_at": EPOCH}])
        return ids

    def ssh_key(self, tenant_id: int, user_id: int) -> dict[str, Any]:
        """An Ed25519 key made from the seed, preselected for orders."""
        private = ed25519.Ed25519PrivateKey.from_private_bytes(self.rng.randbytes(32))
        text = private.public_key().public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode() + " bench@laptop"
        key = parse_public_key(text)
        return {"tenant_id": tenant_id, "user_id": user_id, "name": key.suggested_name, "key_type": key.key_type,
                "bits": key.bits, "public_key": key.public_key, "fingerprint": key.fingerprint, "is_default": True,
                "created_at": EPOCH}

    def staff(self, tenant_id: int, stamp: dict[str, datetime]) -> tuple[int, int]:
        """The tenant's support user and tenant admin: (support id, admin id)."""
        first = self.counts["users"] + 1
        self.put(User.__table__, [{"id": first + i, "tenant_id": tenant_id, "email": email, "name": name,
                                   "password_hash": self.password_hash, "role": role.value, "is_active": True,
                                   "email_verified_at": stamp["created_at"],
                                   **stamp} for i, (email, name, role) in enumerate(
                                       ((SUPPORT_EMAIL, "Bench Support", Role.SUPPORT),
                                        (ADMIN_EMAIL, "Bench Admin", Role.TENANT_ADMIN)))])
        return first, first + 1

    def impersonations(self, tenant_id: int, support_id: int, user_ids: list[int]) -> None:
        """Ended impersonations of random customers, each with one change and some page views."""
        first = self.counts.get("impersonations", 0) + 1
        rows, actions = [], []
        for offset in range(AUDITS):
            started = EPOCH + timedelta(days=offset, hours=self.rng.randrange(24))
            rows.append({"id": first + offset, "tenant_id": tenant_id, "support_user_id": support_id,
                         "customer_id": self.rng.choice(user_ids), "reason": f"Ticket #{4700 + offset}: order fails",
                         "started_at": started, "ends_at": started + timedelta(minutes=30),
                         "ended_at": started + timedelta(minutes=10), "end_reason": EndReason.STOPPED.value,
                         "remote_addr": "127.0.0.1"})
            actions += [{"impersonation_id": first + offset, "at": started + timedelta(minutes=n + 1),
                         "method": "POST" if n == 0 else "GET", "path": "/subscriptions/", "endpoint":
                         "subscriptions.index", "status_code": 200} for n in range(ACTIONS)]
        self.put(Impersonation.__table__, rows)
        self.put(ImpersonationAction.__table__, actions)

    def owners(self, user_ids: list[int], count: int) -> list[int]:
        """The known customers own exactly 5 and 50, the orderer none; the others share the rest at random."""
        rest = user_ids[3:]
        return [user_ids[0]] * FEW + [user_ids[1]] * MANY + [self.rng.choice(rest)
                                                               for _ in range(count - FEW - MANY)]

    def subscriptions(self, tenant_id: int, user_ids: list[int], plans: list[tuple[int, int, Interval]],
                      count: int) -> None:
        first = self.counts.get("subscriptions", 0) + 1
        subs, items, events = [], [], []
        weights = [w for _, _, w in STATES]
        failed = set(self.rng.sample(range(FEW + MANY, count), ATTENTION))  # never the known customers'
        for offset, user_id in enumerate(self.owners(user_ids, count)):
            sid = first + offset
            plan_id, price, interval = self.rng.choice(plans)
            status, item_status, _ = self.rng.choices(STATES, weights)[0]
            if offset in failed:  # provisioning gave up
                status, item_status = SubscriptionStatus.PENDING_FULFILLMENT, ItemStatus.FAILED
            created = EPOCH + timedelta(minutes=offset * 7 + self.rng.randrange(7))
            subs.append(self.subscription(sid, tenant_id, user_id, plan_id, price, interval, status, created))
            items.append({"id": sid, "tenant_id": tenant_id, "subscription_id": sid, "status": item_status.value,
                          "service_kind": "server", "provider": Provider.HETZNER.value,
                          "config": {"serverType": "cx22", "location": "fsn1", "image": "ubuntu-24.04"},
                          "server_id": str(1_000_000 + sid), "hostname": f"srv-{sid}",
                          "fqdn": f"srv-{sid}.example.net", "ipv4": f"10.{sid >> 16 & 255}.{sid >> 8 & 255}."
                          f"{sid & 255}", "ready_at": created + timedelta(minutes=1), "error_message": None,
                          "created_at": created, "updated_at": created, **(FAILURE if offset in failed else {})})
            events.append({"tenant_id": tenant_id, "subscription_id": sid, "kind": "ordered", "from_status": None,
                           "to_status": SubscriptionStatus.PENDING_FULFILLMENT.value, "actor_id": user_id,
                           "reason": "", "data": {}, "created_at": created})
            if status is not SubscriptionStatus.PENDING_FULFILLMENT:
                events.append({"tenant_id": tenant_id, "subscription_id": sid, "kind": "status_changed",
                               "from_status": SubscriptionStatus.PENDING_FULFILLMENT.value, "to_status": status.value,
                               "actor_id": None, "reason": "", "data": {}, "created_at": created
                               + timedelta(minutes=1)})
        self.put(Subscription.__table__, subs)
        self.put(SubscriptionItem.__table__, items)
        self.put(SubscriptionEvent.__table__, events)
        self.invoices(tenant_id, subs)

    def invoices(self, tenant_id: int, subs: list[dict[str, Any]]) -> None:
        """One finalized invoice per subscription (so the known customers have exactly 5 and 50), with one line,
        spread over the months of EPOCH's year: paid, or open (suspended ones, and every tenth)."""
        first = self.counts.get("invoices", 0) + 1
        invoices, lines = [], []
        for offset, sub in enumerate(subs):
            iid, net = first + offset, sub["price_minor"]
            tax = net * 19 // 100
            issued = sub["created_at"] + timedelta(days=30 * (offset % 11), hours=1)
            unpaid = sub["status"] == SubscriptionStatus.SUSPENDED.value or offset % 10 == 9
            invoices.append({
                "id": iid, "tenant_id": tenant_id, "user_id": sub["user_id"],
                "status": (InvoiceStatus.OPEN if unpaid else InvoiceStatus.PAID).value,
                "number": f"INV-{issued.year}-{iid:06d}", "currency": "EUR", "subtotal_minor": net, "tax_minor": tax,
                "total_minor": net + tax, "balance_applied_minor": 0, "amount_paid_minor": 0 if unpaid else net + tax,
                "amount_due_minor": net + tax if unpaid else 0, "credited_minor": 0, "tax_rate_bp": 1900,
                "tax_country": "DE", "reverse_charge": False, "tax_note": "", "seller": SELLER,
                "bill_to": {"name": f"Customer {sub['user_id']}", "address": ["Street 1", "10115 Berlin"],
                            "country": "DE"},
                "created_at": issued, "finalized_at": issued, "due_at": issued,
                "paid_at": None if unpaid else issued, "voided_at": None, "attempt_count": 0 if unpaid else 1,
                "next_attempt_at": None, "emailed_at": None, "version": 1})
            lines.append({"id": iid, "tenant_id": tenant_id, "subscription_id": sub["id"], "user_id": sub["user_id"],
                          "invoice_id": iid, "kind": ChargeKind.RENEWAL.value, "description": "Cloud server, month",
                          "usage_metric": "", "quantity": 1, "unit_amount_minor": net, "amount_minor": net,
                          "currency": "EUR", "period_start": issued,
                          "period_end": issued + timedelta(days=30), "created_at": issued})
        self.put(Invoice.__table__, invoices)
        self.put(Charge.__table__, lines)

    @staticmethod
    def subscription(sid: int, tenant_id: int, user_id: int, plan_id: int, price: int, interval: Interval,
                     status: SubscriptionStatus, created: datetime) -> dict[str, Any]:
        started = None if status is SubscriptionStatus.PENDING_FULFILLMENT else created + timedelta(minutes=1)
        length = timedelta(days=365 if interval is Interval.YEAR else 30)
        period_end = started + length if started else None
        ending = status in (SubscriptionStatus.PENDING_CANCEL, SubscriptionStatus.SUSPENDED)
        canceled = created + timedelta(days=3) if status is SubscriptionStatus.CANCELED else None
        return {"id": sid, "tenant_id": tenant_id, "user_id": user_id, "plan_id": plan_id, "status": status.value,
                "quantity": 1, "price_minor": price, "currency": "EUR", "interval": interval.value,
                "requested_config": {}, "auto_renew": True, "auto_backorder": False, "idempotency_key": None,
                "activated_at": started, "current_period_start": started, "current_period_end": period_end,
                "effective_at": period_end if ending else canceled, "canceled_at": canceled,
                "suspended_at": created + timedelta(days=2) if status is SubscriptionStatus.SUSPENDED else None,
                "servers_delete_at": canceled + timedelta(days=7) if canceled else None, "purged_at": None,
                "version": 1, "created_at": created, "updated_at": created}


def api_token(user_id: int) -> str:
    """The known API token of a bench customer (as PASSWORD is their known password), made from their id: a
    well-formed token (prefix, lookup id, secret, checksum) whose hash the data set stores, as the portal does."""
    number = int.from_bytes(hashlib.sha512(f"bench-api-token:{user_id}".encode()).digest(), "big")
    chars = []
    for _ in range(LOOKUP_LENGTH + SECRET_LENGTH):
        number, digit = divmod(number, len(ALPHABET))
        chars.append(ALPHABET[digit])
    body = PREFIX + "".join(chars)
    return body + checksum(body)


def copy_value(value: Any) -> Any:
    """A value as COPY takes it: JSON columns as JSON text, enums as their stored value."""
    if isinstance(value, dict | list):
        return json.dumps(value)
    return value.value if isinstance(value, Enum) else value


def bench_app(database: str) -> Any:
    """The portal on `database`, as the benchmark runs it (fast password hashing, no rate limit)."""
    url = normalize_database_url(database)
    return create_app({"SQLALCHEMY_DATABASE_URI": url, "SQLALCHEMY_ENGINE_OPTIONS": engine_options(url),
                       "SECRET_KEY": SECRET_KEY,
                       "ARGON2_PARAMETERS": {"time_cost": 1, "memory_cost": 8, "parallelism": 1},
                       "RATELIMIT_ENABLED": False, "RATELIMIT_STORAGE_URI": "memory://",
                       "DEFAULT_TENANT": "bench-0", "SANDBOX_IN_PROCESS": True, "DNS_BASE_DOMAIN": DNS_BASE_DOMAIN})


def absolute(database: str) -> str:
    """A relative SQLite path is taken from the working directory (Flask-SQLAlchemy would take the instance's)."""
    url = make_url(database)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        path = os.path.abspath(url.database)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return url.set(database=path).render_as_string(hide_password=False)
    return database


def fresh(database: str) -> None:
    """Delete the SQLite file, or drop and recreate PostgreSQL's `public` schema with everything in it."""
    url = make_url(database)
    if url.get_backend_name() == "sqlite" and url.database and os.path.exists(url.database):
        os.remove(url.database)
    if url.get_backend_name() == "postgresql":
        with bench_app(database).app_context():
            with db.engine.begin() as conn:
                conn.exec_driver_sql("DROP SCHEMA IF EXISTS public CASCADE")
                conn.exec_driver_sql("CREATE SCHEMA public")
            db.engine.dispose()


def move_sequences(conn: Connection) -> None:
    """PostgreSQL: the builder numbers rows itself, so each `id` sequence must start after the last of them."""
    for table in db.metadata.sorted_tables:
        if "id" in table.columns and table.columns["id"].primary_key:
            conn.execute(select(func.setval(func.pg_get_serial_sequence(table.name, "id"),
                                            func.coalesce(func.max(table.c.id), 0) + 1, False)))


def build(size: Size, seed: int, database: str) -> dict[str, int]:
    """Create, migrate and fill `database`; returns the rows written per table."""
    fresh(database)
    app = bench_app(database)
    with app.app_context():
        flask_migrate.upgrade(directory=MIGRATIONS)
        password_hash = hash_password(PASSWORD)  # once: every bench customer shares it
        with db.engine.begin() as conn:
            builder = Builder(conn, seed, password_hash)
            for index, (customers, subscriptions) in enumerate(zip(shares(size.customers, size.tenants),
                                                                   shares(size.subscriptions, size.tenants),
                                                                   strict=True)):
                builder.tenant(index, customers, subscriptions)
            # What ordering keeps as each subscription is created, set here in one statement for the rows loaded.
            conn.execute(update(Plan).values(subscription_count=select(func.count()).where(
                Subscription.plan_id == Plan.id).scalar_subquery()))
            if conn.dialect.name == "sqlite":
                # Statistics for the planner, as `PRAGMA optimize` gives a database in service; without them
                # SQLite walks a tenant's whole created-at index for one customer's subscriptions.
                conn.exec_driver_sql("ANALYZE")
            if conn.dialect.name == "postgresql":
                move_sequences(conn)
        if db.engine.dialect.name == "postgresql":
            # What autovacuum gives a database in service after a bulk load: the planner's statistics, and the
            # visibility map that lets an index-only scan skip the table.
            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("VACUUM ANALYZE")
        db.engine.dispose()
    return builder.counts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="S")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--database", default=None, help="default: sqlite:///instance/bench-<size>.sqlite3")
    args = parser.parse_args(argv)
    database = absolute(args.database or f"sqlite:///instance/bench-{args.size}.sqlite3")
    started = time.perf_counter()
    counts = build(SIZES[args.size], args.seed, database)
    elapsed = time.perf_counter() - started
    print(f"Built size {args.size} (seed {args.seed}) in {database} in {elapsed:.1f} s:")
    for table, count in counts.items():
        print(f"  {table:24} {count:>9,}")
    print(f"Known users on every tenant, password {PASSWORD!r}: customers {FEW_EMAIL} ({FEW} subscriptions), "
          f"{MANY_EMAIL} ({MANY}), {ORDER_EMAIL} (none; places the measured orders); support {SUPPORT_EMAIL}; "
          f"tenant admin {ADMIN_EMAIL}; the API token of the first customer of bench-0 (read scope): {api_token(1)}")


if __name__ == "__main__":
    main()
