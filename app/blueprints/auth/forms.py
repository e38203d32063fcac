from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, StringField
from wtforms.validators import DataRequired, Email, EqualTo, InputRequired, Length

from app.domain.accounts import PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH


def strip(value: str | None) -> str | None:
    """Blanks around names and emails are typing noise (never applied to passwords)."""
    return value.strip() if isinstance(value, str) else value


class LoginForm(FlaskForm):
    email = EmailField("Email", filters=[strip], validators=[DataRequired(), Length(max=254)],
                       render_kw={"autocomplete": "username", "autofocus": True})
    password = PasswordField("Password", validators=[InputRequired(), Length(max=PASSWORD_MAX_LENGTH)],
                             render_kw={"autocomplete": "current-password"})


class RegisterForm(FlaskForm):
    name = StringField("Your name", filters=[strip], validators=[DataRequired(), Length(max=200)],
                       render_kw={"autocomplete": "name", "autofocus": True})
    email = EmailField("Email", filters=[strip],
                       validators=[DataRequired(), Email(check_deliverability=False), Length(max=254)],
                       render_kw={"autocomplete": "email"})
    password = PasswordField(
        "Password",
        validators=[InputRequired(), Length(min=PASSWORD_MIN_LENGTH, max=PASSWORD_MAX_LENGTH)],
        description=f"At least {PASSWORD_MIN_LENGTH} characters. Spaces and any characters are welcome.",
        render_kw={"autocomplete": "new-password"},
    )
    confirm = PasswordField("Repeat the password",
                            validators=[InputRequired(), EqualTo("password", "The passwords differ.")],
                            render_kw={"autocomplete": "new-password"})


class ForgotPasswordForm(FlaskForm):
    email = EmailField("Email", filters=[strip],
                       validators=[DataRequired(), Email(check_deliverability=False), Length(max=254)],
                       description="The address you log in with. We email you a link to set a new password.",
                       render_kw={"autocomplete": "username", "autofocus": True})


class ResetPasswordForm(FlaskForm):
    password = PasswordField(
        "New password",
        validators=[InputRequired(), Length(min=PASSWORD_MIN_LENGTH, max=PASSWORD_MAX_LENGTH,
                                            message=f"Use {PASSWORD_MIN_LENGTH} to {PASSWORD_MAX_LENGTH} characters.")],
        description=f"At least {PASSWORD_MIN_LENGTH} characters. Every session of your account is logged out.",
        render_kw={"autocomplete": "new-password", "autofocus": True},
    )
    confirm = PasswordField("Repeat the new password",
                            validators=[InputRequired(), EqualTo("password", "The passwords differ.")],
                            render_kw={"autocomplete": "new-password"})


class ConfirmForm(FlaskForm):
    """A button that confirms an address (a POST, so that mail scanners opening the link change nothing)."""
