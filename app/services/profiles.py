"""The customer's billing profile, which ordering requires."""

from __future__ import annotations

import logging

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import String
from sqlalchemy.exc import IntegrityError

from app.domain.accounts import Role
from app.domain.countries import is_country
from app.domain.invoicing import is_eu, normalize_vat_id, vat_id_problem
from app.domain.profiles import LABELS, REQUIRED
from app.extensions import db
from app.models import CustomerProfile
from app.selectors.profiles import profile_for
from app.services.actors import Actor
from app.services.errors import Conflict, Forbidden, InvalidInput

log = logging.getLogger(__name__)


def save_profile(*, actor: Actor, full_name: str, billing_email: str, company: str, address: str,
                 postal_code: str, city: str, country: str, vat_id: str = "") -> CustomerProfile:
    """Create or update the acting customer's billing profile; returns it, committed, with who saved it
    (the customer, or support acting for them).

    Values are stripped and checked whole before anything changes: a required field left blank, a
    value longer than its column, an unknown country code, a malformed email or a VAT id that is not shaped
    like one of the customer's EU country (a format check, not a registry lookup) raises InvalidInput
    naming the field. Staff have no profile (Forbidden).
    """
    user = actor.user
    if user is None or user.role != Role.CUSTOMER:
        raise Forbidden("Only customers have a billing profile.")
    values = {"full_name": full_name, "billing_email": billing_email, "company": company, "address": address,
              "postal_code": postal_code, "city": city, "country": country, "vat_id": vat_id}
    values = {name: (value or "").strip() for name, value in values.items()}
    values["country"] = values["country"].upper()
    values["vat_id"] = normalize_vat_id(values["vat_id"])
    _check(values)
    profile = profile_for(user)
    created = profile is None
    if profile is None:
        profile = CustomerProfile(user_id=user.id)
        db.session.add(profile)
    for name, value in values.items():
        setattr(profile, name, value)
    profile.updated_by_id, profile.updated_by_impersonator_id = actor.user_id, actor.impersonator_id
    try:
        db.session.commit()
    except IntegrityError:  # the same customer created a profile a moment ago, in another request
        db.session.rollback()
        raise Conflict("Your profile was just saved elsewhere. Reload the page and try again.") from None
    log.info("profile saved", extra={"tenant_id": user.tenant_id, "user_id": user.id, "new_profile": created,
                                     "impersonator_id": actor.impersonator_id})
    return profile


def _check(values: dict[str, str]) -> None:
    for name in REQUIRED:
        if not values[name]:
            message = "Choose a country." if name == "country" else f"Enter your {LABELS[name].lower()}."
            raise InvalidInput(message, field=name)
    for name, value in values.items():
        if len(value) > (limit := _max_length(name)):
            raise InvalidInput(f"Use at most {limit} characters.", field=name)
    if not is_country(values["country"]):
        raise InvalidInput("Choose a country from the list.", field="country")
    if values["vat_id"]:
        if not is_eu(values["country"]):
            raise InvalidInput("A VAT id is for businesses in the EU: leave it blank outside the EU.", field="vat_id")
        if problem := vat_id_problem(values["vat_id"], values["country"]):
            raise InvalidInput(problem, field="vat_id")
    try:
        validate_email(values["billing_email"], check_deliverability=False)
    except EmailNotValidError:
        raise InvalidInput("Enter a valid email address.", field="billing_email") from None


def _max_length(name: str) -> int:
    """The length of the column, so the rule cannot drift from the schema."""
    column_type = CustomerProfile.__table__.c[name].type
    assert isinstance(column_type, String) and column_type.length
    return column_type.length
