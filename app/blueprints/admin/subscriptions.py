"""The tenant admin's subscriptions: find any of the tenant's, then suspend, reinstate, cancel it or keep a
canceled one's servers longer, each with a reason that its history keeps."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from flask import Response, abort, flash, g, redirect, render_template, request, url_for
from flask_wtf import FlaskForm

from app.blueprints.admin import bp
from app.blueprints.admin.forms import (
    CancelForm,
    KeepLongerForm,
    ReinstateForm,
    SubscriptionFilterForm,
    SuspendForm,
)
from app.domain.policy import Verdict, decide
from app.domain.subscriptions import Action, SubscriptionStatus, allowed_actions, format_day
from app.models import Subscription
from app.selectors import staff
from app.selectors.subscriptions import history
from app.services import lifecycle, subscriptions
from app.services.actors import Actor
from app.services.errors import Conflict, NotFound, ServiceError
from app.web import htmx
from app.web.access import current_actor, tenant_admin_required

KEEP_LONGER = "keep_longer"
STAFF_ACTIONS = (Action.SUSPEND, Action.REINSTATE, Action.CANCEL)  # resume stays the customer's decision
FORMS: dict[str, type[FlaskForm]] = {Action.SUSPEND.value: SuspendForm, Action.REINSTATE.value: ReinstateForm,
                                     Action.CANCEL.value: CancelForm, KEEP_LONGER: KeepLongerForm}


@bp.get("/subscriptions")
@tenant_admin_required
def subscription_list() -> str:
    form = SubscriptionFilterForm(request.args)
    status, query = form.chosen()
    page = request.args.get("page", 1, type=int) or 1
    return htmx.render("admin/subscriptions.html", "admin/_subscription_results.html", form=form,
                       params=form.params(), results=staff.find_subscriptions(g.tenant, status=status, query=query,
                                                                              page=page))


@bp.get("/subscriptions/<int:subscription_id>")
@tenant_admin_required
def subscription(subscription_id: int) -> tuple[str, int]:
    return _page(subscription_id)


def admin_actions(subscription: Subscription, actor: Actor) -> frozenset[str]:
    """The actions this page offers: those the lifecycle allows from the status that the actor may take."""
    offered = {action.value for action in allowed_actions(subscription.status) if action in STAFF_ACTIONS
               and decide(actor.kind, lifecycle.PERMISSION[action], owns=False) is Verdict.ALLOW}  # type: ignore[arg-type]
    if subscription.status is SubscriptionStatus.CANCELED and subscription.purged_at is None:
        offered.add(KEEP_LONGER)
    return frozenset(offered)


def _page(subscription_id: int, failed: tuple[str, FlaskForm] | None = None, problem: str | None = None,
          status: int = 200) -> tuple[str, int]:
    """The detail page; after a refused action, with that form as it was sent and what went wrong."""
    subscription = staff.subscription_for_staff(g.tenant, subscription_id)
    if subscription is None:
        abort(404)
    actions = admin_actions(subscription, current_actor())
    forms = {name: form(prefix=name, version=subscription.version, formdata=None) for name, form in FORMS.items()}
    if failed:
        name, form = failed
        forms[name] = form
        if name not in actions and problem is None:  # its form is not on the page: say why here
            problem = " ".join(message for messages in form.errors.values() for message in messages)
    if subscription.servers_delete_at:  # the date picker starts on the first day that keeps them longer
        first = subscription.servers_delete_at.date() + timedelta(days=1)
        forms[KEEP_LONGER].until.render_kw = {"min": first.isoformat()}
    return render_template(
        "admin/subscription.html", subscription=subscription, actions=actions, forms=forms, problem=problem,
        events=history(subscription), servers={item.id: item.name for item in subscription.items},
        cancel_outcome=subscription.cancel_outcome() if Action.CANCEL.value in actions else None,
    ), status


def _act(subscription_id: int, name: str, call: Callable[[Any], str]) -> Response | tuple[str, int]:
    """Read the action's form, call its service, and answer: back to the page with what happened, or the page
    again with what went wrong (nothing changed)."""
    form = FORMS[name](prefix=name)
    if not form.validate_on_submit():
        return _page(subscription_id, (name, form), status=400)
    try:
        message = call(form)
    except NotFound:
        abort(404)
    except Conflict as error:  # a stale page: show the current state, with fresh forms
        return _page(subscription_id, problem=error.message, status=error.status_code)
    except ServiceError as error:
        field = getattr(form, error.field, None) if error.field else None
        if field is not None:
            field.errors = [*field.errors, error.message]
            return _page(subscription_id, (name, form), status=error.status_code)
        return _page(subscription_id, (name, form), problem=error.message, status=error.status_code)
    flash(message, "success")
    return redirect(url_for(".subscription", subscription_id=subscription_id), 303)


@bp.post("/subscriptions/<int:subscription_id>/suspend")
@tenant_admin_required
def suspend_subscription(subscription_id: int) -> Response | tuple[str, int]:
    def call(form: SuspendForm) -> str:
        changed = subscriptions.suspend(tenant=g.tenant, actor=current_actor(), subscription_id=subscription_id,
                                        reason=form.reason.data, version=form.version.data,
                                        grace_ends_at=form.grace_ends_at)
        return (f"Subscription #{changed.id} is suspended: its servers are powered off and their controls are off. "
                f"Unless it is reinstated, it is canceled on {format_day(changed.effective_at)}.")

    return _act(subscription_id, Action.SUSPEND.value, call)


@bp.post("/subscriptions/<int:subscription_id>/reinstate")
@tenant_admin_required
def reinstate_subscription(subscription_id: int) -> Response | tuple[str, int]:
    def call(form: ReinstateForm) -> str:
        changed = subscriptions.reinstate(tenant=g.tenant, actor=current_actor(), subscription_id=subscription_id,
                                          reason=form.reason.data, version=form.version.data)
        return f"Subscription #{changed.id} is reinstated: its servers are powered on again."

    return _act(subscription_id, Action.REINSTATE.value, call)


@bp.post("/subscriptions/<int:subscription_id>/cancel")
@tenant_admin_required
def cancel_subscription(subscription_id: int) -> Response | tuple[str, int]:
    def call(form: CancelForm) -> str:
        changed = subscriptions.cancel(tenant=g.tenant, actor=current_actor(), subscription_id=subscription_id,
                                       reason=form.reason.data, version=form.version.data)
        if changed.status is SubscriptionStatus.PENDING_CANCEL:
            return (f"Subscription #{changed.id} ends on {format_day(changed.effective_at)}, at the end of its paid "
                    "period. Until then the customer can resume it.")
        return f"Subscription #{changed.id} is canceled. Its timeline shows when its servers are deleted."

    return _act(subscription_id, Action.CANCEL.value, call)


@bp.post("/subscriptions/<int:subscription_id>/keep-longer")
@tenant_admin_required
def keep_subscription_longer(subscription_id: int) -> Response | tuple[str, int]:
    def call(form: KeepLongerForm) -> str:
        changed = subscriptions.extend_retention(tenant=g.tenant, actor=current_actor(),
                                                 subscription_id=subscription_id, until=form.until_at,
                                                 reason=form.reason.data, version=form.version.data)
        return f"The servers of subscription #{changed.id} are kept until {format_day(changed.servers_delete_at)}."

    return _act(subscription_id, KEEP_LONGER, call)
