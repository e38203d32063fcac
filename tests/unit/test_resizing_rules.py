"""When an item needs its server's type changed, without a database."""

from __future__ import annotations

import pytest

from app.domain.resizing import ResizeStep, desired_type, needs_resize, upgrades_disk


def test_the_wanted_type_is_the_plan_change_s_else_the_ordered_one() -> None:
    assert desired_type({"serverType": "cx22"}) == "cx22"
    assert desired_type({"serverType": "cx22", "server_type": "cx32"}) == "cx32"
    assert desired_type({}) is None
    assert desired_type({"server_type": 5}) is None


def test_the_disk_grows_unless_the_configuration_says_not() -> None:
    assert upgrades_disk({}) and upgrades_disk({"upgrade_disk": True})
    assert not upgrades_disk({"upgrade_disk": False})


@pytest.mark.parametrize(("config", "actual", "step", "target", "needed"), [
    ({"server_type": "cx32"}, "cx22", None, None, True),
    ({"server_type": "cx22"}, "cx22", None, None, False),
    ({"server_type": "cx32"}, None, None, None, False),  # the actual type is read first
    ({"server_type": "cx22"}, "cx22", ResizeStep.STARTING, "cx32", True),  # a begun resize is finished
    ({"server_type": "cx32"}, "cx22", ResizeStep.FAILED, "cx32", False),  # not the same type again
    ({"server_type": "cx42"}, "cx22", ResizeStep.FAILED, "cx32", True),  # another type: afresh
])
def test_needs_resize(config, actual, step, target, needed) -> None:  # type: ignore[no-untyped-def]
    assert needs_resize(config, actual, step, target) is needed
