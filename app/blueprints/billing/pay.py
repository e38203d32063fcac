"""The customer's "Pay now" on an open invoice: charged at once to the default card (or the one chosen), and the
outcome flashed on the invoice's page."""

from __future__ import annotations

from flask import Response, abort, flash, g, redirect, url_for
from flask_wtf import FlaskForm
from wtforms import IntegerField
from wtforms.validators import NumberRange, Optional
from wtforms.widgets import HiddenInput

from app.blueprints.billing import bp
from app.domain.billing import PaymentStatus
from app.services import collection
from app.services.errors import NotFound, ServiceError
from app.web.access import current_actor, customer_required, not_while_impersonating


class PayForm(FlaskForm):
    payment_method_id = IntegerField(widget=HiddenInput(), validators=[Optional(), NumberRange(min=1,
                                                                                               max=2**31 - 1)])


@bp.post("/billing/invoices/<int:invoice_id>/pay")
@customer_required
@not_while_impersonating("payments")
def pay(invoice_id: int) -> Response:
    form = PayForm()
    back = redirect(url_for(".invoice", invoice_id=invoice_id), 303)
    if not form.validate_on_submit():
        flash("The payment was not sent: please reload the page and try again.", "error")
        return back
    try:
        payment = collection.pay_invoice(tenant=g.tenant, actor=current_actor(), invoice_id=invoice_id,
                                         payment_method_id=form.payment_method_id.data)
    except NotFound:
        abort(404)
    except ServiceError as error:
        flash(error.message, "error")
        return back
    if payment.status is PaymentStatus.SUCCEEDED:
        flash("Thank you: the invoice is paid. A receipt is on its way to you by email.", "success")
    elif payment.status is PaymentStatus.FAILED:
        flash(f"The payment failed: {payment.failure_message} Please try another card.", "error")
    else:
        flash("The payment is being processed. This page shows it as paid once the payment provider confirms; "
              "you are never charged twice.", "info")
    return back
