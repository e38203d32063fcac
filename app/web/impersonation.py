"""Impersonation on every request: the deadline, who is behind the customer, the audit trail and the banner.

The session of an impersonating browser holds, besides Flask-Login's session token, the id of the
impersonation (`SESSION_KEY`, put there only by `switch_to`). For such a session, before each request:

- the session token must still belong to that open impersonation; if the session was ended elsewhere the
  record is closed ("session_ended") and the browser is anonymous from then on;
- past the deadline the impersonation ends here ("expired"): the customer session is revoked, the support
  user gets a new session and lands on the customer's page in the support area (HX-Redirect for htmx);
- else `g.impersonation` (the record) and `g.impersonator` (the support user) are set, so `current_actor()`
  hands both to every service.

After each request made while impersonating, state-changing requests and full-page views are added to the
audit trail, and every htmx fragment gets the banner appended as an out-of-band swap, so the banner (and the
time left on it) is fresh after every swap. Sessions of everyone else cost nothing here: no marker, no query.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import datetime

from flask import Flask, Response, flash, g, redirect, render_template, request, session, url_for
from flask_login import current_user, login_user, logout_user
from sqlalchemy.exc import SQLAlchemyError

from app.clock import now
from app.extensions import db
from app.models import Impersonation, User
from app.selectors.impersonation import running_in_session
from app.services import accounts
from app.services import impersonation as service
from app.services.errors import NotFound
from app.web import htmx
from app.web.api import is_api_request
from app.web.security import writes

log = logging.getLogger(__name__)

SESSION_KEY = "impersonation_id"
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
BANNER_TEMPLATE = "_partials/_impersonation_banner.html"
BANNER_ENDPOINT = "support.impersonation_banner"
STOP_ENDPOINT = "support.stop_impersonating"


@dataclass(frozen=True)
class Banner:
    """What the banner shows."""

    support_name: str
    customer_name: str
    customer_email: str
    reason: str
    ends_at: datetime
    minutes_left: int

    @classmethod
    def of(cls, record: Impersonation, moment: datetime) -> Banner:
        seconds = (record.ends_at - moment).total_seconds()
        return cls(record.support_user.name, record.customer.name, record.customer.email, record.reason,
                   record.ends_at, max(0, math.ceil(seconds / 60)))


def switch_to(user: User | None, impersonation: Impersonation | None = None) -> None:
    """Log the browser in as `user` (with the session token it carries) in a brand-new session.

    With `impersonation`, the session is marked as impersonating; None for `user` logs the browser out.
    """
    session.clear()  # nothing of the previous identity survives, the CSRF token included
    if user is None:
        logout_user()
        return
    login_user(user)
    if impersonation is not None:
        session[SESSION_KEY] = impersonation.id


def enforce() -> Response | None:
    """before_request: check the impersonation of this session, end it when due, else expose it on `g`.

    Not for the API: it ignores browser sessions (a token acts as its own user), so impersonation never
    reaches it."""
    if request.endpoint == "static" or SESSION_KEY not in session or is_api_request():
        return None
    marker = session[SESSION_KEY]
    if not current_user.is_authenticated:
        return _session_gone(marker)
    record = running_in_session(g.tenant, session_token=current_user.session_token)
    if record is None or record.id != marker:
        return _log_out_inconsistent()
    if record.is_over(now()):
        return _expired(record)
    g.impersonation = record
    g.impersonator = record.support_user
    return None


def audit_and_banner(response: Response) -> Response:
    """after_request: record what was done while impersonating, and put the banner on htmx fragments."""
    record: Impersonation | None = g.get("impersonation")
    if record is None:
        return response
    if request.method in STATE_CHANGING or _is_page_view():
        _record(record, response)
    if _is_fragment_swap(response):
        banner = render_template(BANNER_TEMPLATE, impersonation=Banner.of(record, now()), oob=True)
        response.set_data(response.get_data(as_text=True) + banner)
    return response


def banner_context() -> dict[str, object]:
    record: Impersonation | None = g.get("impersonation")
    if record is None or not record.is_open:
        return {"impersonation": None}
    return {"impersonation": Banner.of(record, now())}


def init_app(app: Flask) -> None:
    app.before_request(enforce)  # after the tenant is known (tenancy.init_app runs first)
    app.after_request(audit_and_banner)
    app.context_processor(banner_context)


# --- endings ---------------------------------------------------------------------------------------------------

def _navigate(target: str) -> Response:
    if request.headers.get("HX-Request") == "true":
        return htmx.redirect(target)
    return redirect(target, 303)


def _expired(record: Impersonation) -> Response:
    writes()  # ending it writes, whatever the request
    customer_id, customer_name = record.customer_id, record.customer.name
    minutes = round((record.ends_at - record.started_at).total_seconds() / 60)
    try:
        switch = service.expire(tenant=g.tenant, session_token=current_user.session_token,
                                remote_addr=request.remote_addr, user_agent=request.user_agent.string)
    except NotFound:  # ended by a request of another tab a moment ago
        switch_to(None)
        return _navigate(url_for("auth.login"))
    switch_to(switch.user)
    flash(f"Your impersonation of {customer_name} has ended: the {minutes}-minute limit was reached.", "warning")
    if switch.user is None:
        return _navigate(url_for("auth.login"))
    return _navigate(url_for("support.customer", customer_id=customer_id))


def _session_gone(marker: object) -> Response | None:
    """The impersonating session no longer works (ended elsewhere): close the record, carry on anonymous."""
    writes()
    if isinstance(marker, int):
        service.close_if_session_gone(tenant=g.tenant, impersonation_id=marker)
    if request.endpoint == STOP_ENDPOINT:
        # The second Stop of a double click carries the old cookie. Answer without touching the session (no
        # Set-Cookie), so the browser keeps the support session the first Stop gave it.
        return redirect(url_for("support.index"), 303)
    session.pop(SESSION_KEY, None)
    flash("The impersonation has ended. Log in again to continue.", "info")
    return None


def _log_out_inconsistent() -> Response:
    """A marked session that is not the one of an open impersonation: trust neither, log out."""
    log.warning("impersonation marker without an open impersonation; logging the session out")
    writes()
    accounts.log_out(user=current_user._get_current_object())
    switch_to(None)
    flash("The impersonation has ended. Log in again to continue.", "info")
    return _navigate(url_for("auth.login"))


# --- audit and banner ------------------------------------------------------------------------------------------

def _is_page_view() -> bool:
    """A page the support user opened, refused ones included (fragments and the banner's refresh are not)."""
    return request.method == "GET" and not htmx.wants_fragment() and request.endpoint != BANNER_ENDPOINT


def _is_fragment_swap(response: Response) -> bool:
    """An htmx fragment that htmx will swap (see htmx-config in base.html), not the banner's own refresh."""
    status = response.status_code
    return (htmx.wants_fragment() and request.endpoint != BANNER_ENDPOINT and response.mimetype == "text/html"
            and not response.direct_passthrough and not response.is_streamed
            and "HX-Redirect" not in response.headers and ((200 <= status < 300 and status != 204)
                                                           or status in (409, 422)))


def _record(record: Impersonation, response: Response) -> None:
    action = {"impersonation_id": record.id, "method": request.method, "path": request.full_path.rstrip("?"),
              "endpoint": request.endpoint, "status_code": response.status_code}
    for attempt in (1, 2):
        try:
            service.record_action(**action)
            return
        except SQLAlchemyError:
            # A request that failed may leave its transaction aborted: start clean, then try once more.
            db.session.rollback()
            if attempt == 2:  # the response stands; the failure is loud in the log
                log.exception("could not record an action of impersonation %s: %s %s", action["impersonation_id"],
                              request.method, request.path)
