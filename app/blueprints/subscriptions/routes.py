"""The customer's dashboard: subscriptions, their servers, cancel and resume, server controls."""

from __future__ import annotations

from flask import Response, abort, flash, g, make_response, redirect, render_template, url_for
from flask_login import current_user

from app.blueprints.subscriptions import bp
from app.blueprints.subscriptions.forms import CancelForm, SwitchForm, VersionForm
from app.domain.geography import location_label
from app.domain.subscriptions import Action, SubscriptionStatus, refusal_message, shown_status
from app.models import Subscription
from app.selectors import subscriptions as selectors
from app.services import backorders, servers, subscriptions
from app.services.errors import NotFound, ServiceError
from app.services.servers import PowerCommand
from app.web import htmx
from app.web.access import current_actor, customer_required

HISTORY_CHANGED = "history-changed"


def _own(subscription_id: int, *, items: bool = True) -> Subscription:
    subscription = selectors.customer_subscription(g.tenant, current_user, subscription_id, items=items)
    if subscription is None:
        abort(404)
    return subscription


@bp.get("/")
@customer_required
def index() -> str:
    return render_template("subscriptions/index.html",
                           subscriptions=selectors.dashboard_rows(g.tenant, current_user))


@bp.get("/<int:subscription_id>")
@customer_required
def detail(subscription_id: int) -> str:
    subscription = _own(subscription_id)
    return render_template("subscriptions/detail.html", **{**_history_context(subscription),
                                                          **_summary_context(subscription)})


@bp.get("/<int:subscription_id>/summary")
@customer_required
def summary(subscription_id: int) -> str:
    return render_template("subscriptions/_summary.html", **_summary_context(_own(subscription_id, items=False)))


@bp.get("/<int:subscription_id>/history")
@customer_required
def history(subscription_id: int) -> str:
    """The history region alone: it refreshes while something runs and after each power action."""
    return render_template("subscriptions/_history_panel.html", **_history_context(_own(subscription_id)))


def _history_context(subscription: Subscription) -> dict[str, object]:
    # Item events name their server: with several servers "Server created" alone says too little.
    servers = {item.id: item.hostname or f"Server {item.id}" for item in subscription.items}
    return {"subscription": subscription, "events": selectors.history(subscription), "servers": servers}


def _summary_context(subscription: Subscription) -> dict[str, object]:
    backorder = selectors.waiting_backorder(subscription)
    return {"subscription": subscription, "backorder": backorder,
            "status": shown_status(subscription.status, waiting_for_capacity=backorder is not None),
            "backorder_position": selectors.backorder_position(backorder) if backorder else None,
            "alternatives": backorders.alternatives_for(g.tenant, subscription) if backorder else [],
            "suspension": selectors.last_event(subscription, "suspend")
            if subscription.status is SubscriptionStatus.SUSPENDED else None,
            "version_form": VersionForm(version=subscription.version)}


@bp.get("/<int:subscription_id>/items/<int:item_id>")
@customer_required
def item(subscription_id: int, item_id: int) -> str:
    found = selectors.customer_item(g.tenant, current_user, subscription_id, item_id)
    if found is None:
        abort(404)
    return render_template("subscriptions/_item.html", subscription=found.subscription, item=found,
                           backorder=selectors.waiting_backorder(found.subscription))


@bp.get("/<int:subscription_id>/items/<int:item_id>/server-info")
@customer_required
def server_info(subscription_id: int, item_id: int) -> str:
    return _server_fragment(subscription_id, item_id)


def _server_fragment(subscription_id: int, item_id: int, message: str | None = None, status: int = 200
                     ) -> tuple[str, int]:
    try:
        info, error = servers.live_info(tenant=g.tenant, viewer=current_user, subscription_id=subscription_id,
                                        item_id=item_id), None
    except NotFound:
        abort(404)
    except ServiceError as problem:
        info, error = None, problem.message
    found = selectors.customer_item(g.tenant, current_user, subscription_id, item_id)
    page = render_template("subscriptions/_server.html", subscription=found.subscription, item=found, info=info,
                           error=error, message=message)
    return page, status


@bp.post("/<int:subscription_id>/items/<int:item_id>/actions/<command>")
@customer_required
def power(subscription_id: int, item_id: int, command: str) -> Response | tuple[str, int]:
    try:
        chosen = PowerCommand(command)
    except ValueError:
        abort(404)
    try:
        servers.power(tenant=g.tenant, actor=current_actor(), subscription_id=subscription_id, item_id=item_id,
                      command=chosen)
    except NotFound:
        abort(404)
    except ServiceError as error:
        if not htmx.wants_fragment():
            flash(error.message, "error")
            return redirect(url_for(".detail", subscription_id=subscription_id), 303)
        # htmx swaps 409 and 422 (see htmx-config in base.html) so the message shows in place.
        status = 409 if error.status_code == 409 else 422
        return _server_fragment(subscription_id, item_id, message=error.message, status=status)
    if not htmx.wants_fragment():
        return redirect(url_for(".detail", subscription_id=subscription_id), 303)
    # The action is in the history now: the history region listens for this event and refreshes.
    return htmx.trigger(make_response(_server_fragment(subscription_id, item_id)), HISTORY_CHANGED)


@bp.route("/<int:subscription_id>/cancel", methods=["GET", "POST"])
@customer_required
def cancel(subscription_id: int) -> Response | tuple[str, int]:
    subscription = _own(subscription_id)
    if Action.CANCEL.value not in subscription.customer_actions:  # already canceled, or ending anyway
        flash(refusal_message(subscription.status, Action.CANCEL), "info")
        return redirect(url_for(".detail", subscription_id=subscription_id), 303)
    form = CancelForm(version=subscription.version)
    if not form.validate_on_submit():
        return render_template("subscriptions/cancel.html", subscription=subscription, form=form), (
            400 if form.errors else 200)
    try:
        changed = subscriptions.cancel(tenant=g.tenant, actor=current_actor(), subscription_id=subscription_id,
                                       version=form.version.data, reason=form.reason.data or "")
    except NotFound:
        abort(404)
    except ServiceError as error:
        flash(error.message, "error")
    else:
        flash("Your subscription is canceled." if changed.status == "canceled"
              else "Your cancellation is scheduled. You can resume until it takes effect.", "success")
    return redirect(url_for(".detail", subscription_id=subscription_id), 303)


@bp.post("/<int:subscription_id>/backorder/switch")
@customer_required
def switch(subscription_id: int) -> Response:
    form = SwitchForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        backorders.switch_to_alternative(tenant=g.tenant, actor=current_actor(), subscription_id=subscription_id,
                                         version=form.version.data, server_type=form.server_type.data,
                                         location=form.location.data)
    except NotFound:
        abort(404)
    except ServiceError as error:
        flash(error.message, "error")
    else:
        flash(f"Switched to {form.server_type.data} in {location_label(form.location.data)}.", "success")
    return redirect(url_for(".detail", subscription_id=subscription_id), 303)


@bp.post("/<int:subscription_id>/resume")
@customer_required
def resume(subscription_id: int) -> Response:
    form = VersionForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        subscriptions.resume(tenant=g.tenant, actor=current_actor(), subscription_id=subscription_id,
                             version=form.version.data)
    except NotFound:
        abort(404)
    except ServiceError as error:
        flash(error.message, "error")
    else:
        flash("Welcome back! Your subscription continues.", "success")
    target = url_for(".detail", subscription_id=subscription_id)
    return htmx.redirect(target) if htmx.wants_fragment() else redirect(target, 303)


