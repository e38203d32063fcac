"""/api/v1/profile: the customer's billing profile, which ordering requires, read and saved as the profile
page does (`profiles.save_profile`: the same required fields, lengths, country list, email check and VAT id
format check for the customer's EU country)."""

from __future__ import annotations

from typing import Any

from flask import g
from marshmallow import EXCLUDE, Schema, fields

from app.blueprints.api.base import actor, api_blueprint
from app.blueprints.api.naming import camel_fields
from app.models import CustomerProfile
from app.selectors.profiles import profile_for
from app.services import profiles

blp = api_blueprint("profile", __name__, url_prefix="/profile",
                    description="The billing profile an order needs.")

# API field -> the profile's attribute, in the profile form's order.
FIELDS = {"fullName": "full_name", "billingEmail": "billing_email", "company": "company", "vatId": "vat_id",
          "address": "address", "postalCode": "postal_code", "city": "city", "country": "country"}


class ProfileInputSchema(Schema):
    """Every field of the profile: one left out is saved blank (and a required one is then refused)."""

    class Meta:
        unknown = EXCLUDE  # fields this API does not know are ignored

    fullName = fields.String(load_default="")
    billingEmail = fields.String(load_default="")
    company = fields.String(load_default="")
    vatId = fields.String(load_default="", metadata={"description": "for businesses in the EU; checked for its "
                                                                    "country's format"})
    address = fields.String(load_default="")
    postalCode = fields.String(load_default="")
    city = fields.String(load_default="")
    country = fields.String(load_default="", metadata={"description": "ISO 3166 code", "example": "DE"})


class ProfileSchema(Schema):
    fullName = fields.String(required=True)
    billingEmail = fields.String(required=True)
    company = fields.String(required=True)
    vatId = fields.String(required=True)
    address = fields.String(required=True)
    postalCode = fields.String(required=True)
    city = fields.String(required=True)
    country = fields.String(required=True)
    complete = fields.Boolean(required=True, metadata={"description": "holds everything an order needs"})


def _shown(profile: CustomerProfile | None) -> dict[str, Any]:
    shown: dict[str, Any] = {name: getattr(profile, attribute, "") or "" for name, attribute in FIELDS.items()}
    shown["complete"] = bool(profile is not None and profile.is_complete)
    return shown


@blp.route("")
@blp.response(200, ProfileSchema)
def get_profile() -> dict[str, Any]:
    """The token's user's billing profile (blank fields and `complete: false` before one is saved)."""
    return _shown(profile_for(g.api_user))


@blp.route("", methods=["PUT"])
@blp.arguments(ProfileInputSchema)
@blp.response(200, ProfileSchema)
def put_profile(body: dict[str, Any]) -> dict[str, Any]:
    """Save the whole profile. A refused value answers 422 naming its field; nothing is saved then."""
    with camel_fields():
        profile = profiles.save_profile(actor=actor(), **{FIELDS[name]: value for name, value in body.items()})
    return _shown(profile)
