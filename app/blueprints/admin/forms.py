from flask_wtf import FlaskForm
from wtforms import PasswordField
from wtforms.validators import InputRequired, Length


class CloudTokenForm(FlaskForm):
    token = PasswordField("API token", validators=[InputRequired(), Length(max=200)],
                          description="Stored encrypted. It is used only for this tenant's servers.",
                          render_kw={"autocomplete": "off"})
