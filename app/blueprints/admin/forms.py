import re
from datetime import UTC, date, datetime, time, timedelta

from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import (
    BooleanField,
    DateField,
    IntegerField,
    PasswordField,
    SelectChoice,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional, ValidationError
from wtforms.widgets import HiddenInput

from app.clock import now
from app.domain.billing import CreditNoteMethod, CreditNoteReason, InvoiceStatus
from app.domain.catalogue import ChangeRule, Interval, Provider
from app.domain.subscriptions import DEFAULT_GRACE_PERIOD, SubscriptionStatus
from app.services.subscriptions import REASON_MAX_LENGTH

REASON_MIN_LENGTH = 3
QUERY_MAX_LENGTH = 200
# A date further ahead than this is a typo (and would overflow the date arithmetic of the timeline).
FURTHEST_DAYS_AHEAD = 3650


class CloudTokenForm(FlaskForm):
    token = PasswordField("API token", validators=[InputRequired(), Length(max=200)],
                          description="Stored encrypted. It is used only for this tenant's servers.",
                          render_kw={"autocomplete": "off"})


def strip(value: str | None) -> str | None:
    return value.strip() if isinstance(value, str) else value


class SubscriptionFilterForm(FlaskForm):
    """The list's filters, read from the query string; a value that is not one of the choices is ignored."""

    class Meta:
        csrf = False

    q = StringField("Search", filters=[strip, lambda value: value[:QUERY_MAX_LENGTH] if value else value],
                    render_kw={"placeholder": "Name, email or #id", "type": "search",
                               "maxlength": QUERY_MAX_LENGTH, "autocomplete": "off"})
    status = SelectField("Status", validators=[Optional()],
                         choices=[SelectChoice("", "Any status"),
                                  *(SelectChoice(s.value, s.label) for s in SubscriptionStatus)])

    def chosen(self) -> tuple[SubscriptionStatus | None, str]:
        """The status to keep (None: any, also for a value that is not a status) and the search text."""
        self.validate()
        status = SubscriptionStatus(self.status.data) if self.status.data and not self.status.errors else None
        return status, self.q.data or ""

    def params(self) -> dict[str, str]:
        """The filters in effect, for the pager's links."""
        status, query = self.chosen()
        return {key: value for key, value in (("status", status and status.value), ("q", query)) if value}


class VersionForm(FlaskForm):
    """The version of the subscription the admin saw; a change in between is refused, not applied."""

    version = IntegerField(validators=[InputRequired()], widget=HiddenInput())


def reason_field(label: str) -> TextAreaField:
    return TextAreaField(
        label, filters=[strip],
        validators=[DataRequired("Give a reason; it is kept in the subscription's history."),
                    Length(min=REASON_MIN_LENGTH, max=REASON_MAX_LENGTH)],
        description="Kept in the subscription's history, which the customer sees.",
        render_kw={"rows": 2, "maxlength": REASON_MAX_LENGTH},
    )


def _start_of(day: date | None) -> datetime | None:
    """A chosen day as the moment it starts, in UTC (the portal shows UTC days)."""
    return datetime.combine(day, time(), tzinfo=UTC) if day else None


def _not_too_far(day: date | None) -> None:
    if day is not None and day > now().date() + timedelta(days=FURTHEST_DAYS_AHEAD):
        raise ValidationError("Choose a day within the next ten years.")


class SuspendForm(VersionForm):
    reason = reason_field("Why suspend it?")
    grace_ends_on = DateField("Canceled unless reinstated by", validators=[Optional()],
                              description=f"Leave empty for {DEFAULT_GRACE_PERIOD.days} days from now.")

    def validate_grace_ends_on(self, field: DateField) -> None:
        if field.data is None:
            return
        if field.data <= now().date():
            raise ValidationError("Choose a day after today.")
        _not_too_far(field.data)

    @property
    def grace_ends_at(self) -> datetime | None:
        return _start_of(self.grace_ends_on.data)


class ReinstateForm(VersionForm):
    reason = reason_field("Why reinstate it?")


class CancelForm(VersionForm):
    reason = reason_field("Why cancel it?")


class KeepLongerForm(VersionForm):
    reason = reason_field("Why keep them longer?")
    until = DateField("Keep the servers until", validators=[InputRequired("Choose a day.")])

    def validate_until(self, field: DateField) -> None:
        _not_too_far(field.data)

    @property
    def until_at(self) -> datetime:
        moment = _start_of(self.until.data)
        assert moment is not None  # validated
        return moment


class SenderForm(FlaskForm):
    """Who the tenant's emails come from; blanks fall back to the tenant's name and the portal's address."""

    name = StringField("Sender name", filters=[strip], validators=[Optional(), Length(max=100)],
                       description="Shown as who the email is from. Blank: the tenant's name.")
    address = StringField("Sender address", filters=[strip], validators=[Optional(), Length(max=254)],
                          description="Blank: the portal's MAIL_DEFAULT_SENDER. The mail server must be allowed "
                                      "to send from it.", render_kw={"autocomplete": "off", "inputmode": "email"})


class UsageUploadForm(FlaskForm):
    file = FileField("CSV file", validators=[FileRequired("Choose a CSV file to upload.")],
                     description="UTF-8 text with the header subscription_id,metric,quantity,timestamp,"
                                 "idempotency_key; up to 10,000 rows.",
                     render_kw={"accept": ".csv,text/csv"})
class InvoiceFilterForm(FlaskForm):
    """The invoice list's filters, read from the query string; a value that does not fit is ignored."""

    class Meta:
        csrf = False

    status = SelectField("Status", validators=[Optional()],
                         choices=[SelectChoice("", "Any status"),
                                  *(SelectChoice(s.value, s.label) for s in InvoiceStatus)])
    email = StringField("Customer email", filters=[strip, lambda value: value[:QUERY_MAX_LENGTH] if value else value],
                        render_kw={"placeholder": "Customer email", "type": "search", "autocomplete": "off"})
    number = StringField("Number", filters=[strip, lambda value: value[:40] if value else value],
                         render_kw={"placeholder": "Number", "type": "search", "autocomplete": "off"})
    month = StringField("Month", filters=[strip], render_kw={"type": "month", "placeholder": "YYYY-MM"})

    def chosen(self) -> dict[str, object]:
        """The filters for the selector: status (None: any), email, number, month as (year, month) or None."""
        self.validate()
        status = InvoiceStatus(self.status.data) if self.status.data and not self.status.errors else None
        return {"status": status, "email": self.email.data or "", "number": self.number.data or "",
                "month": _month(self.month.data or "")}

    def params(self) -> dict[str, str]:
        """The filters in effect, for the pager's links."""
        chosen = self.chosen()
        month = chosen["month"]
        values = {"status": chosen["status"] and chosen["status"].value,  # type: ignore[attr-defined]
                  "email": chosen["email"], "number": chosen["number"],
                  "month": f"{month[0]:04d}-{month[1]:02d}" if month else ""}  # type: ignore[index]
        return {key: str(value) for key, value in values.items() if value}


def _month(text: str) -> tuple[int, int] | None:
    """(year, month) from "2027-03"; None for anything else."""
    match = re.fullmatch(r"(\d{4})-(\d{2})", text)
    if not match:
        return None
    year, month = int(match.group(1)), int(match.group(2))
    return (year, month) if 1 <= year <= 9998 and 1 <= month <= 12 else None


class CreditNoteForm(FlaskForm):
    """A credit note against a finalized invoice: how much (gross), why, and where the money goes."""

    amount = StringField("Amount, tax included", filters=[strip], validators=[DataRequired("Enter an amount.")],
                         render_kw={"inputmode": "decimal", "autocomplete": "off"})
    reason = SelectField("Reason", choices=[SelectChoice(r.value, r.label) for r in CreditNoteReason],
                         validators=[DataRequired("Choose a reason.")])
    memo = TextAreaField("Memo", filters=[strip], validators=[Optional(), Length(max=500)],
                         description="Optional; printed on the credit note.")
    method = SelectField("Where the money goes",
                         choices=[SelectChoice(CreditNoteMethod.BALANCE.value, "To the customer's balance"),
                                  SelectChoice(CreditNoteMethod.REFUND.value, "Refund to the card that paid")],
                         validators=[DataRequired()],
                         description="What is still due on the invoice is reduced first; only the rest goes "
                                     "to the balance or back to the card.")


# The catalogue ------------------------------------------------------------------------------------------------

RULE_CHOICES = [SelectChoice(ChangeRule.PERIOD_END.value, "At the period's end"),
                SelectChoice(ChangeRule.IMMEDIATE.value, "At once")]
SLUG_HELP = "Lowercase letters, digits and hyphens; part of addresses and the audit trail."


class ServiceTypeForm(FlaskForm):
    slug = StringField("Slug", filters=[strip], validators=[InputRequired(), Length(max=63)], description=SLUG_HELP)
    name = StringField("Name", filters=[strip], validators=[InputRequired(), Length(max=200)])
    provider = SelectField("Provider", choices=[SelectChoice(p.value, p.label) for p in Provider])
    config_schema = TextAreaField(
        "Config schema (JSON Schema)", validators=[InputRequired(), Length(max=100_000)],
        description="The provider config an order makes: serverType, location (Hetzner) or region (DigitalOcean) "
                    "and image, each with an enum of the choices plans may offer.",
        render_kw={"rows": 14, "spellcheck": "false", "class": "code"})
    cloud_init_template = TextAreaField(
        "Cloud-init template", validators=[Length(max=100_000)],
        description="Jinja, rendered in a sandbox with hostname and fqdn; the result must fit 32 KiB.",
        render_kw={"rows": 8, "spellcheck": "false", "class": "code"})


class ProductForm(FlaskForm):
    slug = StringField("Slug", filters=[strip], validators=[InputRequired(), Length(max=63)], description=SLUG_HELP)
    name = StringField("Name", filters=[strip], validators=[InputRequired(), Length(max=200)])
    description = TextAreaField("Description", validators=[Length(max=2000)], render_kw={"rows": 3})
    version = IntegerField("Version", default=1, validators=[InputRequired(), NumberRange(min=1, max=10_000)])


class PlanForm(FlaskForm):
    slug = StringField("Slug", filters=[strip], validators=[InputRequired(), Length(max=63)], description=SLUG_HELP)
    name = StringField("Name", filters=[strip], validators=[InputRequired(), Length(max=200)])
    description = TextAreaField("Description", validators=[Length(max=2000)], render_kw={"rows": 2})
    features = TextAreaField("Features", validators=[Length(max=4000)], render_kw={"rows": 3},
                             description="One per line, shown on the plan's card.")
    interval = SelectField("Billing interval", choices=[SelectChoice(Interval.MONTH.value, "Monthly"),
                                                        SelectChoice(Interval.YEAR.value, "Yearly")])
    prices = TextAreaField(
        "Server types and prices", validators=[Length(max=4000)], render_kw={"rows": 5, "class": "code"},
        description="One per line: the server type, its price per interval in cents, optionally its cost in "
                    "cents, e.g. “cx22 450 379”. All prices 0 make a free plan.")
    default_server_type = StringField("Default server type", filters=[strip], validators=[Length(max=63)])
    price_minor = IntegerField("Price in cents (plans without server types)", default=0,
                               validators=[Optional(), NumberRange(min=0, max=100_000_000)])
    locations = TextAreaField(
        "Locations", validators=[Length(max=4000)], render_kw={"rows": 4, "class": "code"},
        description="One per line: the location (or region), optionally a surcharge per interval in cents, "
                    "e.g. “ash 100”. Empty: every location of the service type, without surcharge.")
    default_location = StringField("Default location", filters=[strip], validators=[Length(max=63)])
    allow_customer_location_selection = BooleanField("The customer picks the location")
    images = StringField("Images", filters=[strip], validators=[Length(max=1000)],
                         description="Separated by commas. Empty: every image of the service type.")
    default_image = StringField("Default image", filters=[strip], validators=[Length(max=63)])
    quantity_allowed = BooleanField("Customers order several (per seat)")
    max_quantity = IntegerField("Maximum quantity", validators=[Optional(), NumberRange(min=1, max=10_000)],
                                description="Empty for no limit.")
    cancellation_rule = SelectField("Cancellation", choices=RULE_CHOICES)
    downgrade_rule = SelectField("Downgrade", choices=RULE_CHOICES)
    free_plan_limit = IntegerField("Free plans of this product one customer may hold", default=1,
                                   validators=[Optional(), NumberRange(min=1, max=1000)],
                                   description="Counts the customer's free subscriptions of any free plan of the "
                                               "product. Empty for no limit. Paid plans ignore it.")
    price_notice_days = IntegerField("Notice of a price change, in days", default=30,
                                     validators=[InputRequired(), NumberRange(min=0, max=366)],
                                     description="Existing subscribers pay a new price from their first renewal "
                                                 "this many days after the change.")
    confirm_price_change = BooleanField("I have read when existing subscribers pay the new prices")


class CloudPriceImportForm(FlaskForm):
    """The markup and server types of a cloud price import; the choices are the service type's server types."""

    markup = StringField("Markup in percent", filters=[strip], validators=[InputRequired(), Length(max=10)],
                         description="Added to the cloud's cost, e.g. 25 sells a 4.59 server at 5.74 (rounded half "
                                     "up to the cent); 0 to 1000, at most two decimals.")
    server_types = SelectMultipleField("Server types", choices=[], validate_choice=True,
                                       description="None ticked: the server types the plan offers.")


class CloudPriceApplyForm(CloudPriceImportForm):
    fingerprint = StringField(widget=HiddenInput(), validators=[InputRequired(), Length(max=64)])
    confirm_price_change = BooleanField("I have read when existing subscribers pay the new prices")
