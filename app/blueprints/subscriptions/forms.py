from flask_wtf import FlaskForm
from wtforms import HiddenField, IntegerField, TextAreaField
from wtforms.validators import InputRequired, Length, Optional


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
