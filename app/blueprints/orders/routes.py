"""Ordering a plan: the form, the live price and availability, and the order itself."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from flask import Response, abort, current_app, flash, g, redirect, render_template, request, url_for
from flask_login import current_user

from app.blueprints.orders import bp
from app.blueprints.orders.forms import OrderForm, order_form
from app.domain import server_names
from app.domain.availability import Alternative
from app.domain.catalogue import Provider
from app.domain.configuration import customer_fields, geography_key
from app.domain.pricing import Quote
from app.models import Plan
from app.selectors.ssh_keys import KeyRow, customer_keys
from app.services import ordering
from app.services.errors import InvalidInput, NotFound, ServiceError
from app.web.access import current_actor, customer_required


def _plan(plan_id: int) -> Plan:
    try:
        return ordering.orderable_plan(g.tenant, plan_id)
    except NotFound:
        abort(404)
    except InvalidInput as error:
        abort(410, error.message)


def _form(plan: Plan, keys: list[KeyRow] | None = None, **kwargs: object) -> OrderForm:
    """The plan's order form; `formdata` defaults to the POSTed form, as with any FlaskForm.

    A server plan's form comes with a suggested name and the customer's preselected keys ticked, unless the
    form was filled in already (submitted, or linked to with its choices: then what was ticked stays)."""
    schema = ordering.offered_schema(plan)
    fields = customer_fields(schema, plan.config_defaults, plan.allow_customer_location_selection)
    form = order_form(fields, **kwargs)
    if not form.idempotency_key.data:
        form.idempotency_key.data = uuid.uuid4().hex
    if keys is not None and not form.hostname.raw_data:  # not filled in (None without formdata, [] when absent)
        form.hostname.data = server_names.suggest()
        form.ssh_keys.data = [key.id for key in keys if key.is_default]
    form.ssh_keys.data = form.ssh_keys.data or []
    return form


def _keys(plan: Plan) -> list[KeyRow] | None:
    """The customer's keys, for a plan with servers (one statement); None for a plan without."""
    return customer_keys(g.tenant, current_user) if plan.service_type.provider is not Provider.NONE else None


def _fresh_key(form: OrderForm) -> OrderForm:
    """A key that is no key (too long, odd characters: a tampered form) is refused once, then replaced."""
    if not ordering.is_idempotency_key(form.idempotency_key.data):
        form.idempotency_key.data = uuid.uuid4().hex
    return form


def _page(plan: Plan, form: OrderForm, keys: list[KeyRow] | None, status: int = 200,
          unavailable: ordering.Unavailable | None = None) -> tuple[str, int]:
    alternatives = unavailable.availability.alternatives if unavailable else ()
    if keys is not None:
        domain = server_names.tenant_domain(g.tenant.slug, current_app.config["DNS_BASE_DOMAIN"])
        form.hostname.description = f"Lowercase letters, digits and hyphens. It is reached at <name>.{domain}."
    return render_template("orders/new.html", plan=plan, form=_fresh_key(form), unavailable=unavailable, keys=keys,
                           alternatives=[(alt, _choose(plan, form, alt)) for alt in alternatives],
                           quote=_quote_or_none(plan, form)), status


def _choose(plan: Plan, form: OrderForm, alternative: Alternative) -> str:
    """The order form again with `alternative` chosen and every other choice kept (image, quantity, ...)."""
    chosen = {**form.requested_config(), "serverType": alternative.server_type}
    if geo := geography_key(plan.service_type.config_schema):
        chosen[geo] = alternative.location
    if form.auto_backorder.data:
        chosen["auto_backorder"] = "y"
    return url_for("orders.new", plan_id=plan.id, quantity=form.quantity.data, **chosen, **_access(plan, form))


def _access(plan: Plan, form: OrderForm) -> dict[str, object]:
    """The server's name and ticked keys, for a link back to the form (nothing for a plan without servers)."""
    if plan.service_type.provider is Provider.NONE:
        return {}
    return {"hostname": form.hostname.data or "", "ssh_keys": form.ssh_keys.data or []}


def _quote_or_none(plan: Plan, form: OrderForm) -> object:
    try:
        return _price(plan, form.quantity.data or 1, form.requested_config())
    except InvalidInput:
        return None


def _price(plan: Plan, quantity: int, chosen: Mapping[str, Any]) -> Quote:
    """The price for what is chosen so far: the server type, and the location where the customer picks it."""
    geo = geography_key(plan.service_type.config_schema) or "location"
    server_type = chosen.get("serverType") or plan.config_defaults.get("serverType")
    location = (chosen.get(geo) if plan.allow_customer_location_selection else None) or plan.config_defaults.get(geo)
    return ordering.price(plan, quantity, server_type=server_type or None, location=location or None)


@bp.get("/order/<int:plan_id>")
@customer_required
def new(plan_id: int) -> tuple[str, int]:
    plan = _plan(plan_id)
    keys = _keys(plan)
    return _page(plan, _form(plan, keys, formdata=request.args or None), keys)


@bp.post("/order/<int:plan_id>")
@customer_required
def create(plan_id: int) -> Response | tuple[str, int]:
    plan = _plan(plan_id)
    form = _form(plan)
    if not form.validate():
        return _page(plan, form, _keys(plan), 400)
    try:
        subscription = ordering.place_order(
            tenant=g.tenant, actor=current_actor(), plan_id=plan.id, requested_config=form.requested_config(),
            quantity=form.quantity.data, auto_backorder=form.auto_backorder.data,
            idempotency_key=form.idempotency_key.data, hostname=_hostname(form), ssh_key_ids=form.ssh_keys.data or [],
        )
    except ordering.ProfileIncomplete:
        # The profile form explains why the customer is there (its note for `next`): no flash on top.
        return redirect(url_for("account.profile", next=_back_to_form(plan, form)), 303)
    except ordering.PaymentMethodRequired:
        # As with the profile: the payment methods page says why (its note for `next`), then comes back here.
        return redirect(url_for("billing.methods", next=_back_to_form(plan, form)), 303)
    except ordering.ConfigInvalid as error:
        _attach(form, error.errors)
        return _page(plan, form, _keys(plan), 400)
    except ordering.Unavailable as error:
        return _page(plan, form, _keys(plan), 409, unavailable=error)
    except ServiceError as error:
        _attach(form, {error.field or "": error.message})
        return _page(plan, form, _keys(plan), error.status_code)
    # What happens next (setting up, or waiting on the backorder list) is shown by the subscription page
    # itself, from the subscription's state: a flash saying so would outlive it.
    flash("Thank you! Your order is placed.", "success")
    return redirect(url_for("subscriptions.detail", subscription_id=subscription.id), 303)


def _back_to_form(plan: Plan, form: OrderForm) -> str:
    """The order form again with every choice kept, for a gate (profile, card) to send the customer back to."""
    return url_for("orders.new", plan_id=plan.id, quantity=form.quantity.data, **form.requested_config(),
                   **_access(plan, form))


def _hostname(form: OrderForm) -> str | None:
    """The name typed (an empty one is refused), or None from a form without the field (one loaded before
    servers were named): ordering then makes a name up."""
    return (form.hostname.data or "") if form.hostname.raw_data else None


def _attach(form: OrderForm, errors: dict[str, str]) -> None:
    for name, message in errors.items():
        if name in form:
            form[name].errors = [*form[name].errors, message]
        else:
            form.form_errors.append(message)


@bp.get("/order/<int:plan_id>/preview")
@customer_required
def preview(plan_id: int) -> str:
    """The price for the options chosen so far (an htmx fragment)."""
    plan = _plan(plan_id)
    try:
        quantity = int(request.args.get("quantity", "1").strip())
    except ValueError:
        return render_template("orders/_preview.html", plan=plan, quote=None,
                               error="The quantity must be a whole number.")
    try:
        quote, error = _price(plan, quantity, request.args), None
    except InvalidInput as problem:
        quote, error = None, problem.message
    return render_template("orders/_preview.html", plan=plan, quote=quote, error=error)


@bp.get("/order/<int:plan_id>/availability")
@customer_required
def availability(plan_id: int) -> str:
    """Whether the chosen server type can be placed in the chosen location now (an htmx fragment)."""
    plan = _plan(plan_id)
    if plan.service_type.provider is Provider.NONE:
        return ""
    form = _form(plan, formdata=request.args)
    try:
        draft = ordering.draft_order(plan, form.requested_config(), 1)
        result, error = ordering.check_availability(g.tenant, draft), None
    except ServiceError as problem:
        result, error = None, problem.message
    return render_template("orders/_availability.html", plan=plan, result=result, error=error)
