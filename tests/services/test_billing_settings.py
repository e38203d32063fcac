"""The tenant's billing settings: checked as a whole, created on the first save, tenant admins only."""

from __future__ import annotations

from typing import Any

import pytest

from app.extensions import db
from app.models import BillingSettings
from app.selectors.billing import settings_for
from app.services import billing_settings
from app.services.actors import Actor
from app.services.errors import Forbidden, InvalidInput

GOOD: dict[str, Any] = {
    "seller_name": "Nimbus Hosting GmbH", "seller_address": "Hauptstrasse 1\r\n10115 Berlin",
    "seller_vat_id": "de 123456789", "seller_country": "de", "invoice_prefix": "nim-", "tax_rates":
        {"de": "19", "AT": "20.00", "*": "0", "CH": "8.1"}, "reverse_charge": False, "payment_terms_days": "14",
    "retry_days": "2, 4, 8", "suspend_after_days": 10, "grace_days": 20,
}


def save(tenant, actor, **changes):  # type: ignore[no-untyped-def]
    return billing_settings.update(tenant=tenant, actor=actor, **{**GOOD, **changes})


def test_the_first_save_creates_the_row_with_every_value(tenant, admin, clock):
    assert db.session.get(BillingSettings, tenant.id) is None
    assert settings_for(tenant).retry_days == [3, 5, 7]
    save(tenant, Actor(admin))
    db.session.expire_all()
    row = db.session.get(BillingSettings, tenant.id)
    assert (row.seller_name, row.seller_address, row.seller_vat_id, row.seller_country, row.invoice_prefix) == (
        "Nimbus Hosting GmbH", "Hauptstrasse 1\n10115 Berlin", "DE123456789", "DE", "NIM-")
    assert row.tax_rates == {"*": 0, "AT": 2000, "CH": 810, "DE": 1900}
    assert (row.reverse_charge, row.payment_terms_days, row.retry_days, row.suspend_after_days, row.grace_days) == (
        False, 14, [2, 4, 8], 10, 20)
    assert row.updated_by_id == admin.id and row.updated_at == clock.now()
    save(tenant, Actor(admin), retry_days=[1], tax_rates={})
    db.session.expire_all()
    assert settings_for(tenant).retry_days == [1] and settings_for(tenant).tax_rates == {}


@pytest.mark.parametrize(("field", "value"), [
    ("seller_name", " "), ("seller_name", "x" * 201), ("seller_country", "XX"), ("seller_country", None),
    ("seller_vat_id", "DE 123 <script>"), ("invoice_prefix", ""), ("invoice_prefix", "INVOICE-PREFIX"),
    ("invoice_prefix", "IN V"), ("tax_rates", {"DE": "19.123"}), ("tax_rates", {"DE": "101"}),
    ("tax_rates", {"DE": "-1"}), ("tax_rates", {"DE": "nineteen"}), ("tax_rates", {"DE": "NaN"}),
    ("tax_rates", {"XX": "5"}), ("tax_rates", {"de": "5", "DE": "6"}), ("payment_terms_days", 91),
    ("payment_terms_days", "-1"), ("payment_terms_days", "a"), ("payment_terms_days", None),
    ("retry_days", "3, 3"), ("retry_days", "5, 3"), ("retry_days", "0"), ("retry_days", "61"),
    ("retry_days", "3, x"), ("retry_days", ",".join(str(d) for d in range(1, 13))), ("suspend_after_days", 91),
    ("grace_days", 0), ("grace_days", 366), ("seller_address", "x" * 1001),
])
def test_a_refused_value_names_its_field_and_saves_nothing(tenant, admin, field, value):
    with pytest.raises(InvalidInput) as refused:
        save(tenant, Actor(admin), **{field: value})
    assert refused.value.field == field
    assert db.session.get(BillingSettings, tenant.id) is None


def test_no_retries_at_all_is_allowed(tenant, admin):
    assert save(tenant, Actor(admin), retry_days="").retry_days == []


def test_only_the_tenants_admins_as_themselves(tenant, other_tenant, admin, customer, support):
    from app.domain.accounts import Role
    from tests import factories

    other_admin = factories.user(other_tenant, email="admin@other.test", role=Role.TENANT_ADMIN)
    for actor in (Actor(customer), Actor(support), Actor(admin, impersonator=support), Actor(other_admin),
                  Actor.system("billing")):
        with pytest.raises(Forbidden):
            save(tenant, actor)
    assert db.session.get(BillingSettings, tenant.id) is None
