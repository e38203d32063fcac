"""The billing benchmark's baseline writes the invoices the portal's invoicing step writes.

It runs in a process of its own: the benchmark's portal app sets up the app-wide extensions (the rate limiter
off, the task queue bound to it), which must not change the app of the other tests."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

# Two tenants (numbers per tenant), 120 subscriptions each: the smallest set the builder makes (its known
# customers own 55 of each tenant's subscriptions, its failed servers 50 more).
COMPARE = """
import json, sys
from bench import billing
from bench.data import Size, build

database = sys.argv[1]
build(Size(tenants=2, customers=40, subscriptions=240), 1, database)
portal, recorder, due = billing.prepared(database)
bare = billing.first_run(portal, billing.Side("bare", lambda: billing.bare_invoicing(portal), []), recorder)
with portal.app_context(), billing.db.engine.begin() as conn:
    billing.undo(conn)
ours = billing.first_run(portal, billing.Side("portal", lambda: billing.portal_invoicing(portal), []), recorder)
_, statements_again, written_again = billing.rerun(portal, recorder)
print(json.dumps({"due": due, "bare": sorted(map(list, bare.items())), "portal": sorted(map(list, ours.items())),
                  "statements_again": statements_again, "written_again": written_again}))
"""


def test_the_bare_invoicing_writes_the_invoices_the_portal_writes(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", COMPARE, f"sqlite:///{tmp_path / 'bench.sqlite3'}"],  # noqa: S603 - this file's script
                          capture_output=True, text=True, timeout=120, check=True,
                          cwd=Path(__file__).resolve().parents[2])
    result = json.loads(done.stdout.splitlines()[-1])

    assert result["due"] > 0 and len(result["portal"]) > 10
    assert result["bare"] == result["portal"]  # the same customers and currencies, with the same subtotal, tax, total
    assert result["written_again"] == 0 and result["statements_again"] == 2  # what is due; the drafts
