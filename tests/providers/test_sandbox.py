"""The sandbox cloud: lifecycle from a moved clock, idempotent creates, capacity, failures, the registry."""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from app.domain.availability import AlternativeKind
from app.providers.base import ActionStatus, CloudProvider, ErrorKind, PowerState, ProviderError, ServerSpec
from app.sandbox.cloud import (
    BUSY_MESSAGE,
    DIGITALOCEAN_OFFERS,
    HETZNER_OFFERS,
    SandboxCloud,
    reset_sandboxes,
    sandbox_for,
)


class FakeClock:
    """A clock that only moves when told to."""

    def __init__(self) -> None:
        self.now = datetime(2025, 3, 15, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def cloud(clock: FakeClock) -> SandboxCloud:
    return SandboxCloud("hetzner", HETZNER_OFFERS, clock=clock, boot_seconds=8, action_seconds=2)


@pytest.fixture(autouse=True)
def _fresh_registry() -> Iterator[None]:
    reset_sandboxes()
    yield
    reset_sandboxes()


def spec(name: str = "sub-1-item-1", server_type: str = "cx22", location: str = "fsn1", **labels: str) -> ServerSpec:
    return ServerSpec(name, server_type, location, "ubuntu-24.04", labels=labels or {"item": name})


def running_server(cloud: SandboxCloud, clock: FakeClock, name: str = "sub-1-item-1") -> str:
    server_id = cloud.create_server(spec(name)).server_id
    clock.advance(8)
    return server_id


def test_it_is_a_cloud_provider(cloud: SandboxCloud) -> None:
    provider: CloudProvider = cloud
    assert provider.name == "hetzner"


# --- Lifecycle -----------------------------------------------------------------------------------


def test_a_new_server_provisions_then_runs(cloud: SandboxCloud, clock: FakeClock) -> None:
    created = cloud.create_server(spec())

    assert created.power is PowerState.PROVISIONING
    assert not created.ready
    assert created.action is not None
    assert (created.action.command, created.action.status, created.action.progress) == (
        "create_server", ActionStatus.RUNNING, 0)
    assert created.created_at == clock.now
    assert (created.server_type, created.location, created.labels) == ("cx22", "fsn1", {"item": "sub-1-item-1"})

    clock.advance(4)
    halfway = cloud.server_info(created.server_id)
    assert halfway.power is PowerState.PROVISIONING
    assert halfway.action is not None and halfway.action.progress == 50

    clock.advance(4)
    done = cloud.server_info(created.server_id)
    assert done.power is PowerState.RUNNING
    assert done.ready
    assert done.action is None


def test_servers_get_increasing_ids_and_documentation_addresses(cloud: SandboxCloud) -> None:
    first = cloud.create_server(spec("a"))
    second = cloud.create_server(spec("b"))

    assert (first.server_id, second.server_id) == ("1", "2")
    for server in (first, second):
        assert server.ipv4 is not None and server.ipv6 is not None
        assert ipaddress.ip_address(server.ipv4) in ipaddress.ip_network("203.0.113.0/24")
        assert ipaddress.ip_address(server.ipv6) in ipaddress.ip_network("2001:db8::/32")
    assert first.ipv4 != second.ipv4
    assert first.ipv6 != second.ipv6


@pytest.mark.parametrize(
    ("start_off", "operation", "during", "after"),
    [
        (False, "power_off", PowerState.STOPPING, PowerState.OFF),
        (True, "power_on", PowerState.STARTING, PowerState.RUNNING),
        (False, "reboot", PowerState.REBOOTING, PowerState.RUNNING),
        (True, "reboot", PowerState.STARTING, PowerState.RUNNING),
        (False, "shutdown", PowerState.STOPPING, PowerState.OFF),
    ],
)
def test_power_actions_progress_with_the_clock_and_finish(
    cloud: SandboxCloud, clock: FakeClock, start_off: bool, operation: str, during: PowerState, after: PowerState
) -> None:
    server_id = running_server(cloud, clock)
    if start_off:
        cloud.power_off(server_id)
        clock.advance(2)

    action = getattr(cloud, operation)(server_id)

    assert (action.command, action.status, action.progress) == (operation, ActionStatus.RUNNING, 0)
    assert cloud.server_info(server_id).power is during
    clock.advance(1)
    info = cloud.server_info(server_id)
    assert info.power is during
    assert info.action is not None
    assert (info.action.id, info.action.progress) == (action.id, 50)
    clock.advance(1)
    info = cloud.server_info(server_id)
    assert info.power is after
    assert info.action is None


def test_a_shutdown_the_guest_ignores_leaves_the_server_on_until_powered_off(cloud: SandboxCloud,
                                                                            clock: FakeClock) -> None:
    server_id = running_server(cloud, clock)
    cloud.ignore_shutdown()

    action = cloud.shutdown(server_id)
    clock.advance(60)

    assert (action.command, action.status) == ("shutdown", ActionStatus.SUCCESS)  # sent; the guest did nothing
    assert cloud.server_info(server_id).power is PowerState.RUNNING
    cloud.power_off(server_id)
    clock.advance(2)
    assert cloud.server_info(server_id).power is PowerState.OFF
    assert [call[0] for call in cloud.calls[-4:]] == ["shutdown", "server_info", "power_off", "server_info"]


def test_a_shutdown_fails_like_the_other_power_actions(cloud: SandboxCloud, clock: FakeClock) -> None:
    server_id = cloud.create_server(spec()).server_id
    with pytest.raises(ProviderError) as booting:
        cloud.shutdown(server_id)
    clock.advance(8)
    cloud.fail_next("power", ErrorKind.RATE_LIMITED, retry_after=7)
    with pytest.raises(ProviderError) as limited:
        cloud.shutdown(server_id)
    cloud.delete_server(server_id)
    with pytest.raises(ProviderError) as gone:
        cloud.shutdown(server_id)

    assert booting.value.kind is ErrorKind.BUSY
    assert (limited.value.kind, limited.value.retry_after) == (ErrorKind.RATE_LIMITED, 7)
    assert gone.value.kind is ErrorKind.NOT_FOUND


@pytest.mark.parametrize(("start_off", "operation"), [(False, "power_on"), (True, "power_off"),
                                                      (True, "shutdown")])
def test_asking_for_the_current_power_state_succeeds_at_once(
    cloud: SandboxCloud, clock: FakeClock, start_off: bool, operation: str
) -> None:
    server_id = running_server(cloud, clock)
    if start_off:
        cloud.power_off(server_id)
        clock.advance(2)
    before = cloud.server_info(server_id).power

    action = getattr(cloud, operation)(server_id)

    assert (action.status, action.progress) == (ActionStatus.SUCCESS, 100)
    assert cloud.server_info(server_id).power is before
    cloud.reboot(server_id)  # nothing left running, so the server is not busy


def test_a_power_action_while_another_runs_is_busy(cloud: SandboxCloud, clock: FakeClock) -> None:
    server_id = running_server(cloud, clock)
    cloud.power_off(server_id)

    with pytest.raises(ProviderError) as busy:
        cloud.power_on(server_id)

    assert busy.value.kind is ErrorKind.BUSY
    assert busy.value.message == BUSY_MESSAGE
    assert busy.value.retryable
    clock.advance(2)
    assert cloud.power_on(server_id).status is ActionStatus.RUNNING


def test_a_provisioning_server_is_busy(cloud: SandboxCloud) -> None:
    server_id = cloud.create_server(spec()).server_id

    with pytest.raises(ProviderError) as busy:
        cloud.reboot(server_id)

    assert busy.value.kind is ErrorKind.BUSY


# --- Idempotent creates --------------------------------------------------------------------------


def test_create_is_idempotent(cloud: SandboxCloud, clock: FakeClock) -> None:
    first = cloud.create_server(spec())
    clock.advance(10)
    again = cloud.create_server(spec())

    assert again.server_id == first.server_id
    assert again.power is PowerState.RUNNING
    assert cloud.server_count() == 1


def test_a_create_whose_answer_was_lost_is_adopted_on_retry(cloud: SandboxCloud) -> None:
    cloud.fail_after_create()

    with pytest.raises(ProviderError) as lost:
        cloud.create_server(spec())
    assert lost.value.kind is ErrorKind.TRANSIENT
    assert "timed out" in lost.value.message
    assert cloud.server_count() == 1

    adopted = cloud.create_server(spec())

    assert cloud.server_count() == 1
    assert adopted.server_id == cloud.list_servers()[0].server_id
    assert cloud.calls == [("create_server", "sub-1-item-1", "cx22", "fsn1")] * 2
    assert cloud.find_server(spec()) == adopted


def test_adoption_accepts_labels_the_cloud_added(cloud: SandboxCloud) -> None:
    created = cloud.create_server(spec(item="7", managed_by="portal"))

    assert cloud.create_server(spec(item="7")).server_id == created.server_id
    assert cloud.server_count() == 1


def test_same_name_with_other_labels_is_a_conflict(cloud: SandboxCloud) -> None:
    cloud.create_server(spec(item="1"))

    with pytest.raises(ProviderError) as conflict:
        cloud.create_server(spec(item="2"))

    assert conflict.value.kind is ErrorKind.CONFLICT
    assert cloud.find_server(spec(item="2")) is None
    assert cloud.server_count() == 1


def test_find_server_finds_only_what_exists(cloud: SandboxCloud) -> None:
    assert cloud.find_server(spec()) is None
    created = cloud.create_server(spec())
    found = cloud.find_server(spec())

    assert found is not None and found.server_id == created.server_id


# --- Capacity and the catalog --------------------------------------------------------------------


def test_sold_out_is_unavailable_with_alternatives(cloud: SandboxCloud) -> None:
    cloud.set_capacity("cx22", "fsn1", 1)
    cloud.create_server(spec("first"))

    with pytest.raises(ProviderError) as sold_out:
        cloud.create_server(spec("second"))

    assert sold_out.value.kind is ErrorKind.UNAVAILABLE
    assert "sold out" in sold_out.value.message
    assert not sold_out.value.retryable
    assert cloud.server_count() == 1
    offer = next(o for o in cloud.offers() if (o.server_type, o.location) == ("cx22", "fsn1"))
    assert not offer.available
    verdict = cloud.check_availability("cx22", "fsn1")
    assert not verdict.available
    assert not verdict.permanent
    assert {(a.kind, a.server_type, a.location) for a in verdict.alternatives[:2]} == {
        (AlternativeKind.OTHER_LOCATION, "cx22", "nbg1"),
        (AlternativeKind.OTHER_LOCATION, "cx22", "hel1"),
    }
    assert (AlternativeKind.OTHER_SERVER_TYPE, "cpx21", "fsn1") in [
        (a.kind, a.server_type, a.location) for a in verdict.alternatives
    ]


def test_capacity_is_unlimited_by_default_and_can_be_lifted(cloud: SandboxCloud) -> None:
    assert cloud.capacity("cx22", "fsn1") is None
    assert all(o.available for o in cloud.offers())
    cloud.set_capacity("cx22", "fsn1", 0)
    assert cloud.check_availability("cx22", "fsn1").available is False

    cloud.set_capacity("cx22", "fsn1", None)

    assert cloud.check_availability("cx22", "fsn1").available is True
    cloud.create_server(spec())


@pytest.mark.parametrize(("server_type", "location"), [("cax11", "ash"), ("cx22", "sin"), ("cx99", "fsn1")])
def test_combinations_outside_the_catalog_are_invalid(cloud: SandboxCloud, server_type: str, location: str) -> None:
    with pytest.raises(ProviderError) as invalid:
        cloud.create_server(spec(server_type=server_type, location=location))

    assert invalid.value.kind is ErrorKind.INVALID
    assert "not offered" in invalid.value.message
    assert cloud.check_availability(server_type, location).permanent
    assert cloud.server_count() == 0


def test_oversized_user_data_is_invalid(cloud: SandboxCloud) -> None:
    too_big = ServerSpec("a", "cx22", "fsn1", "ubuntu-24.04", user_data="x" * (32 * 1024 + 1))

    with pytest.raises(ProviderError) as invalid:
        cloud.create_server(too_big)

    assert invalid.value.kind is ErrorKind.INVALID


def test_capacity_controls_reject_unknown_combinations(cloud: SandboxCloud) -> None:
    with pytest.raises(ValueError, match="not in the catalog"):
        cloud.set_capacity("cax11", "sin", 1)
    with pytest.raises(ValueError, match="negative"):
        cloud.set_capacity("cx22", "fsn1", -1)


# --- Root passwords, rebuilds, password resets --------------------------------------------------------


def test_a_hetzner_create_answers_a_root_password_once_and_never_shows_it(cloud: SandboxCloud) -> None:
    made = cloud.create_server(spec())
    adopted = cloud.create_server(spec())
    assert made.root_password and made.root_password not in repr(made)
    assert adopted.server_id == made.server_id and adopted.root_password is None


def test_a_rebuild_takes_the_boot_time_locks_the_server_and_keeps_what_it_was_given(
        cloud: SandboxCloud, clock: FakeClock) -> None:
    server_id = running_server(cloud, clock)
    rebuilt = cloud.rebuild(server_id, image="debian-12", user_data="#cloud-config\n")
    assert rebuilt.action.command == "rebuild_server" and rebuilt.root_password
    assert cloud.server_info(server_id).power is PowerState.PROVISIONING
    assert (cloud.image(server_id), cloud.user_data(server_id)) == ("debian-12", "#cloud-config\n")
    with pytest.raises(ProviderError) as busy:
        cloud.reset_password(server_id)
    assert busy.value.kind is ErrorKind.BUSY
    clock.advance(8)
    assert cloud.server_info(server_id).power is PowerState.RUNNING
    assert cloud.reset_password(server_id).root_password
    assert ("rebuild", server_id, "debian-12") in cloud.calls and ("reset_password", server_id) in cloud.calls


def test_like_digitalocean_a_sandbox_not_named_hetzner_gives_no_passwords(clock: FakeClock) -> None:
    cloud = SandboxCloud("digitalocean", DIGITALOCEAN_OFFERS, clock=clock, boot_seconds=8)
    made = cloud.create_server(ServerSpec("web", "s-1vcpu-1gb", "fra1", "ubuntu-24-04-x64", user_data="keys",
                                          labels={"item": "1"}))
    clock.advance(8)
    assert made.root_password is None
    assert cloud.rebuild(made.server_id, image="debian-12-x64", user_data="new").root_password is None
    assert cloud.user_data(made.server_id) == "keys"  # DigitalOcean runs the droplet's own user data again
    with pytest.raises(ProviderError) as refused:
        cloud.reset_password(made.server_id)
    assert refused.value.kind is ErrorKind.INVALID


# --- Injected failures ---------------------------------------------------------------------------

OPERATIONS: dict[str, Callable[[SandboxCloud, str], object]] = {
    "create": lambda cloud, server_id: cloud.create_server(spec("other")),
    "find": lambda cloud, server_id: cloud.find_server(spec()),
    "info": lambda cloud, server_id: cloud.server_info(server_id),
    "power": lambda cloud, server_id: cloud.power_off(server_id),
    "rebuild": lambda cloud, server_id: cloud.rebuild(server_id, image="debian-12"),
    "password": lambda cloud, server_id: cloud.reset_password(server_id),
    "delete": lambda cloud, server_id: cloud.delete_server(server_id),
    "offers": lambda cloud, server_id: cloud.offers(),
}


@pytest.mark.parametrize("kind", list(ErrorKind))
@pytest.mark.parametrize("operation", list(OPERATIONS))
def test_fail_next_raises_once_then_the_operation_works(
    cloud: SandboxCloud, clock: FakeClock, operation: str, kind: ErrorKind
) -> None:
    server_id = running_server(cloud, clock)
    count = cloud.server_count()
    cloud.fail_next(operation, kind)

    with pytest.raises(ProviderError) as failure:
        OPERATIONS[operation](cloud, server_id)

    assert failure.value.kind is kind
    assert failure.value.message
    assert failure.value.retry_after is None
    assert cloud.server_count() == count  # a failed call changes nothing
    OPERATIONS[operation](cloud, server_id)


def test_fail_next_passes_message_and_retry_after_through(cloud: SandboxCloud) -> None:
    cloud.fail_next("create", ErrorKind.RATE_LIMITED, 2, message="Slow down.", retry_after=30)

    for _ in range(2):
        with pytest.raises(ProviderError) as limited:
            cloud.create_server(spec())
        assert (limited.value.kind, limited.value.message, limited.value.retry_after) == (
            ErrorKind.RATE_LIMITED, "Slow down.", 30)
        assert limited.value.retryable

    assert cloud.create_server(spec()).server_id == "1"
    assert len(cloud.calls) == 3


def test_offers_failures_also_fail_check_availability(cloud: SandboxCloud) -> None:
    cloud.fail_next("offers", ErrorKind.AUTH)

    with pytest.raises(ProviderError) as auth:
        cloud.check_availability("cx22", "fsn1")

    assert auth.value.kind is ErrorKind.AUTH
    assert not auth.value.retryable


def test_fail_next_rejects_unknown_operations(cloud: SandboxCloud) -> None:
    with pytest.raises(ValueError, match="unknown operation"):
        cloud.fail_next("reboot", ErrorKind.TRANSIENT)


# --- Deletion ------------------------------------------------------------------------------------


def test_delete_is_idempotent_and_frees_capacity(cloud: SandboxCloud) -> None:
    cloud.set_capacity("cx22", "fsn1", 1)
    server_id = cloud.create_server(spec()).server_id
    assert cloud.capacity("cx22", "fsn1") == 0

    cloud.delete_server(server_id)
    cloud.delete_server(server_id)

    assert cloud.capacity("cx22", "fsn1") == 1
    assert cloud.server_count() == 0
    assert cloud.calls[-2:] == [("delete_server", server_id)] * 2
    cloud.create_server(spec("next"))


def test_a_server_deleted_in_the_console_is_not_found(cloud: SandboxCloud, clock: FakeClock) -> None:
    server_id = running_server(cloud, clock)
    calls = list(cloud.calls)

    cloud.delete_out_of_band(server_id)

    assert cloud.calls == calls
    for call in (cloud.server_info, cloud.power_on):
        with pytest.raises(ProviderError) as gone:
            call(server_id)
        assert gone.value.kind is ErrorKind.NOT_FOUND
    cloud.delete_server(server_id)
    assert cloud.find_server(spec()) is None
    with pytest.raises(KeyError):
        cloud.delete_out_of_band(server_id)


# --- Recording, clock, threads -------------------------------------------------------------------


def test_calls_record_each_operation_with_its_main_arguments(cloud: SandboxCloud, clock: FakeClock) -> None:
    server_id = running_server(cloud, clock)
    cloud.server_info(server_id)
    cloud.power_off(server_id)
    cloud.check_availability("cx42", "hel1")
    cloud.offers()
    cloud.list_servers()
    cloud.server_count()

    assert cloud.calls == [
        ("create_server", "sub-1-item-1", "cx22", "fsn1"),
        ("server_info", server_id),
        ("power_off", server_id),
        ("check_availability", "cx42", "hel1"),
        ("offers",),
    ]


def test_a_naive_clock_is_refused() -> None:
    cloud = SandboxCloud("hetzner", HETZNER_OFFERS, clock=lambda: datetime(2025, 1, 1))

    with pytest.raises(ValueError, match="timezone-aware"):
        cloud.create_server(spec())


def test_concurrent_creates_make_distinct_servers(cloud: SandboxCloud) -> None:
    start = threading.Barrier(20)
    ids: list[str] = []

    def create(n: int) -> None:
        start.wait()
        ids.append(cloud.create_server(spec(f"server-{n}")).server_id)

    threads = [threading.Thread(target=create, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert cloud.server_count() == 20
    assert sorted(map(int, ids)) == list(range(1, 21))


def test_concurrent_creates_of_one_spec_make_one_server(cloud: SandboxCloud) -> None:
    start = threading.Barrier(10)
    ids: list[str] = []

    def create() -> None:
        start.wait()
        ids.append(cloud.create_server(spec()).server_id)

    threads = [threading.Thread(target=create) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert cloud.server_count() == 1
    assert set(ids) == {"1"}


# --- Catalogs and the registry -------------------------------------------------------------------


def combinations(offers: list) -> set[tuple[str, str]]:
    return {(o.server_type, o.location) for o in offers}


def test_the_hetzner_catalog_matches_the_demo_service_type() -> None:
    assert {o.server_type for o in HETZNER_OFFERS} == {"cx22", "cx32", "cx42", "cpx21", "cax11"}
    assert {o.location for o in HETZNER_OFFERS} == {"fsn1", "nbg1", "hel1", "ash", "hil", "sin"}
    assert {(o.location, o.network_zone) for o in HETZNER_OFFERS} == {
        ("fsn1", "eu-central"), ("nbg1", "eu-central"), ("hel1", "eu-central"),
        ("ash", "us-east"), ("hil", "us-west"), ("sin", "ap-southeast"),
    }
    assert {o.location for o in HETZNER_OFFERS if o.server_type == "cpx21"} == {
        "fsn1", "nbg1", "hel1", "ash", "hil", "sin"}
    assert {o.location for o in HETZNER_OFFERS if o.server_type == "cax11"} == {"fsn1", "nbg1", "hel1"}
    assert {o.architecture for o in HETZNER_OFFERS if o.server_type == "cax11"} == {"arm"}
    assert {o.currency for o in HETZNER_OFFERS} == {"EUR"}
    cx22 = next(o for o in HETZNER_OFFERS if (o.server_type, o.location) == ("cx22", "fsn1"))
    assert (cx22.cores, cx22.memory_mb, cx22.disk_gb, cx22.price_minor) == (2, 4096, 40, 459)
    assert len(combinations(HETZNER_OFFERS)) == len(HETZNER_OFFERS)


def test_the_digitalocean_catalog_matches_the_demo_service_type() -> None:
    sizes = ["s-1vcpu-1gb", "s-1vcpu-2gb", "s-2vcpu-4gb", "s-4vcpu-8gb"]
    regions = {"fra1": "eu", "ams3": "eu", "lon1": "eu", "nyc3": "us", "sfo3": "us", "sgp1": "ap"}
    assert combinations(DIGITALOCEAN_OFFERS) == {(s, r) for s in sizes for r in regions}
    assert len(DIGITALOCEAN_OFFERS) == len(sizes) * len(regions)
    assert {(o.location, o.network_zone) for o in DIGITALOCEAN_OFFERS} == set(regions.items())
    assert {o.currency for o in DIGITALOCEAN_OFFERS} == {"USD"}
    smallest = next(o for o in DIGITALOCEAN_OFFERS if o.server_type == "s-1vcpu-1gb")
    assert (smallest.cores, smallest.memory_mb, smallest.price_minor) == (1, 1024, 600)


def test_the_registry_shares_one_sandbox_per_tenant_and_provider(clock: FakeClock) -> None:
    hetzner = sandbox_for(1, "hetzner", clock)

    assert sandbox_for(1, "hetzner", clock) is hetzner
    assert sandbox_for(2, "hetzner", clock) is not hetzner
    digitalocean = sandbox_for(1, "digitalocean", clock)
    assert digitalocean is not hetzner
    assert (hetzner.name, digitalocean.name) == ("hetzner", "digitalocean")
    assert combinations(hetzner.offers()) == combinations(HETZNER_OFFERS)
    assert combinations(digitalocean.offers()) == combinations(DIGITALOCEAN_OFFERS)

    reset_sandboxes()

    assert sandbox_for(1, "hetzner", clock) is not hetzner


def test_registry_servers_are_visible_to_every_caller(clock: FakeClock) -> None:
    created = sandbox_for(1, "hetzner", clock).create_server(spec())

    assert sandbox_for(1, "hetzner", clock).server_info(created.server_id).name == created.name
    assert sandbox_for(2, "hetzner", clock).server_count() == 0


@pytest.mark.parametrize(
    ("provider", "server_type", "location"), [("hetzner", "cx42", "hel1"), ("digitalocean", "s-4vcpu-8gb", "sgp1")]
)
def test_the_demo_sandboxes_start_with_one_combination_sold_out(
    clock: FakeClock, provider: str, server_type: str, location: str
) -> None:
    sandbox = sandbox_for(1, provider, clock)

    sold_out = [(o.server_type, o.location) for o in sandbox.offers() if not o.available]
    verdict = sandbox.check_availability(server_type, location)

    assert sold_out == [(server_type, location)]
    assert not verdict.available and not verdict.permanent
    assert verdict.alternatives


def test_the_registry_refuses_unknown_providers(clock: FakeClock) -> None:
    with pytest.raises(ValueError, match="no sandbox catalog"):
        sandbox_for(1, "aws", clock)


# --- Resizing and prices ---------------------------------------------------------------------------


def test_a_resize_needs_the_server_off_and_never_shrinks_its_disk(cloud: SandboxCloud, clock: FakeClock) -> None:
    server_id = running_server(cloud, clock)
    with pytest.raises(ProviderError) as on:
        cloud.resize(server_id, "cx32", upgrade_disk=True)
    assert on.value.kind is ErrorKind.INVALID
    cloud.power_off(server_id)
    with pytest.raises(ProviderError) as busy:
        cloud.resize(server_id, "cx32", upgrade_disk=True)
    assert busy.value.kind is ErrorKind.BUSY
    clock.advance(3)

    action = cloud.resize(server_id, "cx32", upgrade_disk=True)

    assert (action.command, action.status) == ("change_type", ActionStatus.RUNNING)
    clock.advance(3)
    info = cloud.server_info(server_id)
    assert (info.server_type, info.power, cloud.disk_gb(server_id)) == ("cx32", PowerState.OFF, 80)
    with pytest.raises(ProviderError) as smaller:
        cloud.resize(server_id, "cx22", upgrade_disk=False)
    assert smaller.value.kind is ErrorKind.INVALID


def test_a_resize_takes_capacity_of_the_new_type(cloud: SandboxCloud, clock: FakeClock) -> None:
    server_id = running_server(cloud, clock)
    cloud.power_off(server_id)
    clock.advance(3)
    cloud.set_capacity("cx32", "fsn1", 0)
    with pytest.raises(ProviderError) as sold_out:
        cloud.resize(server_id, "cx32", upgrade_disk=False)
    assert sold_out.value.kind is ErrorKind.UNAVAILABLE
    cloud.set_capacity("cx32", "fsn1", 1)
    cloud.set_capacity("cx22", "fsn1", 0)

    cloud.resize(server_id, "cx32", upgrade_disk=False)

    assert (cloud.capacity("cx32", "fsn1"), cloud.capacity("cx22", "fsn1")) == (0, 1)


def test_prices_are_the_catalog(cloud: SandboxCloud) -> None:
    prices = {(p.server_type, p.location): p.monthly_minor for p in cloud.prices()}

    assert prices == {(o.server_type, o.location): o.price_minor for o in HETZNER_OFFERS}
