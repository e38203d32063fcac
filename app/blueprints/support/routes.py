"""The support area: find the tenant's customers, look at one, and act as them (impersonation)."""

from __future__ import annotations

from flask import Response, abort, current_app, flash, g, redirect, render_template, request, url_for
from flask_login import current_user

from app.blueprints.support import bp
from app.blueprints.support.forms import ImpersonateForm
from app.domain.profiles import LABELS
from app.models import User
from app.selectors import impersonation as impersonations
from app.selectors.customers import customer_for_staff, find_customers, recent_events
from app.selectors.emails import customer_emails
from app.selectors.subscriptions import customer_subscriptions
from app.services import impersonation
from app.services.errors import InvalidInput, NotFound, ServiceError
from app.web import htmx
from app.web.access import current_actor, impersonating_required, support_required
from app.web.impersonation import switch_to


@bp.get("/")
@support_required
def index() -> str:
    query = request.args.get("q", "")[:200]
    page = request.args.get("page", 1, type=int) or 1
    results = find_customers(g.tenant, query=query, page=page)
    return htmx.render("support/index.html", "support/_results.html", results=results, query=query)


def _customer(customer_id: int) -> User:
    customer = customer_for_staff(g.tenant, customer_id)
    if customer is None:
        abort(404)
    return customer


def _customer_page(customer: User, form: ImpersonateForm, status: int = 200) -> tuple[str, int]:
    subscriptions = customer_subscriptions(g.tenant, customer)
    page = render_template(
        "support/customer.html", customer=customer, form=form, labels=LABELS, subscriptions=subscriptions,
        events=recent_events(g.tenant, customer),
        servers={item.id: item.name for s in subscriptions for item in s.items},
        impersonations=impersonations.of_customer(g.tenant, customer), emails=customer_emails(g.tenant, customer),
        minutes=current_app.config["IMPERSONATION_MINUTES"],
    )
    return page, status


@bp.get("/customers/<int:customer_id>")
@support_required
def customer(customer_id: int) -> tuple[str, int]:
    return _customer_page(_customer(customer_id), ImpersonateForm())


@bp.post("/customers/<int:customer_id>/impersonate")
@support_required
def impersonate(customer_id: int) -> Response | tuple[str, int]:
    form = ImpersonateForm()
    shown = customer_for_staff(g.tenant, customer_id)  # None for staff and other tenants' users
    if not form.validate_on_submit():
        return _customer_page(shown, form, 400) if shown else abort(404)
    try:
        switch = impersonation.start(tenant=g.tenant, actor=current_actor(), customer_id=customer_id,
                                     reason=form.reason.data, minutes=current_app.config["IMPERSONATION_MINUTES"],
                                     remote_addr=request.remote_addr, user_agent=request.user_agent.string)
    except NotFound:
        abort(404)
    except ServiceError as error:
        if shown is None:
            abort(error.status_code, error.message)
        if isinstance(error, InvalidInput):
            form.reason.errors = [*form.reason.errors, error.message]
        else:
            form.form_errors.append(error.message)
        return _customer_page(shown, form, error.status_code)
    switch_to(switch.user, switch.impersonation)
    flash(f"You are now acting as {switch.user.name}. Everything you do is recorded.", "warning")
    return redirect(url_for("subscriptions.index"), 303)


@bp.post("/impersonation/stop")
@impersonating_required
def stop_impersonating() -> Response:
    record = g.impersonation
    customer_id, name = record.customer_id, record.customer.name
    try:
        switch = impersonation.stop(tenant=g.tenant, session_token=current_user.session_token,
                                    remote_addr=request.remote_addr, user_agent=request.user_agent.string)
    except NotFound:
        abort(404)
    switch_to(switch.user)
    if switch.user is None:
        return redirect(url_for("auth.login"), 303)
    flash(f"You stopped acting as {name}.", "success")
    return redirect(url_for(".customer", customer_id=customer_id), 303)


@bp.get("/impersonation/banner")
def impersonation_banner() -> Response | str:
    """The banner alone, for its own refresh (the time left).

    Once no impersonation runs in this browser (stopped in another tab, ended elsewhere), the page it sits on
    is stale: htmx reloads it. An expired one never gets here (app/web/impersonation.py ends it first).
    """
    if g.get("impersonation") is None:
        response = Response("", 200)
        response.headers["HX-Refresh"] = "true"
        return response
    return render_template("_partials/_impersonation_banner.html")
