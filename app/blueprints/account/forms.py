from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, SelectChoice, SelectField, StringField
from wtforms.validators import DataRequired, Email, EqualTo, InputRequired, Length, Optional

from app.domain.accounts import PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH
from app.domain.countries import COUNTRIES
from app.domain.profiles import LABELS

COUNTRY_CHOICES = [SelectChoice("", "Choose a country"),
                   *(SelectChoice(code, name) for code, name in COUNTRIES.items())]


def strip(value: str | None) -> str | None:
    """Blanks around what people type are noise."""
    return value.strip() if isinstance(value, str) else value


class ProfileForm(FlaskForm):
    full_name = StringField(LABELS["full_name"], filters=[strip], validators=[DataRequired(), Length(max=200)],
                            render_kw={"autocomplete": "name"})
    billing_email = EmailField(
        LABELS["billing_email"], filters=[strip],
        validators=[DataRequired(), Email(check_deliverability=False), Length(max=254)],
        description="Invoices and payment notices go here.", render_kw={"autocomplete": "email"},
    )
    company = StringField(LABELS["company"], filters=[strip], validators=[Optional(), Length(max=200)],
                          description="Optional.", render_kw={"autocomplete": "organization"})
    vat_id = StringField(LABELS["vat_id"], filters=[strip], validators=[Optional(), Length(max=20)],
                         description="Optional. With one from another EU country than ours, invoices are "
                                     "reverse-charged (no VAT). We check its format, e.g. DE123456789.")
    address = StringField(LABELS["address"], filters=[strip], validators=[DataRequired(), Length(max=300)],
                          render_kw={"autocomplete": "street-address"})
    postal_code = StringField(LABELS["postal_code"], filters=[strip], validators=[Optional(), Length(max=20)],
                              render_kw={"autocomplete": "postal-code"})
    city = StringField(LABELS["city"], filters=[strip], validators=[DataRequired(), Length(max=120)],
                       render_kw={"autocomplete": "address-level2"})
    country = SelectField(LABELS["country"], choices=COUNTRY_CHOICES, validators=[DataRequired("Choose a country.")],
                          render_kw={"autocomplete": "country"})

    def values(self) -> dict[str, str]:
        """The profile's fields as plain strings, ready for the service."""
        return {name: self[name].data or "" for name in LABELS}


class PasswordForm(FlaskForm):
    current_password = PasswordField("Current password", validators=[InputRequired(), Length(max=PASSWORD_MAX_LENGTH)],
                                     render_kw={"autocomplete": "current-password"})
    new_password = PasswordField(
        "New password",
        validators=[InputRequired(), Length(min=PASSWORD_MIN_LENGTH, max=PASSWORD_MAX_LENGTH,
                                            message=f"Use {PASSWORD_MIN_LENGTH} to {PASSWORD_MAX_LENGTH} characters.")],
        description=f"At least {PASSWORD_MIN_LENGTH} characters. Your other sessions are logged out.",
        render_kw={"autocomplete": "new-password"},
    )
    confirm = PasswordField("Repeat the new password",
                            validators=[InputRequired(), EqualTo("new_password", "The passwords differ.")],
                            render_kw={"autocomplete": "new-password"})


class EmailForm(FlaskForm):
    email = EmailField("New email", filters=[strip],
                       validators=[DataRequired(), Email(check_deliverability=False), Length(max=254)],
                       render_kw={"autocomplete": "email"})
    password = PasswordField("Your password", validators=[InputRequired(), Length(max=PASSWORD_MAX_LENGTH)],
                             description="To confirm it is you.", render_kw={"autocomplete": "current-password"})


class DeleteAccountForm(FlaskForm):
    password = PasswordField("Your password", validators=[InputRequired(), Length(max=PASSWORD_MAX_LENGTH)],
                             description="To confirm it is you. This cannot be undone.",
                             render_kw={"autocomplete": "current-password"})
