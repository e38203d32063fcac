"""The ISO 3166-1 country list and the profile completeness rule: pure, no app needed."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from app.domain.countries import COUNTRIES, country_name, is_country, name_sort_key
from app.domain.profiles import missing_profile_fields


def test_all_249_assigned_codes_are_listed_once():
    assert len(COUNTRIES) == 249
    assert len(set(COUNTRIES)) == 249
    assert len(set(COUNTRIES.values())) == 249
    assert all(len(code) == 2 and code.isascii() and code.isupper() for code in COUNTRIES)


@pytest.mark.parametrize(
    ("code", "name"),
    [("DE", "Germany"), ("US", "United States"), ("GB", "United Kingdom"), ("CH", "Switzerland"),
     ("AX", "Åland Islands")],
)
def test_known_codes(code, name):
    assert is_country(code)
    assert country_name(code) == name


def test_the_list_is_ordered_by_name_ignoring_accents():
    names = list(COUNTRIES.values())
    assert names == sorted(names, key=name_sort_key)
    assert names.index("Åland Islands") < names.index("Albania")


@pytest.mark.parametrize("code", ["XX", "UK", "EU", "de", "", " DE", "DEU", None])
def test_anything_else_is_not_a_country(code):
    assert not is_country(code)


def test_the_list_cannot_be_changed():
    with pytest.raises(TypeError):
        COUNTRIES["XX"] = "Nowhere"  # type: ignore[index]


def _profile(**values):
    base = {"full_name": "Casey", "billing_email": "c@example.com", "company": "", "address": "Main St 1",
            "postal_code": "", "city": "Bern", "country": "CH"}
    return SimpleNamespace(**{**base, **values})


def test_a_complete_profile_misses_nothing():
    assert missing_profile_fields(_profile()) == []


def test_missing_fields_are_named_in_form_order():
    assert missing_profile_fields(_profile(city="  ", full_name="")) == ["Full name", "City"]
    assert missing_profile_fields(None) == ["Full name", "Billing email", "Street address", "City", "Country"]
