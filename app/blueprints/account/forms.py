from flask_wtf import FlaskForm
from wtforms import EmailField, SelectChoice, SelectField, StringField
from wtforms.validators import DataRequired, Email, Length, Optional

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
