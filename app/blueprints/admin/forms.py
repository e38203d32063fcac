import re
from datetime import UTC, date, datetime, time, timedelta

from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import (
    DateField,
    IntegerField,
    PasswordField,
    SelectChoice,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, InputRequired, Length, Optional, ValidationError
from wtforms.widgets import HiddenInput

from app.clock import now
from app.domain.billing import CreditNoteMethod, CreditNoteReason, InvoiceStatus
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
