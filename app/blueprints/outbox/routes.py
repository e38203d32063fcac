"""The development outbox: the latest emails of the tenant, readable without logging in, outside production
and only while emails do not leave the machine (no SMTP).

Someone trying the portal without a mail server (the file backend writes to instance/outbox) can follow a
password reset or confirmation link from here. In production it does not exist (404).
"""

from __future__ import annotations

from flask import abort, current_app, g, render_template

from app.blueprints.outbox import bp
from app.selectors.emails import outbox as latest


@bp.before_request
def outside_production_only() -> None:
    if not current_app.config["OUTBOX_PAGE"]:  # production, or emails that really leave (SMTP)
        abort(404)


@bp.get("/outbox")
def outbox() -> str:
    return render_template("outbox/index.html", emails=latest(g.tenant))
