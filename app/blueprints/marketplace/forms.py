from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import SelectMultipleField, StringField
from wtforms.validators import Length


def _stripped(value: str | None) -> str | None:
    return value.strip() if isinstance(value, str) else value


class SetUpForm(FlaskForm):
    """Setting up a marketplace purchase: the servers' name and keys (the plan's defaults do the rest)."""

    hostname = StringField("Server name", filters=[_stripped], validators=[Length(max=100)],
                           description="Lower-case letters, digits and hyphens. Leave it empty for a made-up name.")
    ssh_keys = SelectMultipleField("SSH keys", coerce=int, validate_choice=False)  # the template draws checkboxes
