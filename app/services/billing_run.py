"""The billing run: what is due, billed and collected, in steps that are each safe to run again.

`run()` is the periodic job `billing` (and `flask jobs run billing --as-of TIME`, to catch up after downtime
or to see in a demo what a month does). `run(user_id=...)` is the same for one customer, queued when a
subscription's first period starts, so a customer sees their first invoice at once rather than at the next
run. The steps, in order:

1. usage: the usage of periods that have closed becomes charges (app/services/usage.py);
2. invoicing: each customer's uninvoiced charges are gathered per currency into an invoice, which is
   finalized: numbered, taxed, the customer balance applied (app/services/invoicing.py);
3. collection: invoices due a payment try are charged to the default card (app/services/collection.py);
4. dunning: overdue invoices suspend what they bill, and the end of grace cancels it (app/services/dunning.py).

Each step reads only what is due (an index serves each query), creates its rows under unique constraints
(a rerun, or a rerun after a crash half-way, creates nothing twice) and commits in small transactions, so
a crash loses at most the work in flight. Each returns a short summary of what it did.
"""

from __future__ import annotations

from collections.abc import Callable

from app.clock import now

Step = Callable[..., str]  # step(as_of, *, user_id=None) -> summary


def run(*, user_id: int | None = None) -> str:
    """Every step once, for every customer or for `user_id` only, each as of the time it starts (the job's clock,
    which runs on during the run): an invoice finalized by one step is due a payment by the next."""
    return "; ".join(step(now(), user_id=user_id) for step in steps())


def steps() -> tuple[Step, ...]:
    """The steps in the order they run (one line each)."""
    from app.services import collection, dunning, invoicing, usage

    return (
        usage.bill_closed_periods,
        invoicing.invoice_due,
        collection.collect_due,
        dunning.advance,
    )
