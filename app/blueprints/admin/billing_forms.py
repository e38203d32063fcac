"""Forms of the tenant admin's billing settings, payments and overdue pages."""

from __future__ import annotations

from datetime import datetime

from flask_wtf import FlaskForm
from wtforms import BooleanField, DateField, SelectChoice, SelectField, StringField, TextAreaField
from wtforms.validators import InputRequired

from app.blueprints.admin.forms import _not_too_far, _start_of, reason_field, strip
from app.domain.billing import PaymentStatus
from app.domain.countries import COUNTRIES


class BillingSettingsForm(FlaskForm):
    """Every setting but the tax rates, whose rows the view reads as lists (tax_country, tax_rate)."""

    seller_name = StringField("Legal name", filters=[strip], description="The seller named on every invoice.")
    seller_address = TextAreaField("Address", render_kw={"rows": 3})
    seller_vat_id = StringField("VAT id", filters=[strip], description="For example DE123456789. May be blank.")
    seller_country = SelectField("Country", choices=[SelectChoice(code, name) for code, name in COUNTRIES.items()])
    invoice_prefix = StringField("Invoice number prefix", filters=[strip],
                                 description="1 to 12 capital letters, digits or dashes: PREFIX-2026-000001.")
    reverse_charge = BooleanField("Reverse charge for business customers with a VAT id in another EU country")
    payment_terms_days = StringField("Payment terms (days)", filters=[strip],
                                     description="0 to 90 days after the invoice is issued; 0: due at once.",
                                     render_kw={"inputmode": "numeric"})
    retry_days = StringField("Retry a failed payment after (days)", filters=[strip],
                             description="Counted from the first try, separated by commas, increasing, 1 to 60: "
                                         "3, 5, 7 tries again on day 3, 5 and 7. Blank: no retries.")
    suspend_after_days = StringField("Suspend when unpaid (days after the due date)", filters=[strip],
                                     description="0 to 90 days.", render_kw={"inputmode": "numeric"})
    grace_days = StringField("Grace period (days)", filters=[strip],
                             description="1 to 365 days that a suspended subscription can still be reinstated by a "
                                         "payment; then it is canceled for non-payment.",
                             render_kw={"inputmode": "numeric"})


class PaymentFilterForm(FlaskForm):
    class Meta:
        csrf = False

    status = SelectField("Status", default="",
                         choices=[SelectChoice("", "All"), *(SelectChoice(s.value, s.label) for s in PaymentStatus)])

    def chosen(self) -> PaymentStatus | None:
        value = self.status.data if isinstance(self.status.data, str) else ""
        return PaymentStatus(value) if value in {s.value for s in PaymentStatus} else None


class ExtendGraceForm(FlaskForm):
    reason = reason_field("Why extend the grace period?")
    until = DateField("Cancel unless paid by", validators=[InputRequired("Choose a day.")])

    def validate_until(self, field: DateField) -> None:
        _not_too_far(field.data)

    @property
    def until_at(self) -> datetime:
        moment = _start_of(self.until.data)
        assert moment is not None  # validated
        return moment
