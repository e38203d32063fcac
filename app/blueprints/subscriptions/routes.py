"""The customer's dashboard: subscriptions, their servers, cancel and resume, server controls, and access to the
servers (root password shown once, a new one, rebuild)."""

from __future__ import annotations

from flask import Response, abort, flash, g, make_response, redirect, render_template, request, url_for
from flask_login import current_user

from app.blueprints.subscriptions import bp
from app.blueprints.subscriptions.forms import (
    CancelForm,
    EmptyForm,
    PlanChangeForm,
    RebuildForm,
    SwitchForm,
    VersionForm,
)
from app.domain.geography import location_label
from app.domain.marketplace_billing import (
    billed_by,
    canceled_at_marketplace,
    managed_at_marketplace,
    where_to_manage,
)
from app.domain.marketplaces import Marketplace
from app.domain.plan_changes import ChangeAction
from app.domain.subscriptions import (
    Action,
    ChargeOutlook,
    SubscriptionStatus,
    charge_outlook,
    refusal_message,
    shown_status,
)
from app.models import Subscription, SubscriptionItem
from app.selectors import subscriptions as selectors
from app.services import backorders, marketplace_microsoft, plan_changes, server_access, servers, subscriptions
from app.services.errors import NotFound, ServiceError
from app.services.ordering import PaymentMethodRequired
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
    servers = {item.id: item.name for item in subscription.items}
    return {"subscription": subscription, "events": selectors.history(subscription), "servers": servers}


def _at_marketplace(subscription: Subscription, *, cancel: bool = False) -> Response | None:
    """For a subscription whose plan (or, with `cancel`, cancellation) is changed at its marketplace: back to its
    page, saying where."""
    marketplace = subscription.marketplace
    if marketplace is None or not (canceled_at_marketplace(marketplace) if cancel
                                   else managed_at_marketplace(marketplace)):
        return None
    flash(where_to_manage(marketplace), "info")
    return redirect(url_for(".detail", subscription_id=subscription.id), 303)


def _billing(subscription: Subscription) -> dict[str, object]:
    """Who bills it: a marketplace subscription promises no charge of the portal's and says where it is managed."""
    marketplace = subscription.marketplace
    if marketplace is None:
        return {"billed_by": None, "managed_at_marketplace": False, "canceled_at_marketplace": False,
                "outlook": charge_outlook(subscription.status, price_minor=subscription.price_minor,
                                          auto_renew=subscription.auto_renew,
                                          period_end=subscription.current_period_end)}
    return {"billed_by": billed_by(marketplace), "where_to_manage": where_to_manage(marketplace),
            "managed_at_marketplace": managed_at_marketplace(marketplace),
            "canceled_at_marketplace": canceled_at_marketplace(marketplace), "outlook": ChargeOutlook(None)}


def _summary_context(subscription: Subscription) -> dict[str, object]:
    backorder = selectors.waiting_backorder(subscription)
    return {"subscription": subscription, "backorder": backorder,
            "status": shown_status(subscription.status, waiting_for_capacity=backorder is not None),
            "backorder_position": selectors.backorder_position(backorder) if backorder else None,
            "alternatives": backorders.alternatives_for(g.tenant, subscription) if backorder else [],
            "suspension": selectors.last_event(subscription, "suspend")
            if subscription.status is SubscriptionStatus.SUSPENDED else None,
            "version_form": VersionForm(version=subscription.version),
            "changeable": plan_changes.changeable(subscription)
            and not managed_at_marketplace(subscription.marketplace),
            "scheduled_change": subscription.scheduled_change, **_billing(subscription)}


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
    if (elsewhere := _at_marketplace(subscription, cancel=True)) is not None:
        return elsewhere
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
    if (elsewhere := _at_marketplace(_own(subscription_id, items=False), cancel=True)) is not None:
        return elsewhere
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



# --- plan changes: choose, preview, confirm; a scheduled change canceled ------------------------------------------

def _change_action(change: str) -> ChangeAction:
    try:
        return ChangeAction(change)
    except ValueError:
        abort(404)


def _whole_number(name: str) -> tuple[int | None, str | None]:
    """A query argument as a positive whole number: (value, None), (None, None) when absent, else a message."""
    text = request.args.get(name, "").strip()
    if not text:
        return None, None
    if not text.isdigit() or len(text) > 9 or int(text) < 1:
        return None, "Enter a whole number of at least 1." if name == "quantity" else "Choose a plan from the list."
    return int(text), None


@bp.route("/<int:subscription_id>/change/<change>", methods=["GET", "POST"])
@customer_required
def change_plan(subscription_id: int, change: str) -> Response | tuple[str, int]:
    """Change plan, Change quantity or Migrate: choose (GET without a choice), preview (GET), confirm (POST)."""
    action = _change_action(change)
    subscription = _own(subscription_id)
    if (elsewhere := _at_marketplace(subscription)) is not None:
        return elsewhere
    if subscription.marketplace is Marketplace.MICROSOFT:
        return _change_at_microsoft(subscription, action)
    if request.method == "POST":
        return _confirm_change(subscription, action)
    plan_id, plan_problem = _whole_number("plan")
    quantity, quantity_problem = _whole_number("quantity")
    problem = plan_problem or quantity_problem
    chosen = action is ChangeAction.MIGRATE or (plan_id if action is ChangeAction.PLAN else quantity) is not None
    if problem or not chosen:
        return _change_page(subscription, action, problem=problem, status=400 if problem else 200)
    try:
        proposal = plan_changes.preview(tenant=g.tenant, actor=current_actor(), subscription_id=subscription_id,
                                        action=action, plan_id=plan_id, quantity=quantity)
    except PaymentMethodRequired:
        # The payment methods page says why, then brings the customer back to this preview.
        return redirect(url_for("billing.methods", next=request.full_path.rstrip("?")), 303)
    except ServiceError as error:  # NotFound here is a plan that is not theirs to choose: said, not a 404
        return _change_page(subscription, action, problem=error.message, status=error.status_code)
    form = PlanChangeForm(version=subscription.version, plan=plan_id, quantity=quantity)
    return render_template("subscriptions/change_preview.html", subscription=subscription, action=action,
                           proposal=proposal, preview=proposal.preview, form=form), 200


def _change_at_microsoft(subscription: Subscription, action: ChangeAction) -> Response | tuple[str, int]:
    """Microsoft bills it, so the change is asked of Microsoft (which prorates it) and applied here once
    Microsoft confirms it: choose (GET), ask (POST)."""
    if action is ChangeAction.MIGRATE:
        abort(404)
    plans = marketplace_microsoft.change_targets(g.tenant, subscription) if action is ChangeAction.PLAN else []
    if request.method == "GET":
        return render_template("subscriptions/change_at_microsoft.html", subscription=subscription, action=action,
                               plans=plans, problem=None, form=PlanChangeForm(version=subscription.version)), 200
    form = PlanChangeForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        marketplace_microsoft.request_change(g.tenant, current_actor(), subscription.id,
                                             plan_id=form.plan.data if action is ChangeAction.PLAN else None,
                                             quantity=form.quantity.data if action is ChangeAction.QUANTITY else None,
                                             version=form.version.data)
    except ServiceError as error:
        return render_template("subscriptions/change_at_microsoft.html", subscription=subscription, action=action,
                               plans=plans, problem=error.message, form=form), error.status_code
    flash("We asked Microsoft for the change. It applies here as soon as Microsoft confirms it, usually within a "
          "minute; Microsoft bills the difference.", "success")
    return redirect(url_for(".detail", subscription_id=subscription.id), 303)


def _change_page(subscription: Subscription, action: ChangeAction, *, problem: str | None, status: int
                 ) -> tuple[str, int]:
    plans = plan_changes.targets(g.tenant, subscription) if action is ChangeAction.PLAN else []
    return render_template("subscriptions/change.html", subscription=subscription, action=action, plans=plans,
                           prices=plan_changes.target_prices(subscription, plans),
                           problem=problem, changeable=plan_changes.changeable(subscription)), status


def _confirm_change(subscription: Subscription, action: ChangeAction) -> Response | tuple[str, int]:
    form = PlanChangeForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        proposal = plan_changes.apply(tenant=g.tenant, actor=current_actor(), subscription_id=subscription.id,
                                      action=action, version=form.version.data, plan_id=form.plan.data,
                                      quantity=form.quantity.data)
    except PaymentMethodRequired:
        return redirect(url_for("billing.methods", next=url_for(
            ".change_plan", subscription_id=subscription.id, change=action.value, plan=form.plan.data,
            quantity=form.quantity.data)), 303)
    except ServiceError as error:
        flash(error.message, "error")
    else:
        found = proposal.preview
        flash(f"Your subscription is now on {proposal.target.name}." if found.immediate else
              f"Your change to {proposal.target.name} is scheduled for {found.effective_at:%-d %b %Y}. "
              "You can cancel it until then.", "success")
    return redirect(url_for(".detail", subscription_id=subscription.id), 303)


@bp.post("/<int:subscription_id>/scheduled-change/cancel")
@customer_required
def cancel_scheduled_change(subscription_id: int) -> Response:
    form = VersionForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        plan_changes.cancel_scheduled(tenant=g.tenant, actor=current_actor(), subscription_id=subscription_id,
                                      version=form.version.data)
    except NotFound:
        abort(404)
    except ServiceError as error:
        flash(error.message, "error")
    else:
        flash("The scheduled change is canceled: your subscription stays on its plan.", "success")
    return redirect(url_for(".detail", subscription_id=subscription_id), 303)


# --- access: the root password shown once, a new one (Hetzner), rebuild -------------------------------------

NOTHING_WAITING = ("There is no root password waiting: it was shown already, perhaps in another tab, and is not "
                   "kept.")


def _access_fragment(subscription_id: int, item_id: int, *, password: str | None = None,
                     message: str | None = None, status: int = 200) -> tuple[str, int]:
    found = selectors.customer_item(g.tenant, current_user, subscription_id, item_id)
    if found is None:
        abort(404)
    page = render_template("subscriptions/_access.html", subscription=found.subscription, item=found,
                           password=password, password_for=item_id, message=message)
    return page, status


def _with_password(subscription_id: int, item_id: int, password: str | None, message: str | None = None
                   ) -> Response | tuple[str, int]:
    """The password shown in the server's access box: the box alone for htmx, else the whole page."""
    if password is None and message is None:
        message = NOTHING_WAITING
    if htmx.wants_fragment():
        return htmx.trigger(make_response(_access_fragment(subscription_id, item_id, password=password,
                                                           message=message)), HISTORY_CHANGED)
    subscription = _own(subscription_id)
    return render_template("subscriptions/detail.html", password=password, password_for=item_id,
                           access_message=message, **{**_history_context(subscription),
                                                      **_summary_context(subscription)}), 200


def _refused(subscription_id: int, item_id: int, error: ServiceError) -> Response | tuple[str, int]:
    if not htmx.wants_fragment():
        flash(error.message, "error")
        return redirect(url_for(".detail", subscription_id=subscription_id), 303)
    status = 409 if error.status_code == 409 else 422  # swapped in place (htmx-config in base.html)
    return _access_fragment(subscription_id, item_id, message=error.message, status=status)


@bp.post("/<int:subscription_id>/items/<int:item_id>/root-password")
@customer_required
def reveal_password(subscription_id: int, item_id: int) -> Response | tuple[str, int]:
    """Show the root password waiting for the customer, once: it is forgotten as it is shown."""
    if not EmptyForm().validate_on_submit():
        abort(400)
    try:
        password = server_access.reveal_root_password(tenant=g.tenant, actor=current_actor(),
                                                      subscription_id=subscription_id, item_id=item_id)
    except NotFound:
        abort(404)
    except ServiceError as error:
        return _refused(subscription_id, item_id, error)
    return _with_password(subscription_id, item_id, password)


@bp.post("/<int:subscription_id>/items/<int:item_id>/root-password/reset")
@customer_required
def reset_password(subscription_id: int, item_id: int) -> Response | tuple[str, int]:
    """A new root password from the cloud (Hetzner), shown at once, and only this once."""
    if not EmptyForm().validate_on_submit():
        abort(400)
    actor = current_actor()
    try:
        server_access.reset_root_password(tenant=g.tenant, actor=actor, subscription_id=subscription_id,
                                          item_id=item_id)
        password = server_access.reveal_root_password(tenant=g.tenant, actor=actor,
                                                      subscription_id=subscription_id, item_id=item_id)
    except NotFound:
        abort(404)
    except ServiceError as error:
        return _refused(subscription_id, item_id, error)
    return _with_password(subscription_id, item_id, password)


@bp.route("/<int:subscription_id>/items/<int:item_id>/rebuild", methods=["GET", "POST"])
@customer_required
def rebuild(subscription_id: int, item_id: int) -> Response | tuple[str, int]:
    """Reinstall the server from one of its plan's images, once its name is typed."""
    found = selectors.customer_item(g.tenant, current_user, subscription_id, item_id)
    if found is None:
        abort(404)
    form = RebuildForm(image=found.config.get("image"))
    form.image.choices = list(server_access.images_for(found))
    if not form.validate_on_submit():
        return _rebuild_page(found, form, 400 if form.errors else 200)
    try:
        server_access.rebuild(tenant=g.tenant, actor=current_actor(), subscription_id=subscription_id,
                              item_id=item_id, image=form.image.data, confirm=form.confirm.data)
    except NotFound:
        abort(404)
    except ServiceError as error:
        if error.field in ("image", "confirm"):
            form[error.field].errors = [*form[error.field].errors, error.message]
        else:
            form.form_errors.append(error.message)
        return _rebuild_page(found, form, error.status_code)
    flash(f"{found.name} is being rebuilt from {form.image.data}. It is back in a few minutes.", "success")
    return redirect(url_for(".detail", subscription_id=subscription_id), 303)


def _rebuild_page(item: SubscriptionItem, form: RebuildForm, status: int) -> tuple[str, int]:
    return render_template("subscriptions/rebuild.html", item=item, subscription=item.subscription, form=form), status
