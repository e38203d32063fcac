"""The customer's own account: the billing profile that ordering requires."""

from __future__ import annotations

from flask import Response, flash, redirect, render_template, request, url_for
from flask_login import current_user

from app.blueprints.account import bp
from app.blueprints.account.forms import ProfileForm
from app.domain.profiles import LABELS
from app.models import CustomerProfile, User
from app.selectors.profiles import profile_for
from app.services import profiles
from app.services.errors import Conflict, InvalidInput
from app.web.access import customer_required
from app.web.redirects import safe_next


def _initial(user: User, profile: CustomerProfile | None) -> dict[str, str]:
    """What the form shows first: the saved profile, else what the account already tells us."""
    values = {name: getattr(profile, name, "") for name in LABELS}
    return {**values, "full_name": values["full_name"] or user.name,
            "billing_email": values["billing_email"] or user.email}


@bp.route("/profile", methods=["GET", "POST"])
@customer_required
def profile() -> Response | tuple[str, int]:
    user = current_user._get_current_object()
    # `next` brings the customer back to an order left half-way, its query string (the choices) intact.
    next_url = safe_next(request.args.get("next"))
    form = ProfileForm() if request.method == "POST" else ProfileForm(data=_initial(user, profile_for(user)))
    if not form.validate_on_submit():
        return _page(form, next_url), 400 if form.errors else 200
    try:
        profiles.save_profile(user=user, **form.values())
    except (InvalidInput, Conflict) as error:
        if error.field in LABELS:
            form[error.field].errors.append(error.message)
        else:
            form.form_errors.append(error.message)
        return _page(form, next_url), error.status_code
    flash("Your profile is saved.", "success")
    return redirect(next_url or url_for("account.profile"), 303)


def _page(form: ProfileForm, next_url: str | None) -> str:
    return render_template("account/profile.html", form=form, next_url=next_url)
