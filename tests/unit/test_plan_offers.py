"""What a plan offers and what each choice costs, without an app or a database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.domain.plan_offers import (
    LocationOffer,
    Offers,
    OfferSyntaxError,
    ScheduledPrice,
    TypePrice,
    narrow_schema,
    notice_date,
    offer_problems,
    parse_locations,
    parse_prices,
    renewal_unit_price,
    schema_problem,
    template_problem,
    unit_price,
)
from app.domain.pricing import PricingError

SCHEMA = {
    "type": "object",
    "properties": {
        "serverType": {"type": "string", "enum": ["cx22", "cx32", "cx42"]},
        "location": {"type": "string", "enum": ["nbg1", "hel1", "ash"]},
        "image": {"type": "string", "enum": ["ubuntu-24.04", "debian-12"]},
    },
}
OFFERS = Offers(
    (TypePrice("cx22", 450, 379, None, True), TypePrice("cx32", 890)),
    (LocationOffer("nbg1", 0, True), LocationOffer("ash", 100)),
    ("debian-12",),
)
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_the_price_follows_the_server_type_and_the_locations_surcharge():
    assert unit_price(0, OFFERS, server_type="cx22", location="nbg1") == 450
    assert unit_price(0, OFFERS, server_type="cx32", location="ash") == 990
    assert unit_price(0, OFFERS, server_type=None, location=None) == 450  # the default's


def test_a_choice_the_plan_does_not_offer_has_no_price():
    with pytest.raises(PricingError, match="server type cx42"):
        unit_price(0, OFFERS, server_type="cx42", location="nbg1")
    with pytest.raises(PricingError, match="location hel1"):
        unit_price(0, OFFERS, server_type="cx22", location="hel1")


def test_a_plan_without_offers_has_its_one_price_for_anything():
    assert unit_price(990, Offers(), server_type="cx42", location="hel1") == 990


@given(st.lists(st.integers(0, 10**6), min_size=1, max_size=5), st.integers(0, 10**5))
def test_every_offered_choice_costs_at_least_the_lowest_price(prices, surcharge):
    offers = Offers(tuple(TypePrice(f"t{n}", p, is_default=n == 0) for n, p in enumerate(prices)),
                    (LocationOffer("x", surcharge, True),))
    for n in range(len(prices)):
        assert unit_price(0, offers, server_type=f"t{n}", location="x") >= offers.lowest_price


def test_the_schema_is_narrowed_to_the_offers_and_the_original_is_left_alone():
    narrowed = narrow_schema(SCHEMA, OFFERS)
    assert narrowed["properties"]["serverType"]["enum"] == ["cx22", "cx32"]
    assert narrowed["properties"]["location"]["enum"] == ["nbg1", "ash"]
    assert narrowed["properties"]["image"]["enum"] == ["debian-12"]
    assert SCHEMA["properties"]["serverType"]["enum"] == ["cx22", "cx32", "cx42"]
    assert narrow_schema(SCHEMA, Offers()) == SCHEMA


def test_the_margin_is_known_only_with_the_cost():
    assert TypePrice("cx22", 450, 379).margin_minor == 71
    assert TypePrice("cx22", 450).margin_minor is None


def test_offers_outside_the_schema_and_missing_defaults_are_named():
    assert offer_problems(SCHEMA, OFFERS) == {}
    bad = Offers((TypePrice("cx99", 1, is_default=True),), (LocationOffer("nbg1"),), ("windows",))
    problems = offer_problems(SCHEMA, bad)
    assert problems["prices"] == "Not in the service type's choices: cx99."
    assert problems["locations"] == "Mark exactly one as the default."
    assert problems["images"] == "Not in the service type's choices: windows."


def test_a_plan_is_free_or_paid_not_both():
    mixed = Offers((TypePrice("cx22", 0, is_default=True), TypePrice("cx32", 890)))
    assert "free or paid" in offer_problems(SCHEMA, mixed)["prices"]


@pytest.mark.parametrize("schema", [{"type": "objekt"}, {"properties": []}, [], {"type": "string"}])
def test_a_schema_that_is_not_a_json_schema_of_an_object_is_refused(schema):
    assert schema_problem(schema)


def test_a_valid_schema_passes():
    assert schema_problem(SCHEMA) is None


def test_a_template_must_render_in_the_sandbox_and_fit_32_kib():
    assert template_problem("#cloud-config\nhostname: {{ hostname }}\n") is None
    assert "broken" in template_problem("{{ hostname ")
    assert "broken" in template_problem("{{ ''.__class__.__mro__ }}")  # the sandbox refuses it
    assert "at most 32768" in template_problem("#cloud-config\n" + "x" * 33_000)


def test_the_notice_date_is_the_notice_period_after_the_change():
    assert notice_date(T0, 30) == T0 + timedelta(days=30)
    with pytest.raises(ValueError):
        notice_date(T0, -1)


def test_a_renewal_keeps_the_bought_price_until_the_notice_date():
    change = ScheduledPrice(500, announced_at=T0, effective_at=T0 + timedelta(days=30))
    before = T0 - timedelta(days=10)
    assert renewal_unit_price(450, [change], subscribed_at=before, period_start=T0 + timedelta(days=29)) == 450
    assert renewal_unit_price(450, [change], subscribed_at=before, period_start=T0 + timedelta(days=30)) == 500
    assert renewal_unit_price(550, [change], subscribed_at=before, period_start=T0 + timedelta(days=31),
                              surcharge_minor=100) == 600


def test_a_subscription_ordered_after_the_change_paid_the_new_price_already():
    change = ScheduledPrice(500, announced_at=T0, effective_at=T0 + timedelta(days=30))
    assert renewal_unit_price(500, [change], subscribed_at=T0 + timedelta(days=1),
                              period_start=T0 + timedelta(days=40)) == 500


def test_the_latest_change_due_wins():
    first = ScheduledPrice(500, announced_at=T0, effective_at=T0 + timedelta(days=30))
    second = ScheduledPrice(550, announced_at=T0 + timedelta(days=5), effective_at=T0 + timedelta(days=35))
    before = T0 - timedelta(days=1)
    assert renewal_unit_price(450, [second, first], subscribed_at=before, period_start=T0 + timedelta(days=32)) == 500
    assert renewal_unit_price(450, [first, second], subscribed_at=before, period_start=T0 + timedelta(days=40)) == 550


def test_price_and_location_lines_are_read_and_bad_lines_named():
    assert parse_prices("cx22 450 379\n\ncx32 890\n", "cx32") == (
        TypePrice("cx22", 450, 379, None, False), TypePrice("cx32", 890, None, None, True))
    assert parse_locations("nbg1\nash 100", "nbg1") == (LocationOffer("nbg1", 0, True), LocationOffer("ash", 100))
    with pytest.raises(OfferSyntaxError, match="Line 2"):
        parse_prices("cx22 450\ncx32 8.90", "cx22")
    with pytest.raises(OfferSyntaxError, match="Line 1"):
        parse_locations("ash 1 2", "ash")
