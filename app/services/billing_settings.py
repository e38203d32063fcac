"""A tenant's billing settings: the seller on its invoices, invoice numbering, tax rates, payment terms and the
dunning schedule. Tenant admins only, as themselves; each save is logged with who changed what.

The row is created on the first save; until then `app.selectors.billing.settings_for` answers the defaults.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation

from app.clock import now
from app.domain.accounts import Role
from app.domain.countries import COUNTRIES
from app.domain.dunning import check_retry_days
from app.extensions import db
from app.models import BillingSettings, TenantLike
from app.selectors.billing import settings_for
from app.services.actors import Actor
from app.services.errors import Forbidden, InvalidInput

log = logging.getLogger(__name__)

PREFIX = re.compile(r"[A-Z0-9-]{1,12}")
VAT_ID = re.compile(r"[A-Z0-9+*.]{2,20}")
OTHER_COUNTRIES = "*"
MAX_RATE_BP = 10000  # 100 %
NAME_MAX, ADDRESS_MAX = 200, 1000
FIELDS = ("seller_name", "seller_address", "seller_vat_id", "seller_country", "invoice_prefix", "tax_rates",
          "reverse_charge", "payment_terms_days", "retry_days", "suspend_after_days", "grace_days")


def update(*, tenant: TenantLike, actor: Actor, seller_name: str, seller_address: str, seller_vat_id: str,
           seller_country: str, invoice_prefix: str, tax_rates: Mapping[str, str | int | Decimal],
           reverse_charge: bool, payment_terms_days: int | str, retry_days: Iterable[int | str] | str,
           suspend_after_days: int | str, grace_days: int | str) -> BillingSettings:
    """Check and save every setting at once (nothing is saved when one is refused: InvalidInput names its field).

    `tax_rates` maps a country code (or "*" for every other country) to a percent with up to 2 decimals
    ("19", "7.7"); they are kept in basis points. `retry_days` is a list, or text such as "3, 5, 7".
    """
    user = actor.user
    if user is None or user.role is not Role.TENANT_ADMIN or user.tenant_id != tenant.id or actor.impersonator:
        raise Forbidden("Only the tenant's admins can change the billing settings.")
    values = {
        "seller_name": _line(seller_name, "seller_name", NAME_MAX, required=True),
        "seller_address": _text(seller_address),
        "seller_vat_id": _vat_id(seller_vat_id),
        "seller_country": _country(seller_country, "seller_country"),
        "invoice_prefix": _prefix(invoice_prefix),
        "tax_rates": _tax_rates(tax_rates),
        "reverse_charge": bool(reverse_charge),
        "payment_terms_days": _days(payment_terms_days, "payment_terms_days", 0, 90),
        "retry_days": _retry_days(retry_days),
        "suspend_after_days": _days(suspend_after_days, "suspend_after_days", 0, 90),
        "grace_days": _days(grace_days, "grace_days", 1, 365),
    }
    row = db.session.get(BillingSettings, tenant.id)
    before = _snapshot(row if row is not None else settings_for(tenant))
    if row is None:
        row = BillingSettings(tenant_id=tenant.id)
        db.session.add(row)
    for name, value in values.items():
        setattr(row, name, value)
    row.updated_at, row.updated_by_id = now(), user.id
    db.session.commit()
    changed = {name: {"from": before[name], "to": value} for name, value in values.items() if before[name] != value}
    log.info("tenant %s: billing settings changed by user %s: %s", tenant.id, user.id, sorted(changed),
             extra={"tenant_id": tenant.id, "user_id": user.id, "changed": changed})
    return row


def _snapshot(row: BillingSettings) -> dict[str, object]:
    return {name: getattr(row, name) for name in FIELDS}


def _line(value: str | None, field: str, limit: int, *, required: bool = False) -> str:
    value = " ".join((value or "").split())
    if required and not value:
        raise InvalidInput("This is required.", field=field)
    if len(value) > limit or any(not ch.isprintable() for ch in value):
        raise InvalidInput(f"Use up to {limit} characters on one line.", field=field)
    return value


def _text(value: str | None) -> str:
    lines = [" ".join(line.split()) for line in (value or "").replace("\r\n", "\n").split("\n")]
    text = "\n".join(line for line in lines if line)
    if len(text) > ADDRESS_MAX or any(not ch.isprintable() for ch in text.replace("\n", "")):
        raise InvalidInput(f"Use up to {ADDRESS_MAX} characters.", field="seller_address")
    return text


def _vat_id(value: str | None) -> str:
    value = "".join((value or "").split()).upper()
    if value and not VAT_ID.fullmatch(value):
        raise InvalidInput("Enter the VAT id as printed, for example DE123456789.", field="seller_vat_id")
    return value


def _country(value: str | None, field: str) -> str:
    code = (value or "").strip().upper()
    if code not in COUNTRIES:
        raise InvalidInput("Choose a country.", field=field)
    return code


def _prefix(value: str | None) -> str:
    prefix = (value or "").strip().upper()
    if not PREFIX.fullmatch(prefix):
        raise InvalidInput("Use 1 to 12 capital letters, digits or dashes, for example INV.", field="invoice_prefix")
    return prefix


def percent_to_bp(value: str | int | Decimal) -> int:
    """19 -> 1900, "7.7" -> 770, "0" -> 0; InvalidInput for more than 2 decimals or outside 0-100 %."""
    try:
        percent = Decimal(str(value).strip().rstrip("%").strip().replace(",", "."))
    except InvalidOperation:
        raise InvalidInput("Enter a percent such as 19 or 7.7.", field="tax_rates") from None
    if not percent.is_finite() or percent.as_tuple().exponent < -2:  # type: ignore[operator]
        raise InvalidInput("Use at most 2 decimals in a tax rate.", field="tax_rates")
    points = int(percent * 100)
    if not 0 <= points <= MAX_RATE_BP:
        raise InvalidInput("A tax rate lies between 0 and 100 %.", field="tax_rates")
    return points


def _tax_rates(rates: Mapping[str, str | int | Decimal]) -> dict[str, int]:
    result: dict[str, int] = {}
    for country, rate in rates.items():
        code = (country or "").strip().upper()
        if code != OTHER_COUNTRIES and code not in COUNTRIES:
            raise InvalidInput(f"{country!r} is not a country code.", field="tax_rates")
        if code in result:
            raise InvalidInput(f"{code} is listed twice.", field="tax_rates")
        result[code] = percent_to_bp(rate)
    return dict(sorted(result.items()))


def _days(value: int | str | None, field: str, low: int, high: int) -> int:
    try:
        days = int(str(value).strip())
    except (TypeError, ValueError):
        raise InvalidInput(f"Enter a whole number of days ({low} to {high}).", field=field) from None
    if not low <= days <= high:
        raise InvalidInput(f"Enter a number of days from {low} to {high}.", field=field)
    return days


def _retry_days(value: Iterable[int | str] | str) -> list[int]:
    parts = value.replace(";", ",").split(",") if isinstance(value, str) else list(value)
    try:
        days = [int(str(part).strip()) for part in parts if str(part).strip()]
    except ValueError:
        raise InvalidInput("Enter days as whole numbers separated by commas, for example 3, 5, 7.",
                           field="retry_days") from None
    problem = check_retry_days(days)
    if problem:
        raise InvalidInput(problem, field="retry_days")
    return days
