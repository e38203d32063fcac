from flask_wtf import FlaskForm
from wtforms import TextAreaField
from wtforms.validators import DataRequired, Length

from app.services.impersonation import REASON_MAX_LENGTH, REASON_MIN_LENGTH


def strip(value: str | None) -> str | None:
    return value.strip() if isinstance(value, str) else value


class ImpersonateForm(FlaskForm):
    reason = TextAreaField(
        "Reason", filters=[strip],
        validators=[DataRequired("Give a reason, for example a ticket reference."),
                    Length(min=REASON_MIN_LENGTH, max=REASON_MAX_LENGTH)],
        description="Required and kept in the audit trail, for example “Ticket #4711: order fails”.",
        render_kw={"rows": 2, "maxlength": REASON_MAX_LENGTH},
    )
