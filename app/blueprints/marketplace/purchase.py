"""A marketplace purchase, from the customer's arrival to its subscription.

Each marketplace's entry page (Microsoft's landing page, STACKIT's sign-up URL) resolves the purchase and
hands it to `continue_with`: a purchase set up already leads to its subscription (Microsoft's "Manage SaaS
experience"); a new one to its page here, which this browser may open (a signed cookie remembers it across
signing in and registering). There the customer signs in or registers (the purchaser's address prefilled),
then sets it up: the plan's defaults, a server name and keys. Setting up is idempotent.
"""

from __future__ import annotations

from flask import Response, abort, current_app, flash, g, make_response, redirect, render_template, url_for
from flask_login import current_user

from app.blueprints.marketplace import bp
from app.blueprints.marketplace.forms import SetUpForm
from app.domain import server_names
from app.domain.accounts import Role
from app.domain.catalogue import Provider
from app.models import MarketplaceSubscription, Plan
from app.selectors.ssh_keys import KeyRow, customer_keys
from app.services import marketplaces, ordering
from app.services.errors import InvalidInput, NotFound, ServiceError
from app.web.access import current_actor
from app.web.marketplace_purchases import forget, remember, remembered


def continue_with(found: MarketplaceSubscription) -> Response:
    """Where a customer who arrived with `found` goes next."""
    if found.subscription_id is not None:
        return redirect(url_for("subscriptions.detail", subscription_id=found.subscription_id), 303)
    return remember(redirect(url_for("marketplace.purchase", purchase_id=found.id), 303), found.id)


def _purchase(purchase_id: int) -> MarketplaceSubscription:
    """The purchase, if this browser arrived with it (or its owner is signed in); 404 otherwise."""
    try:
        found = marketplaces.purchase(g.tenant, purchase_id)
    except NotFound:
        abort(404)
    owned = (found.subscription is not None and current_user.is_authenticated
             and found.subscription.user_id == current_user.id)
    if remembered() != purchase_id and not owned:
        abort(404)
    return found


def _keys(found: MarketplaceSubscription) -> list[KeyRow] | None:
    plan = _plan(found)
    if plan is None or plan.service_type.provider is Provider.NONE or not current_user.is_authenticated:
        return None
    return customer_keys(g.tenant, current_user)


def _plan(found: MarketplaceSubscription) -> Plan | None:
    return marketplaces.plan_for(g.tenant, found.marketplace, found.offer_id, found.external_plan_id)


def _page(found: MarketplaceSubscription, form: SetUpForm, status: int = 200, problem: str | None = None
          ) -> tuple[str, int]:
    keys = _keys(found)
    customer = current_user.is_authenticated and current_user.role is Role.CUSTOMER
    domain = server_names.tenant_domain(g.tenant.slug, current_app.config["DNS_BASE_DOMAIN"])
    form.hostname.description = f"Lowercase letters, digits and hyphens. It is reached at <name>.{domain}."
    return render_template("marketplace/purchase.html", purchase=found, plan=_plan(found), form=form, keys=keys,
                           customer=customer, problem=problem), status


@bp.get("/marketplace/purchases/<int:purchase_id>")
def purchase(purchase_id: int) -> Response | tuple[str, int]:
    found = _purchase(purchase_id)
    if found.subscription_id is not None:
        return redirect(url_for("subscriptions.detail", subscription_id=found.subscription_id), 303)
    form = SetUpForm(formdata=None)
    form.hostname.data = server_names.suggest()
    keys = _keys(found) or []
    form.ssh_keys.data = [key.id for key in keys if key.is_default]
    return _page(found, form)


@bp.post("/marketplace/purchases/<int:purchase_id>")
def set_up(purchase_id: int) -> Response | tuple[str, int]:
    found = _purchase(purchase_id)
    if not current_user.is_authenticated:
        return redirect(url_for("auth.login", next=url_for("marketplace.purchase", purchase_id=purchase_id)), 303)
    form = SetUpForm()
    form.ssh_keys.data = form.ssh_keys.data or []
    if current_user.role is not Role.CUSTOMER:
        return _page(found, form, 403, "Only a customer account can set up a purchase. Please sign in as the "
                                       "customer who bought it.")
    if not form.validate_on_submit():
        return _page(found, form, 400)
    try:
        subscription = marketplaces.claim(tenant=g.tenant, actor=current_actor(), purchase_id=purchase_id,
                                          hostname=form.hostname.data or None, ssh_key_ids=form.ssh_keys.data)
    except ordering.ConfigInvalid as error:
        return _page(found, form, 400, " ".join(f"{name}: {message}" for name, message in error.errors.items()))
    except InvalidInput as error:
        if error.field in ("hostname", "ssh_keys"):
            getattr(form, error.field).errors = [*getattr(form, error.field).errors, error.message]
            return _page(found, form, 400)
        return _page(found, form, 400, error.message)
    except ordering.Unavailable as error:
        return _page(found, form, 409, f"{error.message} Nothing was set up: please try again later.")
    except ServiceError as error:
        return _page(found, form, 503, error.message)
    flash(f"Your subscription is being set up. {found.marketplace.label} starts billing it when its servers are "
          "ready.", "success")
    return forget(make_response(redirect(url_for("subscriptions.detail", subscription_id=subscription.id), 303)))
