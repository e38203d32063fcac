"""Measure the billing run's invoicing step against plain SQL writing the same invoices.

    python -m bench.billing --database sqlite:///instance/bench-S.sqlite3 [--rounds N]
    python -m bench.billing --database sqlite:///instance/bench-M.sqlite3
    python -m bench.billing --database postgresql://postgres@127.0.0.1/bench_l --rounds 1

A SQLite data set (built with `python -m bench.data`) is copied first and only the copy is written; a
PostgreSQL one is used in place and every row a run writes is deleted again after it (the tenants' billing
settings, which the benchmark sets where a tenant has none, are kept). The
clock stands at AS_OF, after every invoice of the data set, so this year's invoice numbers start at 1. Each
run makes one period's worth of due charges (one renewal charge per active paid subscription, set-based,
uninvoiced) and then either

(a) the portal: `invoicing.invoice_due(AS_OF)`, gather and finalize: drafts, numbers from the per-tenant
    sequence, tax per the tenant's settings (19 % for German customers, set here), the balance, the
    "invoice issued" email logged and queued for each invoice; or
(b) the baseline: one `INSERT INTO invoices ... SELECT ... GROUP BY` the customer and currency (numbered,
    taxed, with the customer's bill-to) and one `UPDATE charges SET invoice_id`, in one transaction.

Runs alternate (portal, bare, bare, portal, ...); the ratio of the medians is the figure, with statements
counted on the portal's engine (transaction control aside). A first run of each side, under tracemalloc,
gives the peak memory and checks both wrote the same invoices (count, totals per customer). Then (c) the
portal's rerun with nothing due (time and statements: it should be about one read), and collection's time
per invoice (each customer given a sandbox card; not part of the ratio: it calls the payment provider per
invoice). Exits 1 when the ratio exceeds 2x or the rerun writes anything.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from flask import Flask
from sqlalchemy import TextClause, bindparam, event, func, insert, literal, select, text
from sqlalchemy.engine import Connection, make_url

from app.clock import FrozenClock
from app.domain.billing import ChargeKind, InvoiceStatus
from app.extensions import db
from app.models import BillingSettings, Charge, Invoice, PaymentMethod, Subscription, Tenant
from app.models.base import UTCDateTime
from app.tasks import huey
from bench.data import absolute, bench_app
from bench.run import Recorder

AS_OF = datetime(2030, 1, 1, tzinfo=UTC)  # after every invoice of the data sets: this year's numbers start at 1
PERIOD = timedelta(days=30)
TAX_RATE_BP = 1900  # the data sets' customers all live in Germany, like their sellers
GOAL = 2.0
RERUN_STATEMENTS = 2  # the rerun's reads: what is due to gather, and the drafts to finalize
CARD = "4242424242424242"


@dataclass
class Side:
    """One side of the comparison: its runs' seconds, statements and peak memory."""

    name: str
    run: Callable[[], None]
    seconds: list[float]
    statements: int = 0
    peak_bytes: int = 0


def make_due(conn: Connection) -> int:
    """One renewal charge for AS_OF's period per active paid subscription, uninvoiced. Returns how many."""
    subs = Subscription.__table__
    rows = select(subs.c.tenant_id, subs.c.id, subs.c.user_id, text(f"'{ChargeKind.RENEWAL.value}'"),
                  text("'Cloud server, month'"), text("''"), text("1"), subs.c.price_minor, subs.c.price_minor,
                  subs.c.currency, literal(AS_OF, UTCDateTime), literal(AS_OF + PERIOD, UTCDateTime),
                  literal(AS_OF, UTCDateTime)).where(
        subs.c.status == "active", subs.c.price_minor > 0)
    columns = ["tenant_id", "subscription_id", "user_id", "kind", "description", "usage_metric", "quantity",
               "unit_amount_minor", "amount_minor", "currency", "period_start", "period_end", "created_at"]
    conn.execute(insert(Charge.__table__).from_select(columns, rows))
    made = conn.scalar(select(func.count()).select_from(Charge.__table__)  # (a rowcount PostgreSQL's driver
                       .where(Charge.__table__.c.period_start == AS_OF)) or 0  # may not give for INSERT ... SELECT)
    # The planner's statistics of the charges, as autovacuum gives them after a bulk insert: without them
    # PostgreSQL takes the new charges for one row and walks all of them for each batch of drafts gathered.
    conn.exec_driver_sql("ANALYZE charges")
    return made


def sql(statement: str) -> TextClause:
    """Plain SQL whose `:at` is a moment, stored as the portal stores its times."""
    clause = text(statement)
    return clause.bindparams(bindparam("at", type_=UTCDateTime)) if ":at" in statement else clause


def set_billing(conn: Connection) -> None:
    """Every tenant's billing settings: a German seller charging German customers 19 %."""
    have = set(conn.scalars(select(BillingSettings.tenant_id)))
    rows = [{"tenant_id": tid, "seller_name": name, "seller_country": "DE", "tax_rates": {"DE": TAX_RATE_BP}}
            for tid, name in conn.execute(select(Tenant.id, Tenant.name)) if tid not in have]
    if rows:
        conn.execute(insert(BillingSettings.__table__), rows)


def undo(conn: Connection) -> None:
    """Delete what a run wrote (everything stamped AS_OF or later), leaving the data set as it was."""
    for statement in ("DELETE FROM payments WHERE created_at >= :at",
                      "DELETE FROM payment_methods WHERE created_at >= :at",
                      "DELETE FROM email_messages WHERE created_at >= :at",
                      "DELETE FROM balance_entries WHERE created_at >= :at",
                      "DELETE FROM charges WHERE period_start >= :at",
                      "DELETE FROM invoices WHERE created_at >= :at",
                      "DELETE FROM invoice_sequences WHERE year >= :year"):
        conn.execute(sql(statement), {"at": AS_OF, "year": AS_OF.year})


def baseline_sql(dialect: str) -> tuple[str, str]:
    """The bare invoicing: one INSERT ... SELECT of the invoices, one UPDATE of the charges."""
    if dialect == "postgresql":
        number = "'INV-' || :year || '-' || lpad(row_number() OVER w::text, 6, '0')"
        bill_to = ("json_build_object('name', p.full_name, 'company', p.company, 'email', p.billing_email, "
                   "'address', p.address, 'postal_code', p.postal_code, 'city', p.city, 'country', p.country, "
                   "'vat_id', p.vat_id)")
        seller = ("json_build_object('name', t.name, 'address', '', 'vat_id', '', 'country', 'DE')")
    else:
        number = "'INV-' || :year || '-' || printf('%06d', row_number() OVER w)"
        bill_to = ("json_object('name', p.full_name, 'company', p.company, 'email', p.billing_email, "
                   "'address', p.address, 'postal_code', p.postal_code, 'city', p.city, 'country', p.country, "
                   "'vat_id', p.vat_id)")
        seller = "json_object('name', t.name, 'address', '', 'vat_id', '', 'country', 'DE')"
    rate = f"CASE p.country WHEN 'DE' THEN {TAX_RATE_BP} ELSE 0 END"
    tax = f"(2 * sum(c.amount_minor) * {rate} + 10000) / 20000"
    invoices = f"""
        INSERT INTO invoices (tenant_id, user_id, status, number, currency, subtotal_minor, tax_minor, total_minor,
            balance_applied_minor, amount_paid_minor, amount_due_minor, credited_minor, tax_rate_bp, tax_country,
            reverse_charge, tax_note, seller, bill_to, created_at, finalized_at, due_at, attempt_count,
            next_attempt_at, emailed_at, version)
        SELECT c.tenant_id, c.user_id, '{InvoiceStatus.OPEN.value}', {number}, c.currency, sum(c.amount_minor),
            {tax}, sum(c.amount_minor) + {tax}, 0, 0, sum(c.amount_minor) + {tax}, 0, {rate}, p.country,
            false, '', {seller}, {bill_to}, :at, :at, :at, 0, :at, :at, 1
        FROM charges c JOIN customer_profiles p ON p.user_id = c.user_id JOIN tenants t ON t.id = c.tenant_id
        WHERE c.invoice_id IS NULL AND c.user_id IS NOT NULL AND c.period_start <= :at
        GROUP BY c.tenant_id, c.user_id, c.currency, p.country, p.full_name, p.company, p.billing_email,
            p.address, p.postal_code, p.city, p.vat_id, t.name
        WINDOW w AS (PARTITION BY c.tenant_id ORDER BY c.user_id, c.currency)"""  # noqa: S608 - constants only
    charges = """
        UPDATE charges SET invoice_id = (SELECT i.id FROM invoices i WHERE i.user_id = charges.user_id
                                         AND i.currency = charges.currency AND i.created_at = :at)
        WHERE invoice_id IS NULL AND user_id IS NOT NULL AND period_start <= :at"""
    return invoices, charges


def bare_invoicing(app: Flask) -> None:
    with app.app_context(), db.engine.begin() as conn:
        invoices, charges = baseline_sql(conn.dialect.name)
        conn.execute(sql(invoices), {"at": AS_OF, "year": str(AS_OF.year)})
        conn.execute(sql(charges), {"at": AS_OF})


def portal_invoicing(app: Flask) -> None:
    from app.services import invoicing

    with app.app_context():
        invoicing.invoice_due(AS_OF)
        db.session.remove()
    huey.flush()  # the "invoice issued" emails it queued (the bench's own queue, bench/__init__.py)


def written(app: Flask) -> dict[tuple[int, str], tuple[int, int, int]]:
    """The invoices written at AS_OF: (customer, currency) -> (subtotal, tax, total)."""
    with app.app_context():
        rows = db.session.execute(select(Invoice.user_id, Invoice.currency, Invoice.subtotal_minor, Invoice.tax_minor,
                                         Invoice.total_minor, Invoice.status)
                                  .where(Invoice.created_at >= AS_OF)).all()
        db.session.remove()
    assert all(row.status is not InvoiceStatus.DRAFT for row in rows), "a draft was left"
    return {(row.user_id, row.currency): (row.subtotal_minor, row.tax_minor, row.total_minor) for row in rows}


def fresh_run(app: Flask, work: Callable[[], None]) -> float:
    """Make the charges due, time `work`, and delete what was written."""
    with app.app_context(), db.engine.begin() as conn:
        make_due(conn)
    started = time.perf_counter()
    work()
    elapsed = time.perf_counter() - started
    with app.app_context(), db.engine.begin() as conn:
        undo(conn)
    return elapsed


def first_run(app: Flask, side: Side, recorder: Recorder) -> dict[tuple[int, str], tuple[int, int, int]]:
    """One run under tracemalloc: peak memory, statements, and the invoices written (left for the caller)."""
    with app.app_context(), db.engine.begin() as conn:
        make_due(conn)
    recorder.count = 0
    tracemalloc.start()
    side.run()
    side.peak_bytes = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    side.statements = recorder.count
    return written(app)


def rerun(app: Flask, recorder: Recorder) -> tuple[float, int, int]:
    """The invoicing step again with nothing due: seconds, statements, and invoices it wrote (none)."""
    from app.services import invoicing

    before = len(written(app))
    recorder.count = 0
    started = time.perf_counter()
    with app.app_context():
        invoicing.invoice_due(AS_OF)
        db.session.remove()
    elapsed = time.perf_counter() - started
    return elapsed, recorder.count, len(written(app)) - before


def collection_per_invoice(app: Flask, limit: int) -> tuple[float, int]:
    """Give each customer with an open invoice a sandbox card, then time collection: seconds per invoice."""
    from app.providers.payments.base import Card
    from app.sandbox.payments import ledger
    from app.services import collection

    with app.app_context(), db.engine.begin() as conn:
        owners = conn.execute(select(Invoice.tenant_id, Invoice.user_id).distinct()
                              .where(Invoice.created_at >= AS_OF, Invoice.status == InvoiceStatus.OPEN)).all()
        rows = [{"tenant_id": tid, "user_id": uid, "provider": "sandbox", "external_id": f"pm_bench{uid:08d}",
                 "brand": "visa", "last4": CARD[-4:], "exp_month": 12, "exp_year": AS_OF.year + 3,
                 "is_default": True, "created_at": AS_OF} for tid, uid in owners]
        conn.execute(sql("UPDATE payment_methods SET is_default = false WHERE user_id IN "
                         "(SELECT user_id FROM invoices WHERE created_at >= :at)"), {"at": AS_OF})
        conn.execute(insert(PaymentMethod.__table__), rows)
        for row in rows:
            ledger(row["tenant_id"]).cards[row["external_id"]] = (
                CARD, Card(row["external_id"], "visa", CARD[-4:], 12, AS_OF.year + 3))
    with app.app_context():
        due = min(limit, db.session.scalar(select(func.count()).select_from(Invoice).where(
            Invoice.created_at >= AS_OF, Invoice.status == InvoiceStatus.OPEN)) or 0)
        started = time.perf_counter()
        collection.collect_due(AS_OF)
        elapsed = time.perf_counter() - started
        db.session.remove()
    huey.flush()
    return (elapsed / due if due else 0.0), due


def working_copy(database: str) -> str:
    """A SQLite data set is copied beside itself and the copy used; PostgreSQL is used in place."""
    url = make_url(database)
    if url.get_backend_name() != "sqlite":
        return database
    assert url.database
    copy = url.database.replace(".sqlite3", "") + "-billing.sqlite3"
    for stale in (copy, f"{copy}-wal", f"{copy}-shm", f"{copy}-journal"):  # an interrupted run's
        if os.path.exists(stale):
            os.remove(stale)
    shutil.copyfile(url.database, copy)
    return url.set(database=copy).render_as_string(hide_password=False)


def prepared(database: str) -> tuple[Flask, Recorder, int]:
    """The portal on `database` with its clock at AS_OF, its statements counted, every tenant's billing
    settings set; returns it, its recorder and how many charges a run makes due."""
    app = bench_app(database)
    app.extensions["clock"] = FrozenClock(AS_OF)
    recorder = Recorder()
    with app.app_context():
        event.listen(db.engine, "before_cursor_execute", recorder)
        with db.engine.begin() as conn:
            undo(conn)  # a run that was interrupted
            set_billing(conn)
            due = make_due(conn)
            undo(conn)
    return app, recorder, due


def measure(database: str, rounds: int) -> bool:
    """Run the comparison on `database`, print the figures; True when the goals are met."""
    app, recorder, due = prepared(database)
    portal = Side("portal", lambda: portal_invoicing(app), [])
    bare = Side("bare", lambda: bare_invoicing(app), [])

    bare_rows = first_run(app, bare, recorder)
    with app.app_context(), db.engine.begin() as conn:
        undo(conn)
    portal_rows = first_run(app, portal, recorder)
    same = portal_rows == bare_rows
    seconds_again, statements_again, created_again = rerun(app, recorder)
    per_invoice, collected = collection_per_invoice(app, limit=1000)
    with app.app_context(), db.engine.begin() as conn:
        undo(conn)

    for index in range(rounds):
        order = (portal, bare) if index % 2 == 0 else (bare, portal)
        for side in order:
            side.seconds.append(fresh_run(app, side.run))

    ratios = [p / b for p, b in zip(portal.seconds, bare.seconds, strict=True)]
    ratio = statistics.median(portal.seconds) / statistics.median(bare.seconds)
    invoices = len(portal_rows)
    print(f"Billing run's invoicing on {database}: {due:,} charges due, {invoices:,} invoices, {rounds} rounds")
    print(f"  same invoices written (count, totals per customer): {'yes' if same else 'NO'}")
    for side in (portal, bare):
        print(f"  {side.name:7} median {statistics.median(side.seconds):8.3f} s "
              f"({min(side.seconds):.3f}-{max(side.seconds):.3f}), {side.statements:,} statements "
              f"({side.statements / max(invoices, 1):.1f} per invoice), peak memory {side.peak_bytes / 2**20:.1f} MiB")
    print(f"  ratio   {ratio:.2f}x (per round {min(ratios):.2f}-{max(ratios):.2f}); goal within {GOAL:.0f}x: "
          f"{'met' if ratio <= GOAL else 'MISSED'}")
    print(f"  rerun with nothing due: {seconds_again * 1000:.1f} ms, {statements_again} statements, "
          f"{created_again} invoices written")
    print(f"  collection: {per_invoice * 1000:.2f} ms per invoice ({collected:,} invoices, sandbox payments "
          "in process; not part of the ratio)")
    return same and ratio <= GOAL and created_again == 0 and statements_again <= RERUN_STATEMENTS


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", default="sqlite:///instance/bench-S.sqlite3")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    database = absolute(args.database)
    url = make_url(database)
    if url.get_backend_name() == "sqlite" and not os.path.exists(url.database or ""):
        raise SystemExit(f"no data set at {url.database}: build it with python -m bench.data")
    met = measure(working_copy(database), args.rounds)
    sys.exit(0 if met else 1)


if __name__ == "__main__":
    main()

