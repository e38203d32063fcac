"""The order form: fixed fields, the server's name and SSH keys, and one select per config choice the service
type's schema offers."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from flask_wtf import FlaskForm
from markupsafe import Markup, escape
from wtforms import BooleanField, HiddenField, IntegerField, SelectField, SelectMultipleField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Length, NumberRange
from wtforms.widgets import Select

from app.domain.configuration import ConfigField
from app.domain.geography import GEOGRAPHY_LABELLED, location_label


def _stripped(value: str | None) -> str | None:
    return value.strip() if isinstance(value, str) else value


class OrderForm(FlaskForm):
    quantity = IntegerField("Quantity", default=1, validators=[InputRequired(), NumberRange(min=1, max=1000)])
    # The service checks the name (app/domain/server_names.py) and the keys; the form only bounds the input.
    hostname = StringField("Server name", filters=[_stripped], validators=[Length(max=100)],
                           render_kw={"autocomplete": "off", "spellcheck": "false"})
    ssh_keys = SelectMultipleField("SSH keys", coerce=int, validate_choice=False)  # the template draws checkboxes
    auto_backorder = BooleanField("If it is sold out, put my order on the backorder list instead")
    idempotency_key = HiddenField()

    config_names: tuple[str, ...] = ()

    def config_fields(self) -> list[Any]:
        return [self[name] for name in self.config_names]

    def requested_config(self) -> dict[str, str]:
        return {name: self[name].data for name in self.config_names}


class ChoiceSelect(Select):
    """WTForms' select, drawn faster, with the same markup (tests/web/test_orders.py compares the two).

    WTForms 3.3 inspects `render_option`'s signature each time a select is drawn, to support overrides with
    the old one, and builds each option's attributes through a format-string escaper; with a server type,
    location and image to choose from, that was a third of the order form's time.
    """

    @classmethod
    def _dispatch_render_option(cls):  # type: ignore[no-untyped-def]
        return cls.render_option

    @classmethod
    def render_option(cls, choice: SelectChoice, **kwargs: Any) -> Markup:
        if kwargs or choice.render_kw or not isinstance(choice.value, str):
            return super().render_option(choice, **kwargs)
        selected = "selected " if choice.selected else ""  # WTForms sorts the attributes by name
        value, label = escape(choice.value), escape(choice.label or choice.value)
        return Markup(f'<option {selected}value="{value}">{label}</option>')  # noqa: S704 - both are escaped


def order_form(fields: list[ConfigField], **kwargs: Any) -> OrderForm:
    """An OrderForm with a select for each of `fields`, locations shown by name."""
    return _form_class(tuple(fields))(**kwargs)


@lru_cache(maxsize=256)
def _form_class(fields: tuple[ConfigField, ...]) -> type[OrderForm]:
    """The form class for these fields, made once: plans offer the same few sets of choices on every visit."""

    class Form(OrderForm):
        config_names = tuple(field.name for field in fields)

    for field in fields:
        labels = location_label if field.name in GEOGRAPHY_LABELLED else str
        choices = [SelectChoice(value, labels(value)) for value in field.choices]
        # The service validates choices against the schema and explains errors beside the field.
        setattr(Form, field.name, SelectField(field.title, choices=choices, default=field.default,
                                              validate_choice=False, widget=ChoiceSelect()))
    return Form
