"""Where a server can be placed, and what to suggest when it cannot (no app, no database)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.domain.availability import Alternative, AlternativeKind, Offer, availability

LOCATION = AlternativeKind.OTHER_LOCATION
TYPE = AlternativeKind.OTHER_SERVER_TYPE

# No example database: the suite must not write a .hypothesis folder into the project.
PROPERTY = settings(database=None, max_examples=300, deadline=None)

ZONES = {"fsn1": "eu", "nbg1": "eu", "hel1": "eu", "ash": "us", "hil": "us", "sin": "ap"}


def offer(server_type: str, location: str, price: int, cores: int = 2, memory_mb: int = 4096, disk_gb: int = 40, *,
          available: bool = True, architecture: str = "x86", deprecated: bool = False,
          recommended: bool = False) -> Offer:
    return Offer(server_type, location, ZONES[location], price, "EUR", available, cores, memory_mb, disk_gb,
                 architecture, deprecated, recommended)


# "small" (2 cores, 4 GB, 40 GB) is sold out in fsn1; fsn1 has one type for each reason to leave it out.
OFFERS = [
    offer("small", "fsn1", 500, available=False),
    offer("small", "nbg1", 520),
    offer("small", "hel1", 510),
    offer("small", "ash", 400),  # cheaper, but another zone than fsn1
    offer("small", "sin", 450),
    offer("small", "hil", 300, available=False),
    offer("more-disk", "fsn1", 550, disk_gb=80),
    offer("same-size", "fsn1", 600),
    offer("medium", "fsn1", 900, cores=4, memory_mb=8192, disk_gb=80),
    offer("medium-recommended", "fsn1", 900, cores=4, memory_mb=8192, disk_gb=80, recommended=True),
    offer("medium", "ash", 800, cores=4, memory_mb=8192, disk_gb=80),
    offer("arm", "fsn1", 300, architecture="arm"),
    offer("tiny", "fsn1", 200, cores=1, memory_mb=2048, disk_gb=20),
    offer("fewer-cores", "fsn1", 250, cores=1, memory_mb=8192, disk_gb=80),
    offer("less-memory", "fsn1", 260, cores=4, memory_mb=2048, disk_gb=80),
    offer("less-disk", "fsn1", 270, cores=4, memory_mb=8192, disk_gb=20),
    offer("old", "fsn1", 350, cores=4, memory_mb=8192, disk_gb=80, deprecated=True),
    offer("sold-out", "fsn1", 360, cores=4, memory_mb=8192, disk_gb=80, available=False),
    offer("elsewhere", "nbg1", 380, cores=4, memory_mb=8192, disk_gb=80),
]


def brief(alternatives: tuple[Alternative, ...]) -> list[tuple[AlternativeKind, str, str]]:
    return [(a.kind, a.server_type, a.location) for a in alternatives]


@pytest.mark.parametrize(
    ("server_type", "location", "limit", "available", "permanent", "message", "alternatives"),
    [
        pytest.param("small", "nbg1", 6, True, False, "", [], id="available"),
        pytest.param("arm", "fsn1", 6, True, False, "", [], id="available-other-architecture"),
        pytest.param(
            "small", "fsn1", 10, False, False, "small is sold out in Falkenstein, Germany (fsn1) for now.",
            [
                (LOCATION, "small", "hel1"), (LOCATION, "small", "nbg1"),  # same zone first, then by price
                (LOCATION, "small", "ash"), (LOCATION, "small", "sin"),
                (TYPE, "more-disk", "fsn1"), (TYPE, "same-size", "fsn1"),  # cheapest first
                (TYPE, "medium-recommended", "fsn1"), (TYPE, "medium", "fsn1"),  # same price: recommended first
            ],
            id="sold-out-every-alternative",
        ),
        pytest.param(
            "small", "fsn1", 6, False, False, "small is sold out in Falkenstein, Germany (fsn1) for now.",
            [
                (LOCATION, "small", "hel1"), (LOCATION, "small", "nbg1"), (LOCATION, "small", "ash"),
                (TYPE, "more-disk", "fsn1"), (TYPE, "same-size", "fsn1"), (TYPE, "medium-recommended", "fsn1"),
            ],
            id="sold-out-half-the-limit-for-locations",
        ),
        pytest.param(
            "small", "fsn1", 3, False, False, "sold out",
            [(LOCATION, "small", "hel1"), (TYPE, "more-disk", "fsn1"), (TYPE, "same-size", "fsn1")],
            id="sold-out-odd-limit",
        ),
        pytest.param(
            "small", "fsn1", 1, False, False, "sold out", [(LOCATION, "small", "hel1")],
            id="sold-out-limit-one",
        ),
        pytest.param(
            "medium", "hil", 6, False, True, "medium is not offered in Hillsboro, Oregon, USA (hil).",
            [(LOCATION, "medium", "ash"), (LOCATION, "medium", "fsn1")],  # hil's only other type is sold out
            id="not-offered-here",
        ),
        pytest.param("small", "nowhere", 6, False, True, "small is not offered in nowhere.",
                     [(LOCATION, "small", "ash"), (LOCATION, "small", "sin"), (LOCATION, "small", "hel1")],
                     id="unknown-location"),
    ],
)
def test_availability_rules(
    server_type: str, location: str, limit: int, available: bool, permanent: bool, message: str,
    alternatives: list[tuple[AlternativeKind, str, str]],
) -> None:
    verdict = availability(OFFERS, server_type, location, limit=limit)

    assert verdict.available is available
    assert verdict.permanent is permanent
    assert message in verdict.message
    assert brief(verdict.alternatives) == alternatives


def test_alternatives_carry_price_and_currency() -> None:
    verdict = availability(OFFERS, "small", "fsn1")

    assert verdict.alternatives[0] == Alternative(LOCATION, "small", "hel1", 510, "EUR")


def test_an_unknown_server_type_is_permanent_and_suggests_what_the_location_has() -> None:
    verdict = availability(OFFERS, "huge", "fsn1")

    assert (verdict.available, verdict.permanent) == (False, True)
    assert verdict.message == "The server type huge is not offered."
    assert verdict.alternatives
    assert {(a.kind, a.location) for a in verdict.alternatives} == {(TYPE, "fsn1")}
    prices = [a.price_minor for a in verdict.alternatives]
    assert prices == sorted(prices)


def test_an_empty_catalog_offers_nothing() -> None:
    verdict = availability([], "small", "fsn1")

    assert (verdict.available, verdict.permanent, verdict.alternatives) == (False, True, ())


def test_a_type_not_offered_here_is_only_replaced_by_a_same_or_bigger_one() -> None:
    # medium (4 cores, 8 GB, 80 GB, x86) is offered in fsn1 and ash, so its size is known; sin has only
    # "small" (2 cores, 4 GB), which is smaller and should not be suggested.
    verdict = availability(OFFERS, "medium", "sin")

    assert (TYPE, "small", "sin") not in brief(verdict.alternatives)


def test_a_type_not_offered_here_suggests_the_same_zone_first() -> None:
    # nbg1 is in "eu"; medium is in fsn1 ("eu", 900) and ash ("us", 800): fsn1 should come first.
    verdict = availability(OFFERS, "medium", "nbg1")

    assert brief(verdict.alternatives)[0] == (LOCATION, "medium", "fsn1")


locations = st.sampled_from(sorted(ZONES))
catalogs = st.lists(
    st.builds(
        offer,
        server_type=st.sampled_from(["a", "b", "c", "d"]),
        location=locations,
        price=st.integers(min_value=1, max_value=5000),
        cores=st.integers(min_value=1, max_value=8),
        memory_mb=st.sampled_from([1024, 2048, 4096, 8192]),
        disk_gb=st.sampled_from([20, 40, 80]),
        available=st.booleans(),
        deprecated=st.booleans(),
        recommended=st.booleans(),
        architecture=st.sampled_from(["x86", "arm"]),
    ),
    max_size=20,
    unique_by=lambda o: (o.server_type, o.location),
)


@PROPERTY
@given(offers=catalogs, server_type=st.sampled_from(["a", "b", "c", "d"]), location=locations,
       limit=st.integers(min_value=1, max_value=10))
def test_alternatives_are_always_placeable_elsewhere(offers: list[Offer], server_type: str, location: str,
                                                     limit: int) -> None:
    verdict = availability(offers, server_type, location, limit=limit)
    by_key = {(o.server_type, o.location): o for o in offers}
    wanted = by_key.get((server_type, location))

    assert verdict.available is (wanted is not None and wanted.available)
    assert verdict.permanent is (wanted is None)
    assert len(verdict.alternatives) <= limit
    assert len(set(brief(verdict.alternatives))) == len(verdict.alternatives)
    for alternative in verdict.alternatives:
        suggested = by_key[(alternative.server_type, alternative.location)]
        assert suggested.available
        assert (alternative.server_type, alternative.location) != (server_type, location)
        if alternative.kind is TYPE:
            assert alternative.location == location
            assert not suggested.deprecated
        else:
            assert alternative.server_type == server_type
