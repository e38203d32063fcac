"""The billing benchmark's baseline writes the invoices the portal's invoicing step writes."""

from __future__ import annotations

from pathlib import Path

import pytest

import app.tasks
from app.tasks import huey
from bench import billing
from bench.data import Size, build

# Two tenants (numbers per tenant), 120 subscriptions each: the smallest set the builder makes (its known
# customers own 55 of each tenant's subscriptions, its failed servers 50 more).
TINY = Size(tenants=2, customers=40, subscriptions=240)


def test_the_bare_invoicing_writes_the_invoices_the_portal_writes(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app.tasks, "_app", app.tasks._app)  # the bench's portal app binds the queue: put back after
    monkeypatch.setattr(huey, "immediate", False)  # the emails are queued, not sent
    database = f"sqlite:///{tmp_path / 'bench.sqlite3'}"
    build(TINY, 1, database)
    portal, recorder, due = billing.prepared(database)

    bare = billing.first_run(portal, billing.Side("bare", lambda: billing.bare_invoicing(portal), []), recorder)
    with portal.app_context(), billing.db.engine.begin() as conn:
        billing.undo(conn)
    ours = billing.first_run(portal, billing.Side("portal", lambda: billing.portal_invoicing(portal), []), recorder)

    assert due > 0 and len(ours) > 10
    assert bare == ours  # the same customers and currencies, with the same subtotal, tax and total each
    _, again_statements, again_written = billing.rerun(portal, recorder)
    assert again_written == 0 and again_statements == billing.RERUN_STATEMENTS
