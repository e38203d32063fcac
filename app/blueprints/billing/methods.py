"""The customer's payment methods: list, add on the provider's hosted page, make default, remove
(app/services/payment_methods.py). Refused while support impersonates the customer."""

from __future__ import annotations

from collections.abc import Callable

from flask import Response, abort, flash, g, make_response, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm

from app.blueprints.billing import bp
from app.clock import now
from app.domain.billing import PaymentStatus, SetupStatus
from app.models import PaymentMethod
from app.selectors.payment_methods import customer_cards
from app.services import collection, payment_methods
from app.services.errors import NotFound, ServiceError
from app.services.payments import hosted_page_origin
from app.web import htmx
from app.web.access import current_actor, customer_required, not_while_impersonating
from app.web.redirects import safe_next
from app.web.security import CONTENT_SECURITY_POLICY, writes

WHAT = "payment methods"


class CsrfForm(FlaskForm):
    """Only the CSRF token."""


def _back(target: str | None = None) -> Response:
    target = target or url_for("billing.methods")
    return htmx.redirect(target) if htmx.wants_fragment() else redirect(target, 303)


def _invoice_id() -> int | None:
    value = request.values.get("invoice", "")
    return int(value) if value.isdigit() and len(value) < 12 else None


@bp.get("/billing/payment-methods")
@customer_required
def methods() -> Response:
    cards = customer_cards(g.tenant, current_user)
    last_card_problem = payment_methods.removal_problem(g.tenant, current_user) if len(cards) == 1 else None
    response = make_response(render_template(
        "billing/methods.html", cards=cards, form=CsrfForm(), today=now(), next_url=safe_next(request.args.get("next")),
        invoice_id=_invoice_id(), last_card_problem=last_card_problem))
    # "Add a card" is a form whose answer redirects to the provider's page: browsers check that redirect
    # against form-action, so this page (only) allows the provider's origin there.
    if origin := hosted_page_origin(g.tenant):
        response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY.replace(
            "form-action 'self'", f"form-action 'self' {origin}")
    return response


@bp.post("/billing/payment-methods/add")
@customer_required
@not_while_impersonating(WHAT)
def add_method() -> Response:
    if not CsrfForm().validate_on_submit():
        abort(400)
    try:
        url = payment_methods.start_setup(tenant=g.tenant, actor=current_actor(),
                                          next_url=safe_next(request.form.get("next")), invoice_id=_invoice_id())
    except NotFound:
        abort(404)
    except ServiceError as error:
        flash(error.message, "error")
        return _back()
    # The hosted page is another site: htmx must leave the portal for it, not swap it in.
    return htmx.redirect(url) if htmx.wants_fragment() else redirect(url, 303)


@bp.get("/billing/payment-methods/added")
@customer_required
@not_while_impersonating(WHAT)
def method_added() -> Response:
    writes()  # the return from the card page saves the card
    if request.args.get("cancelled"):
        flash("No card was added.", "info")
        return _back(payment_methods.cancelled_setup_next(tenant=g.tenant, actor=current_actor()) or None)
    session_id = request.args.get("session_id", "")
    if not session_id or len(session_id) > 100:
        abort(404)
    try:
        outcome = payment_methods.finish_setup(tenant=g.tenant, actor=current_actor(), session_id=session_id)
    except NotFound:
        abort(404)
    except ServiceError as error:
        flash(error.message, "error")
        return _back()
    if outcome.method is None:
        flash("The card was not saved. You can try again, with this card or another one." if
              outcome.status is SetupStatus.OPEN else "That card page has expired. Please add the card again.",
              "error")
        return _back()
    flash(f"{outcome.method.brand.title()} ending in {outcome.method.last4} saved"
          f"{' as your default card' if outcome.method.is_default else ''}.", "success")
    if outcome.invoice_id is not None:  # saved to pay an invoice with: pay it now
        _pay_with(outcome.invoice_id, outcome.method.id)
    return _back(outcome.next_url or None)


def _pay_with(invoice_id: int, method_id: int) -> None:
    """Pay the invoice the card was added for, and say how it went."""
    try:
        payment = collection.pay_invoice(tenant=g.tenant, actor=current_actor(), invoice_id=invoice_id,
                                         payment_method_id=method_id)
    except ServiceError as error:
        flash(error.message, "error")
        return
    if payment.status is PaymentStatus.SUCCEEDED:
        flash("The invoice is paid with the new card. Thank you.", "success")
    elif payment.status is PaymentStatus.FAILED:
        flash(f"The new card was declined for the invoice: {payment.failure_message}", "error")
    else:
        flash("The payment with the new card is on its way; the invoice shows it once the provider confirms.",
              "info")


@bp.post("/billing/payment-methods/<int:method_id>/default")
@customer_required
@not_while_impersonating(WHAT)
def make_default(method_id: int) -> Response:
    return _on_card(payment_methods.make_default, method_id,
                    "The card ending in {last4} is now your default: it is charged from now on.")


@bp.post("/billing/payment-methods/<int:method_id>/remove")
@customer_required
@not_while_impersonating(WHAT)
def remove_method(method_id: int) -> Response:
    return _on_card(payment_methods.remove, method_id, "The card ending in {last4} was removed.")


def _on_card(change: Callable[..., PaymentMethod], method_id: int, done: str) -> Response:
    """One of the customer's cards changed by the service `change`; `done` is said with the card's last four."""
    if not CsrfForm().validate_on_submit():
        abort(400)
    try:
        method = change(tenant=g.tenant, actor=current_actor(), method_id=method_id)
    except NotFound:
        abort(404)
    except ServiceError as error:
        flash(error.message, "error")
        return _back()
    flash(done.format(last4=method.last4), "success")
    return _back()
