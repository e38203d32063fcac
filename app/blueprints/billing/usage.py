"""The customer's usage page of a usage-based subscription: this period's usage and running cost, past periods
with what they were billed, and a chart per metric."""

from __future__ import annotations

from flask import abort, g, render_template
from flask_login import current_user

from app.blueprints.billing import bp
from app.selectors import usage as selectors
from app.web.access import customer_required


@bp.get("/subscriptions/<int:subscription_id>/usage", endpoint="usage")
@customer_required
def usage(subscription_id: int) -> str:
    summary = selectors.subscription_usage(g.tenant, current_user, subscription_id)
    if summary is None:
        abort(404)
    return render_template("billing/usage.html", summary=summary, subscription=summary.subscription)
