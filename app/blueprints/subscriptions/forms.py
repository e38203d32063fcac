from flask_wtf import FlaskForm
from wtforms import HiddenField, IntegerField, SelectField, StringField, TextAreaField
from wtforms.validators import InputRequired, Length, NumberRange, Optional


class VersionForm(FlaskForm):
    """The version of the subscription the customer saw; a change in between is refused, not applied."""

    version = IntegerField(validators=[InputRequired()], widget=HiddenField.widget)


class CancelForm(VersionForm):
    reason = TextAreaField("Why are you leaving? (optional)", validators=[Optional(), Length(max=500)],
                           render_kw={"rows": 3})


class SwitchForm(VersionForm):
    """Leave the backorder queue for an available alternative."""

    server_type = HiddenField(validators=[InputRequired(), Length(max=63)])
    location = HiddenField(validators=[InputRequired(), Length(max=63)])


class RebuildForm(FlaskForm):
    """Reinstall a server: the image (the plan's, set per server) and its name typed as the confirmation."""

    image = SelectField("Image", validate_choice=False)  # the service refuses an image the plan does not offer
    confirm = StringField("Type the server's name to confirm", validators=[InputRequired("Type the server's name."),
                                                                           Length(max=253)],
                          render_kw={"autocomplete": "off", "spellcheck": "false"})


class EmptyForm(FlaskForm):
    """Only the CSRF token: for buttons that change something."""


class PlanChangeForm(VersionForm):
    """Confirm a previewed plan or quantity change: what was previewed, at the version it was previewed at."""

    plan = IntegerField(validators=[Optional(), NumberRange(min=1, max=2**31 - 1)], widget=HiddenField.widget)
    quantity = IntegerField(validators=[Optional(), NumberRange(min=1, max=999_999)], widget=HiddenField.widget)
