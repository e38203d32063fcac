"""The clouds' availability answers are kept for AVAILABILITY_CACHE_SECONDS for previews and alternatives,
never for an order, never across tenants."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from app.clock import now
from app.config import ConfigError, Settings
from app.domain.catalogue import Provider
from app.kept import KeptAnswers
from app.providers.base import ErrorKind
from app.sandbox.cloud import SandboxCloud, sandbox_for
from app.services import availability_cache, backorders, ordering
from app.services.errors import ServiceError
from tests import factories
from tests.services.conftest import place

CX22_NBG1 = ("check_availability", "cx22", "nbg1")


def asked(cloud: SandboxCloud, call: tuple[str, ...] = CX22_NBG1) -> int:
    """How many times the cloud was asked `call`."""
    return cloud.calls.count(call)


def preview(tenant, plan, config=None):  # type: ignore[no-untyped-def]
    """What the order form's availability box asks."""
    return ordering.check_availability(tenant, ordering.draft_order(plan, config or {}, 1))


def test_two_checks_within_the_period_ask_the_cloud_once(tenant, plan, sandbox, clock):
    first = preview(tenant, plan)
    clock.advance(seconds=29)
    second = preview(tenant, plan)

    assert first == second and first.available
    assert asked(sandbox) == 1


def test_after_the_period_the_cloud_is_asked_again(tenant, plan, sandbox, clock):
    assert preview(tenant, plan).available
    sandbox.set_capacity("cx22", "nbg1", 0)
    assert preview(tenant, plan).available  # the kept answer, a few seconds old

    clock.advance(seconds=30)
    assert not preview(tenant, plan).available
    assert asked(sandbox) == 2


def test_a_clock_set_back_does_not_use_an_answer_from_the_future(tenant, plan, sandbox, clock):
    preview(tenant, plan)
    clock.set(clock.now() - timedelta(minutes=5))
    preview(tenant, plan)
    assert asked(sandbox) == 2


def test_zero_seconds_turns_the_cache_off(app, tenant, plan, sandbox, clock, monkeypatch):
    monkeypatch.setitem(app.config, "AVAILABILITY_CACHE_SECONDS", 0)
    preview(tenant, plan)
    preview(tenant, plan)
    assert asked(sandbox) == 2


def test_an_order_asks_the_cloud_every_time_and_a_kept_available_never_lets_it_through(
        tenant, customer, profile, plan, sandbox, clock):
    assert preview(tenant, plan).available
    sandbox.set_capacity("cx22", "nbg1", 1)
    place(tenant, customer, plan)
    assert asked(sandbox) == 2

    with pytest.raises(ordering.Unavailable):  # the cloud has nothing left, whatever the preview said
        place(tenant, customer, plan)
    assert asked(sandbox) == 3
    assert not preview(tenant, plan).available  # the order's fresh answer replaced the kept one
    assert asked(sandbox) == 3


def test_tenants_never_share_answers(tenant, other_tenant, plan, sandbox, clock):
    theirs = sandbox_for(other_tenant.id, "hetzner", now)
    sandbox.set_capacity("cx22", "nbg1", 0)

    assert not preview(tenant, plan).available
    assert preview(other_tenant, factories.plan(other_tenant)).available
    assert (asked(sandbox), asked(theirs)) == (1, 1)


def test_answers_are_kept_per_server_type_and_location(tenant, plan, sandbox, clock):
    preview(tenant, plan)
    preview(tenant, plan, {"serverType": "cx32"})
    preview(tenant, plan)
    preview(tenant, plan, {"serverType": "cx32"})
    assert (asked(sandbox), asked(sandbox, ("check_availability", "cx32", "nbg1"))) == (1, 1)


def test_offers_are_kept_per_tenant_and_cloud(tenant, other_tenant, sandbox, clock):
    theirs = sandbox_for(other_tenant.id, "hetzner", now)
    first = availability_cache.offers(tenant, Provider.HETZNER)
    first.clear()  # a caller's copy: the kept list is not changed through it
    assert availability_cache.offers(tenant, Provider.HETZNER)
    availability_cache.offers(other_tenant, Provider.HETZNER)
    assert (asked(sandbox, ("offers",)), asked(theirs, ("offers",))) == (1, 1)

    availability_cache.offers(tenant, Provider.HETZNER, live=True)
    assert asked(sandbox, ("offers",)) == 2


def test_the_alternatives_polled_by_a_waiting_subscription_are_kept(tenant, customer, profile, plan, sandbox,
                                                                   clock):
    sandbox.set_capacity("cx22", "nbg1", 0)
    waiting = place(tenant, customer, plan, auto_backorder=True)
    assert asked(sandbox) == 1

    for _ in range(6):  # the summary fragment, polled every 10 seconds for a minute
        assert backorders.alternatives_for(tenant, waiting)
        clock.advance(seconds=10)
    assert asked(sandbox) == 2  # the order's own answer served the first 30 seconds, one more the next 30


def test_errors_are_not_kept(tenant, plan, sandbox, clock):
    sandbox.fail_next("offers", ErrorKind.TRANSIENT)
    with pytest.raises(ServiceError, match="could not reach the cloud"):
        preview(tenant, plan)
    assert preview(tenant, plan).available
    assert asked(sandbox) == 2


def test_the_cache_is_bounded_and_forgets_the_least_recently_used():
    answers = KeptAnswers(max_entries=2)
    moment, ttl = datetime(2026, 3, 15, tzinfo=UTC), timedelta(seconds=30)
    answers.put("a", moment, 1)
    answers.put("b", moment, 2)
    assert answers.get("a", moment, ttl) == (True, 1)  # "b" is now the least recently used
    answers.put("c", moment, 3)
    assert len(answers) == 2
    assert answers.get("b", moment, ttl) == (False, None)
    assert answers.get("a", moment, ttl) == (True, 1) and answers.get("c", moment, ttl) == (True, 3)


def test_the_cache_takes_many_threads_at_once():
    answers = KeptAnswers(max_entries=50)
    moment, ttl = datetime(2026, 3, 15, tzinfo=UTC), timedelta(seconds=30)
    errors: list[BaseException] = []

    def hammer(n: int) -> None:
        try:
            for i in range(2000):
                answers.put((n, i % 80), moment, i)
                answers.get((n, (i * 7) % 80), moment, ttl)
        except Exception as error:
            errors.append(error)

    threads = [threading.Thread(target=hammer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(answers) == 50


@pytest.mark.parametrize(("value", "seconds"), [(None, 30), ("0", 0), ("2.5", 2.5), ("600", 600)])
def test_the_setting_is_read_from_the_environment(tmp_path, value, seconds):
    env = {} if value is None else {"AVAILABILITY_CACHE_SECONDS": value}
    config = Settings.from_env(env, str(tmp_path)).as_flask_config(str(tmp_path))
    assert config["AVAILABILITY_CACHE_SECONDS"] == seconds


@pytest.mark.parametrize("value", ["-1", "soon", "nan", "7200"])
def test_a_bad_setting_is_refused(tmp_path, value):
    with pytest.raises(ConfigError, match="AVAILABILITY_CACHE_SECONDS"):
        Settings.from_env({"AVAILABILITY_CACHE_SECONDS": value}, str(tmp_path))
