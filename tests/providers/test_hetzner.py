"""The Hetzner adapter against the fake Hetzner API, over real HTTP on loopback, through the real hcloud SDK.

Time in the fake comes from a clock the tests move; only the fault injections that need a real timeout
(lost answers, slow answers, the SDK's own retries) really wait, for fractions of a second.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
import requests
from werkzeug.test import Client

from app.domain.availability import AlternativeKind
from app.providers.base import ActionStatus, CloudProvider, ErrorKind, PowerState, ProviderError, ServerSpec
from app.providers.hetzner import DEFAULT_RETRIES, HetznerCloud
from app.sandbox import FakeServer, serve
from app.sandbox.cloud import HETZNER_OFFERS
from app.sandbox.hetzner_api import HetznerFake

TOKEN = "test-token"
START = datetime(2026, 3, 15, 10, 0, tzinfo=UTC)


class FakeClock:
    """A clock that only moves when told to."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


# One fake served for the module (stopping a server takes up to half a second); each test resets it.
@pytest.fixture(scope="module")
def module_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="module")
def served(module_clock: FakeClock) -> Iterator[tuple[HetznerFake, FakeServer]]:
    fake = HetznerFake(clock=module_clock, boot_seconds=8, action_seconds=2, token=TOKEN)
    server = serve(fake)
    yield fake, server
    server.shutdown()


@pytest.fixture
def clock(module_clock: FakeClock) -> FakeClock:
    module_clock.now = START
    return module_clock


@pytest.fixture
def fake(served: tuple[HetznerFake, FakeServer], clock: FakeClock) -> HetznerFake:
    served[0].reset()
    return served[0]


@pytest.fixture
def api(served: tuple[HetznerFake, FakeServer], fake: HetznerFake) -> FakeServer:
    return served[1]


@pytest.fixture
def connect(api: FakeServer) -> Iterator[Callable[..., HetznerCloud]]:
    """Build adapters on the fake: short timeouts, one quick SDK retry unless told otherwise."""
    made: list[HetznerCloud] = []

    def make(token: str = TOKEN, **options: object) -> HetznerCloud:
        settings: dict[str, object] = {"timeout": 2.0, "retries": 1, "backoff": 0.01, "poll_interval": 0.01}
        settings = {"endpoint": f"{api.url}/v1", **settings, **options}
        cloud = HetznerCloud(token, **settings)  # type: ignore[arg-type]
        made.append(cloud)
        return cloud

    yield make
    for cloud in made:
        cloud.close()


@pytest.fixture
def cloud(connect: Callable[..., HetznerCloud]) -> HetznerCloud:
    return connect()


def spec(name: str = "acme-s1-i1", server_type: str = "cx22", location: str = "fsn1", **labels: str) -> ServerSpec:
    return ServerSpec(name, server_type, location, "ubuntu-24.04", user_data="#cloud-config\n",
                      labels=labels or {"portal-item": name.rsplit("-", 1)[-1]})


def operations(fake: HetznerFake, operation: str) -> list[int]:
    """The statuses the fake answered to `operation`, in order."""
    return [call.status for call in fake.calls if call.operation == operation]


def running_server(cloud: HetznerCloud, clock: FakeClock, name: str = "acme-s1-i1") -> str:
    server_id = cloud.create_server(spec(name)).server_id
    clock.advance(8)
    return server_id


def test_it_is_a_cloud_provider(cloud: HetznerCloud) -> None:
    provider: CloudProvider = cloud
    assert provider.name == "hetzner"


def test_a_trailing_slash_on_the_endpoint_is_tolerated(connect: Callable[..., HetznerCloud], api: FakeServer,
                                                       fake: HetznerFake) -> None:
    cloud = connect(endpoint=f"{api.url}/v1/")

    assert cloud.find_server(spec()) is None
    assert [call.path for call in fake.calls] == ["/v1/servers"]


# --- Offers and availability -----------------------------------------------------------------------


def test_offers_are_the_catalog_with_monthly_net_prices_in_cents(cloud: HetznerCloud) -> None:
    assert sorted(cloud.offers(), key=lambda o: (o.server_type, o.location)) == sorted(
        HETZNER_OFFERS, key=lambda o: (o.server_type, o.location))


@pytest.mark.parametrize(("net", "cents"), [("4.5950000000", 460), ("4.5949999999", 459), ("12", 1200)])
def test_a_price_is_converted_once_half_up(cloud: HetznerCloud, fake: HetznerFake, net: str, cents: int) -> None:
    fake.set_price("cx22", "fsn1", net)

    offer = next(o for o in cloud.offers() if (o.server_type, o.location) == ("cx22", "fsn1"))

    assert (offer.price_minor, offer.currency) == (cents, "EUR")


def test_deprecation_and_capacity_show_in_the_offers(cloud: HetznerCloud, fake: HetznerFake) -> None:
    fake.set_deprecated("cx32", "nbg1")
    fake.set_capacity("cx42", "hel1", 0)

    offers = {(o.server_type, o.location): o for o in cloud.offers()}

    assert offers["cx32", "nbg1"].deprecated and not offers["cx32", "fsn1"].deprecated
    assert not offers["cx42", "hel1"].available and offers["cx42", "fsn1"].available


def test_sold_out_is_retryable_later_with_alternatives(cloud: HetznerCloud, fake: HetznerFake) -> None:
    fake.set_capacity("cx42", "hel1", 0)

    verdict = cloud.check_availability("cx42", "hel1")

    assert not verdict.available and not verdict.permanent
    assert verdict.message == "cx42 is sold out in Helsinki, Finland (hel1) for now."
    first = verdict.alternatives[0]
    assert (first.kind, first.server_type, first.price_minor) == (AlternativeKind.OTHER_LOCATION, "cx42", 1899)


def test_an_unsupported_combination_is_permanent(cloud: HetznerCloud) -> None:
    verdict = cloud.check_availability("cx22", "ash")

    assert not verdict.available and verdict.permanent
    assert [(a.server_type, a.location) for a in verdict.alternatives
            if a.kind is AlternativeKind.OTHER_SERVER_TYPE] == [("cpx21", "ash")]
    assert cloud.check_availability("cpx21", "ash").available


# --- Lifecycle -------------------------------------------------------------------------------------


def test_a_new_server_provisions_then_runs(cloud: HetznerCloud, clock: FakeClock) -> None:
    created = cloud.create_server(spec())

    assert created.power is PowerState.PROVISIONING and not created.ready
    assert created.action is not None
    assert (created.action.command, created.action.status, created.action.progress) == (
        "create_server", ActionStatus.RUNNING, 0)
    assert (created.name, created.server_type, created.location) == ("acme-s1-i1", "cx22", "fsn1")
    assert created.ipv4 == "203.0.113.1" and created.ipv6 == "2001:db8:0:1::1"
    assert created.labels == {"portal-item": "i1"} and created.created_at == clock.now

    clock.advance(4)
    halfway = cloud.server_info(created.server_id)
    assert halfway.power is PowerState.PROVISIONING
    assert halfway.action is not None and halfway.action.progress == 50

    clock.advance(4)
    running = cloud.server_info(created.server_id)
    assert (running.power, running.action, running.ready) == (PowerState.RUNNING, None, True)


def test_power_actions_show_their_progress(cloud: HetznerCloud, clock: FakeClock) -> None:
    server_id = running_server(cloud, clock)

    stopping = cloud.power_off(server_id)
    assert (stopping.command, stopping.status) == ("stop_server", ActionStatus.RUNNING)  # Hetzner's names
    assert cloud.server_info(server_id).power is PowerState.STOPPING
    clock.advance(2)
    assert cloud.server_info(server_id).power is PowerState.OFF
    assert cloud.power_off(server_id).status is ActionStatus.SUCCESS  # off already: done at once

    assert cloud.power_on(server_id).command == "start_server"
    assert cloud.server_info(server_id).power is PowerState.STARTING
    clock.advance(2)
    assert cloud.reboot(server_id).command == "reboot_server"
    rebooting = cloud.server_info(server_id)
    assert rebooting.power is PowerState.REBOOTING
    assert rebooting.action is not None and rebooting.action.command == "reboot_server"


def test_a_shutdown_is_sent_then_the_guest_turns_the_server_off(cloud: HetznerCloud, fake: HetznerFake,
                                                                 clock: FakeClock) -> None:
    server_id = running_server(cloud, clock)

    action = cloud.shutdown(server_id)

    assert (action.command, action.status) == ("shutdown_server", ActionStatus.RUNNING)
    assert [(c.operation, c.method, c.path, c.status) for c in fake.calls][-1] == (
        "action", "POST", f"/v1/servers/{server_id}/actions/shutdown", 201)
    assert cloud.server_info(server_id).power is PowerState.STOPPING  # while the request is being sent
    clock.advance(1)
    sent = cloud.server_info(server_id)
    assert (sent.power, sent.action) == (PowerState.RUNNING, None)  # sent, but the guest is still shutting down
    clock.advance(1)
    assert cloud.server_info(server_id).power is PowerState.OFF
    assert [a["command"] for a in fake.state()["actions"]][-1] == "shutdown_server"


def test_a_guest_that_ignores_a_shutdown_stays_on_until_powered_off(cloud: HetznerCloud, fake: HetznerFake,
                                                                     clock: FakeClock) -> None:
    server_id = running_server(cloud, clock)
    fake.ignore_shutdown()

    cloud.shutdown(server_id)
    clock.advance(60)

    assert cloud.server_info(server_id).power is PowerState.RUNNING
    assert cloud.power_off(server_id).status is ActionStatus.RUNNING  # the hard stop is not refused
    clock.advance(2)
    assert cloud.server_info(server_id).power is PowerState.OFF


def test_a_shutdown_while_another_action_runs_is_busy_and_of_a_gone_server_not_found(
        cloud: HetznerCloud, fake: HetznerFake, clock: FakeClock) -> None:
    server_id = cloud.create_server(spec()).server_id
    with pytest.raises(ProviderError) as busy:
        cloud.shutdown(server_id)  # still booting
    fake.delete_out_of_band(server_id)
    with pytest.raises(ProviderError) as gone:
        cloud.shutdown(server_id)

    assert busy.value.kind is ErrorKind.BUSY and busy.value.retryable
    assert gone.value.kind is ErrorKind.NOT_FOUND and not gone.value.retryable
    assert operations(fake, "action") == [423, 404]


def test_creating_consumes_capacity_and_deleting_frees_it(cloud: HetznerCloud, fake: HetznerFake) -> None:
    fake.set_capacity("cx22", "fsn1", 1)
    first = cloud.create_server(spec("acme-s1-i1"))

    with pytest.raises(ProviderError) as sold_out:
        cloud.create_server(spec("acme-s1-i2"))
    assert sold_out.value.kind is ErrorKind.UNAVAILABLE and sold_out.value.retryable is False
    assert sold_out.value.message == "cx22 is sold out in fsn1 for now."

    cloud.delete_server(first.server_id)
    assert cloud.create_server(spec("acme-s1-i2")).name == "acme-s1-i2"


def test_an_unsupported_location_is_invalid(cloud: HetznerCloud, fake: HetznerFake) -> None:
    with pytest.raises(ProviderError) as error:
        cloud.create_server(spec(location="ash"))

    assert (error.value.kind, error.value.message) == (ErrorKind.INVALID, "cx22 is not offered in ash.")
    assert fake.state()["servers"] == []


def test_delete_twice_is_not_an_error(cloud: HetznerCloud, fake: HetznerFake) -> None:
    server_id = cloud.create_server(spec()).server_id

    cloud.delete_server(server_id)
    cloud.delete_server(server_id)

    assert fake.state()["servers"] == []
    assert operations(fake, "delete") == [200, 404]


# --- Idempotent creates ----------------------------------------------------------------------------


def test_creating_again_adopts_the_server(cloud: HetznerCloud, fake: HetznerFake) -> None:
    first = cloud.create_server(spec())
    again = cloud.create_server(spec())

    assert again.server_id == first.server_id
    assert len(fake.state()["servers"]) == 1
    assert operations(fake, "create") == [201]


def test_find_server_needs_the_name_and_the_labels(cloud: HetznerCloud) -> None:
    assert cloud.find_server(spec()) is None
    created = cloud.create_server(spec())

    found = cloud.find_server(spec())

    assert found is not None and found.server_id == created.server_id
    assert cloud.find_server(spec(**{"portal-item": "other"})) is None


def test_a_name_taken_by_another_server_is_a_conflict(cloud: HetznerCloud, fake: HetznerFake) -> None:
    cloud.create_server(spec(**{"portal-item": "someone-else"}))

    with pytest.raises(ProviderError) as error:
        cloud.create_server(spec())

    assert error.value.kind is ErrorKind.CONFLICT
    assert operations(fake, "create") == [201]


def test_oversized_user_data_is_refused_before_any_request(cloud: HetznerCloud, fake: HetznerFake) -> None:
    big = ServerSpec("acme-s1-i1", "cx22", "fsn1", "ubuntu-24.04", user_data="x" * (32 * 1024 + 1))

    with pytest.raises(ProviderError) as error:
        cloud.create_server(big)

    assert error.value.kind is ErrorKind.INVALID and "32 KiB" in error.value.message
    assert fake.calls == []


# --- RELIABILITY row 26: the create succeeded, the answer was lost ----------------------------------


def test_a_timed_out_create_retried_by_the_sdk_adopts_the_server(connect: Callable[..., HetznerCloud],
                                                                 fake: HetznerFake) -> None:
    cloud = connect(timeout=0.3, retries=1)
    fake.lose_next_answer("create", delay=0.6)

    created = cloud.create_server(spec())

    assert len(fake.state()["servers"]) == 1
    assert created.server_id == str(fake.state()["servers"][0]["id"])
    assert operations(fake, "create") == [201, 409]  # the SDK sent the POST again: uniqueness_error


@pytest.mark.parametrize("delay", [None, 0.6], ids=["connection dropped", "timed out"])
def test_a_lost_create_answer_is_followed_by_a_look_up(connect: Callable[..., HetznerCloud], fake: HetznerFake,
                                                       delay: float | None) -> None:
    cloud = connect(timeout=0.3, retries=0)
    fake.lose_next_answer("create", delay=delay)

    created = cloud.create_server(spec())
    again = cloud.create_server(spec())  # the caller's own retry

    assert created.server_id == again.server_id
    assert len(fake.state()["servers"]) == 1
    assert operations(fake, "create") == [201]


def test_a_create_that_failed_before_placing_raises_transient_and_the_retry_creates(
        connect: Callable[..., HetznerCloud], fake: HetznerFake) -> None:
    cloud = connect(retries=0)
    fake.fail_next("create", 504, json_body=False)

    with pytest.raises(ProviderError) as error:
        cloud.create_server(spec())
    assert error.value.kind is ErrorKind.TRANSIENT and error.value.retryable
    assert fake.state()["servers"] == []

    cloud.create_server(spec())
    assert len(fake.state()["servers"]) == 1


# --- RELIABILITY row 27: rate limits, 5xx, 4xx, and the SDK's own retries ---------------------------


def test_rate_limited_with_retry_after(cloud: HetznerCloud, fake: HetznerFake) -> None:
    fake.fail_next("get", 429, retry_after=7, times=2)

    with pytest.raises(ProviderError) as error:
        cloud.server_info("1")

    assert (error.value.kind, error.value.retry_after, error.value.retryable) == (ErrorKind.RATE_LIMITED, 7, True)
    assert operations(fake, "get") == [429, 429]  # the SDK retried once, as configured


def test_the_fakes_own_rate_limit_answers_429(connect: Callable[..., HetznerCloud], fake: HetznerFake,
                                               clock: FakeClock) -> None:
    cloud = connect(retries=0)
    fake.set_rate_limit(2)
    cloud.find_server(spec())
    cloud.find_server(spec())

    with pytest.raises(ProviderError) as error:
        cloud.find_server(spec())
    assert error.value.kind is ErrorKind.RATE_LIMITED and error.value.retry_after == 1800

    clock.advance(1800)  # the bucket refills gradually
    assert cloud.find_server(spec()) is None


@pytest.mark.parametrize(("status", "code", "json_body", "calls"), [
    (500, "server_error", True, [500]),  # not retried by the SDK
    (502, "bad_gateway", True, [502, 502]),
    (504, None, False, [504, 504]),  # a proxy's answer without a JSON body
    (503, "unavailable", False, [503]),
])
def test_server_errors_are_transient(cloud: HetznerCloud, fake: HetznerFake, status: int, code: str | None,
                                     json_body: bool, calls: list[int]) -> None:
    fake.fail_next("list", status, code, times=2, json_body=json_body)

    with pytest.raises(ProviderError) as error:
        cloud.find_server(spec())

    assert error.value.kind is ErrorKind.TRANSIENT and error.value.retry_after is None
    assert operations(fake, "list") == calls


def test_invalid_input_is_not_retried(cloud: HetznerCloud, fake: HetznerFake) -> None:
    fake.fail_next("create", 400, "invalid_input", "invalid input in field 'image'", times=3)

    with pytest.raises(ProviderError) as error:
        cloud.create_server(spec())

    assert error.value.kind is ErrorKind.INVALID and not error.value.retryable
    assert "image" in error.value.message
    assert operations(fake, "create") == [400]


def test_the_sdks_own_retries_are_few_and_short(connect: Callable[..., HetznerCloud], fake: HetznerFake) -> None:
    cloud = connect(retries=None, backoff=0.5)  # the defaults the workers use
    fake.fail_next("types", 502, "bad_gateway", times=20)

    started = time.monotonic()
    with pytest.raises(ProviderError) as error:
        cloud.offers()

    assert time.monotonic() - started < 3  # the SDK alone would retry 5 times over up to ~2 minutes
    assert error.value.kind is ErrorKind.TRANSIENT
    assert len(operations(fake, "types")) == 1 + DEFAULT_RETRIES


def test_a_slow_api_times_out_within_the_bound(connect: Callable[..., HetznerCloud], fake: HetznerFake) -> None:
    cloud = connect(timeout=0.2, retries=1)
    fake.slow_next("get", 0.5, times=2)

    started = time.monotonic()
    with pytest.raises(ProviderError) as error:
        cloud.server_info("1")

    assert time.monotonic() - started < 1.5
    assert error.value.kind is ErrorKind.TRANSIENT
    assert fake.state()["pending_faults"] == {}  # both slow answers were asked for: the SDK retried once


def test_an_unreachable_api_is_transient() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    cloud = HetznerCloud(TOKEN, endpoint=f"http://127.0.0.1:{port}/v1", timeout=1, retries=0)

    with pytest.raises(ProviderError) as error:
        cloud.server_info("1")

    assert error.value.kind is ErrorKind.TRANSIENT
    cloud.close()


# --- RELIABILITY rows 29 and 30: deleted in the console, busy ---------------------------------------


def test_a_server_deleted_in_the_console_is_not_found(cloud: HetznerCloud, fake: HetznerFake) -> None:
    server_id = cloud.create_server(spec()).server_id
    fake.delete_out_of_band(server_id)

    with pytest.raises(ProviderError) as error:
        cloud.server_info(server_id)

    assert error.value.kind is ErrorKind.NOT_FOUND and not error.value.retryable
    with pytest.raises(ProviderError, match="not_found"):
        cloud.server_info("not-a-number")


def test_a_power_action_while_another_runs_is_busy_and_not_doubled(cloud: HetznerCloud, fake: HetznerFake,
                                                                   clock: FakeClock) -> None:
    server_id = cloud.create_server(spec()).server_id
    with pytest.raises(ProviderError) as booting:
        cloud.power_off(server_id)
    assert booting.value.kind is ErrorKind.BUSY and booting.value.retryable

    clock.advance(8)
    cloud.power_off(server_id)
    with pytest.raises(ProviderError) as busy:
        cloud.power_on(server_id)

    assert busy.value.kind is ErrorKind.BUSY
    assert operations(fake, "action") == [423, 201, 423]  # locked is not retried by the SDK
    assert [a["command"] for a in fake.state()["actions"] if a["command"] not in ("create_server", "start_server")
            ] == ["stop_server"]


# --- Access: keys in the user data, root passwords, rebuild, password reset ---------------------------

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ3c5m0Lr0mAkgmmTiN0T0nJHc8m8pXcWbJbTz6l1Q9x casey@laptop"


def test_the_user_data_with_the_keys_reaches_hetzner_and_the_root_password_is_answered(
        cloud: HetznerCloud, fake: HetznerFake) -> None:
    user_data = f"#cloud-config\nssh_authorized_keys:\n- {KEY}\n"
    info = cloud.create_server(ServerSpec("web.acme.example.test", "cx22", "fsn1", "ubuntu-24.04",
                                          user_data=user_data, labels={"portal-item": "1"}))

    received = fake.received(info.server_id)
    assert received["user_data"] == user_data and received["ssh_keys"] == []
    # No Hetzner key object was named, so Hetzner set a root password and answered it; it stays out of reprs.
    assert info.root_password and info.root_password not in repr(info)
    assert cloud.find_server(spec("web.acme.example.test")) is None  # labels differ
    assert cloud.server_info(info.server_id).root_password is None  # only a create's answer carries one


def test_a_rebuild_sends_the_image_and_the_user_data_again_and_locks_the_server(
        cloud: HetznerCloud, fake: HetznerFake, clock: FakeClock) -> None:
    server_id = running_server(cloud, clock)

    rebuilt = cloud.rebuild(server_id, image="debian-12", user_data=f"#cloud-config\nssh_authorized_keys: [{KEY}]\n")

    assert rebuilt.action.command == "rebuild_server" and rebuilt.action.status is ActionStatus.RUNNING
    assert rebuilt.root_password and rebuilt.root_password not in repr(rebuilt)
    assert fake.received(server_id)["rebuilds"] == [
        {"image": "debian-12", "user_data": f"#cloud-config\nssh_authorized_keys: [{KEY}]\n"}]
    info = cloud.server_info(server_id)
    assert info.power is PowerState.PROVISIONING and info.action.command == "rebuild_server"
    with pytest.raises(ProviderError) as busy:
        cloud.reset_password(server_id)
    assert busy.value.kind is ErrorKind.BUSY
    clock.advance(8)
    assert cloud.server_info(server_id).power is PowerState.RUNNING
    assert fake.state()["servers"][0]["image"]["name"] == "debian-12"


def test_a_reset_password_answers_a_new_one_and_is_busy_while_another_action_runs(
        cloud: HetznerCloud, fake: HetznerFake, clock: FakeClock) -> None:
    server_id = running_server(cloud, clock)

    first = cloud.reset_password(server_id)
    with pytest.raises(ProviderError) as busy:
        cloud.rebuild(server_id, image="ubuntu-24.04")
    clock.advance(2)
    second = cloud.reset_password(server_id)

    assert first.action.command == "reset_password" and first.root_password != second.root_password
    assert busy.value.kind is ErrorKind.BUSY
    assert fake.received(server_id)["password_resets"] == 2 and fake.received(server_id)["rebuilds"] == []


def test_a_server_made_with_a_hetzner_key_gets_no_password(http: requests.Session, api: FakeServer,
                                                            clock: FakeClock) -> None:
    with_key = create(http, api.url, "keyed", ssh_keys=["casey"]).json()
    assert with_key["root_password"] is None
    clock.advance(8)
    rebuilt = http.post(f"{api.url}/v1/servers/{with_key['server']['id']}/actions/rebuild",
                        json={"image": "debian-12"}, timeout=5).json()
    assert rebuilt["root_password"] is None and rebuilt["action"]["command"] == "rebuild_server"
    assert create(http, api.url, "bad-keys", ssh_keys="casey").json()["error"]["code"] == "invalid_input"


def test_a_rebuild_of_a_gone_server_is_not_found(cloud: HetznerCloud) -> None:
    with pytest.raises(ProviderError) as gone:
        cloud.rebuild("4711", image="debian-12")
    assert gone.value.kind is ErrorKind.NOT_FOUND


# --- RELIABILITY row 31: revoked token, quota ------------------------------------------------------


def test_a_wrong_token_fails_fast(connect: Callable[..., HetznerCloud], fake: HetznerFake) -> None:
    started = time.monotonic()
    with pytest.raises(ProviderError) as error:
        connect("wrong").create_server(spec())

    assert time.monotonic() - started < 1
    assert error.value.kind is ErrorKind.AUTH and not error.value.retryable
    assert "token" in error.value.message
    assert operations(fake, "list") == [401]  # the look-up before the create: nothing created


def test_a_revoked_token_is_auth(cloud: HetznerCloud, fake: HetznerFake) -> None:
    server_id = cloud.create_server(spec()).server_id
    fake.set_token("rotated")

    with pytest.raises(ProviderError) as error:
        cloud.server_info(server_id)

    assert error.value.kind is ErrorKind.AUTH


def test_the_server_quota_fails_fast_with_a_clear_message(cloud: HetznerCloud, fake: HetznerFake) -> None:
    fake.set_server_limit(1)
    cloud.create_server(spec("acme-s1-i1"))

    with pytest.raises(ProviderError) as error:
        cloud.create_server(spec("acme-s1-i2"))

    assert error.value.kind is ErrorKind.AUTH and "quota" in error.value.message
    assert operations(fake, "create") == [201, 403]


# --- The fake's /_control interface, over HTTP -----------------------------------------------------


@pytest.fixture
def http(api: FakeServer) -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {TOKEN}"
        yield session


def create(http: requests.Session, url: str, name: str = "web-1", timeout: float = 5, **body: object
           ) -> requests.Response:
    return http.post(f"{url}/v1/servers", json={"name": name, "server_type": "cx22", "image": "ubuntu-24.04",
                                                "location": "fsn1", **body}, timeout=timeout)


def type_location(http: requests.Session, url: str, server_type: str, location: str) -> dict[str, object]:
    types = http.get(f"{url}/v1/server_types", timeout=5).json()["server_types"]
    return next(entry for t in types if t["name"] == server_type for entry in t["locations"]
                if entry["name"] == location)


def test_control_capacity(http: requests.Session, api: FakeServer) -> None:
    control = f"{api.url}/_control/capacity"
    assert http.post(control, json={"server_type": "cx22", "location": "fsn1", "count": 0}, timeout=5).ok
    assert type_location(http, api.url, "cx22", "fsn1")["available"] is False
    sold_out = create(http, api.url)
    assert sold_out.status_code == 412
    assert sold_out.json()["error"] == {"code": "resource_unavailable", "message": "error during placement",
                                        "details": {}}

    http.post(control, json={"server_type": "cx22", "location": "fsn1", "count": None}, timeout=5)
    assert create(http, api.url).status_code == 201
    assert http.post(control, json={"server_type": "cx22", "location": "ash", "count": 1}, timeout=5).status_code == 400


def test_control_error_faults(http: requests.Session, api: FakeServer) -> None:
    faults = f"{api.url}/_control/faults"
    http.post(faults, json={"operation": "locations", "status": 429, "retry_after": 30}, timeout=5)
    http.post(faults, json={"operation": "locations", "status": 502, "json_body": False}, timeout=5)
    assert http.get(f"{api.url}/_control/state", timeout=5).json()["pending_faults"] == {"locations": 2}

    limited = http.get(f"{api.url}/v1/locations", timeout=5)
    assert (limited.status_code, limited.headers["Retry-After"]) == (429, "30")
    assert limited.json()["error"]["code"] == "rate_limit_exceeded" and limited.json()["error"]["message"]
    proxy = http.get(f"{api.url}/v1/locations", timeout=5)
    assert proxy.status_code == 502 and proxy.headers["Content-Type"].startswith("text/html")
    assert http.get(f"{api.url}/v1/locations", timeout=5).ok

    http.post(faults, json={"operation": "get", "status": 500}, timeout=5)
    assert http.delete(faults, timeout=5).ok
    assert http.get(f"{api.url}/_control/state", timeout=5).json()["pending_faults"] == {}
    assert http.post(faults, json={"operation": "bogus", "status": 500}, timeout=5).status_code == 400
    assert http.post(faults, json={"operation": "get", "kind": "bogus"}, timeout=5).status_code == 400


def test_control_slow_and_lost_answers(http: requests.Session, api: FakeServer, fake: HetznerFake) -> None:
    faults = f"{api.url}/_control/faults"
    http.post(faults, json={"operation": "types", "kind": "slow", "seconds": 0.2}, timeout=5)
    started = time.monotonic()
    assert http.get(f"{api.url}/v1/server_types", timeout=5).ok
    assert time.monotonic() - started >= 0.2

    http.post(faults, json={"operation": "create", "kind": "lose_answer"}, timeout=5)
    with pytest.raises(requests.ConnectionError):
        create(http, api.url)
    assert [s["name"] for s in fake.state()["servers"]] == ["web-1"]

    http.post(faults, json={"operation": "create", "kind": "lose_answer", "delay": 0.5}, timeout=5)
    with pytest.raises(requests.Timeout):
        create(http, api.url, "web-2", timeout=0.2)
    assert [s["name"] for s in fake.state()["servers"]] == ["web-1", "web-2"]


def test_control_out_of_band_delete_and_state(http: requests.Session, api: FakeServer) -> None:
    server_id = create(http, api.url).json()["server"]["id"]

    assert http.delete(f"{api.url}/_control/servers/{server_id}", timeout=5).ok
    gone = http.get(f"{api.url}/v1/servers/{server_id}", timeout=5)
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "not_found"
    assert http.delete(f"{api.url}/_control/servers/{server_id}", timeout=5).status_code == 400
    state = http.get(f"{api.url}/_control/state", timeout=5).json()
    assert state["servers"] == [] and [a["command"] for a in state["actions"]] == ["create_server", "start_server"]
    calls = http.get(f"{api.url}/_control/calls", timeout=5).json()["calls"]
    assert [(c["operation"], c["status"]) for c in calls] == [("create", 201), ("get", 404)]


def test_control_prices_deprecation_token_limit_time_and_reset(http: requests.Session, api: FakeServer,
                                                               fake: HetznerFake) -> None:
    control = f"{api.url}/_control"
    http.post(f"{control}/prices", json={"server_type": "cx22", "location": "fsn1", "monthly_net": "5.1"}, timeout=5)
    http.post(f"{control}/deprecation", json={"server_type": "cx22", "location": "fsn1"}, timeout=5)
    types = http.get(f"{api.url}/v1/server_types", timeout=5).json()["server_types"]
    cx22 = next(t for t in types if t["name"] == "cx22")
    assert cx22["prices"][0]["location"] == "fsn1"
    assert cx22["prices"][0]["price_monthly"] == {"net": "5.1000000000", "gross": "6.0690000000"}
    assert cx22["locations"][0]["deprecation"]["unavailable_after"]

    http.post(f"{control}/server_limit", json={"limit": 0}, timeout=5)
    assert create(http, api.url).json()["error"]["code"] == "resource_limit_exceeded"
    http.post(f"{control}/token", json={"token": "other"}, timeout=5)
    assert http.get(f"{api.url}/v1/locations", timeout=5).json()["error"]["code"] == "unauthorized"

    http.post(f"{control}/reset", timeout=5)
    assert create(http, api.url).status_code == 201
    http.post(f"{control}/advance", json={"seconds": 8}, timeout=5)
    assert fake.state()["servers"][0]["status"] == "running"


def test_the_fake_answers_like_hetzner(http: requests.Session, api: FakeServer) -> None:
    created = create(http, api.url, labels={"portal-item": "7", "env": "prod"})
    assert created.status_code == 201
    assert set(created.json()) == {"server", "action", "next_actions", "root_password"}
    server = created.json()["server"]
    assert server["status"] == "initializing" and server["public_net"]["floating_ips"] == []
    assert server["public_net"]["ipv6"]["ip"].endswith("/64") and server["private_net"] == []
    assert created.headers["RateLimit-Limit"] == "3600" and "RateLimit-Reset" in created.headers

    assert create(http, api.url).json()["error"]["code"] == "uniqueness_error"
    unsupported = create(http, api.url, "web-2", location="ash")
    assert (unsupported.status_code, unsupported.json()["error"]["message"]) == (
        400, "unsupported location for server type")
    assert create(http, api.url, "web-3", user_data="x" * 40_000).json()["error"]["code"] == "invalid_input"
    assert create(http, api.url, "-bad-").status_code == 400
    assert requests.get(f"{api.url}/v1/servers", timeout=5).status_code == 401  # no token

    create(http, api.url, "web-4", labels={"portal-item": "8"})
    listed = http.get(f"{api.url}/v1/servers", params={"per_page": 1}, timeout=5).json()
    assert listed["meta"]["pagination"]["next_page"] == 2 and listed["meta"]["pagination"]["total_entries"] == 2
    for selector, names in [("env=prod", ["web-1"]), ("portal-item", ["web-1", "web-4"]), ("!env", ["web-4"]),
                            ("portal-item in (8,9)", ["web-4"]), ("env!=prod,portal-item", ["web-4"])]:
        found = http.get(f"{api.url}/v1/servers", params={"label_selector": selector}, timeout=5).json()
        assert [s["name"] for s in found["servers"]] == names, selector
    by_name = http.get(f"{api.url}/v1/servers", params={"name": "web-4"}, timeout=5).json()["servers"]
    assert [s["name"] for s in by_name] == ["web-4"]

    deleted = http.delete(f"{api.url}/v1/servers/{server['id']}", timeout=5)
    assert deleted.status_code == 200 and deleted.json()["action"]["command"] == "delete_server"


def test_the_demo_fake_starts_with_cx42_sold_out_in_hel1() -> None:
    fake = HetznerFake(demo=True)
    fake.set_capacity("cx42", "hel1", None)
    fake.reset()

    types = Client(fake).get("/v1/server_types").get_json()["server_types"]

    cx42 = {entry["name"]: entry["available"] for t in types if t["name"] == "cx42" for entry in t["locations"]}
    assert cx42 == {"fsn1": True, "nbg1": True, "hel1": False}


# --- Resizing (change_type) and prices ------------------------------------------------------------


def stopped_server(cloud: HetznerCloud, clock: FakeClock) -> str:
    server_id = running_server(cloud, clock)
    cloud.power_off(server_id)
    clock.advance(3)
    return server_id


def test_a_running_server_cannot_change_type(cloud: HetznerCloud, fake: HetznerFake, clock: FakeClock) -> None:
    server_id = running_server(cloud, clock)

    with pytest.raises(ProviderError) as refused:
        cloud.resize(server_id, "cx32", upgrade_disk=True)

    assert refused.value.kind is ErrorKind.INVALID
    assert "stopped" in refused.value.message
    assert cloud.server_info(server_id).server_type == "cx22"
    assert fake.received(server_id)["type_changes"] == []


def test_a_stopped_server_changes_type_with_an_action(cloud: HetznerCloud, fake: HetznerFake,
                                                      clock: FakeClock) -> None:
    server_id = stopped_server(cloud, clock)

    action = cloud.resize(server_id, "cx32", upgrade_disk=False)

    assert (action.command, action.status) == ("change_server_type", ActionStatus.RUNNING)
    assert cloud.server_info(server_id).action is not None
    clock.advance(3)
    info = cloud.server_info(server_id)
    assert (info.server_type, info.power, info.action) == ("cx32", PowerState.OFF, None)
    assert fake.received(server_id)["type_changes"] == [{"server_type": "cx32", "upgrade_disk": False}]


def test_a_disk_never_shrinks_once_upgraded(cloud: HetznerCloud, clock: FakeClock) -> None:
    server_id = stopped_server(cloud, clock)
    cloud.resize(server_id, "cx32", upgrade_disk=False)
    clock.advance(3)
    cloud.resize(server_id, "cx22", upgrade_disk=False)  # the disk was kept: back down is allowed
    clock.advance(3)
    cloud.resize(server_id, "cx32", upgrade_disk=True)  # 40 GB -> 80 GB
    clock.advance(3)

    with pytest.raises(ProviderError) as refused:
        cloud.resize(server_id, "cx22", upgrade_disk=False)

    assert refused.value.kind is ErrorKind.INVALID
    assert "disk" in refused.value.message
    assert cloud.server_info(server_id).server_type == "cx32"


def test_a_resize_while_another_action_runs_is_busy(cloud: HetznerCloud, clock: FakeClock) -> None:
    server_id = running_server(cloud, clock)
    cloud.power_off(server_id)

    with pytest.raises(ProviderError) as refused:
        cloud.resize(server_id, "cx32", upgrade_disk=True)

    assert refused.value.kind is ErrorKind.BUSY


def test_prices_are_every_type_and_location_in_cents_with_specs(cloud: HetznerCloud) -> None:
    prices = {(p.server_type, p.location): p for p in cloud.prices()}

    assert set(prices) == {(o.server_type, o.location) for o in HETZNER_OFFERS}
    cx22 = prices["cx22", "fsn1"]
    assert (cx22.monthly_minor, cx22.currency, cx22.vcpus, cx22.memory_gb, cx22.disk_gb) == (459, "EUR", 2, 4, 40)


@pytest.mark.parametrize(("net", "cents"), [("4.5950000000", 460), ("4.5949999999", 459), ("0.005", 1),
                                            ("1234.5678", 123457)])
def test_prices_convert_the_decimal_strings_exactly(cloud: HetznerCloud, fake: HetznerFake, net: str,
                                                    cents: int) -> None:
    fake.set_price("cpx21", "sin", net)

    price = next(p for p in cloud.prices() if (p.server_type, p.location) == ("cpx21", "sin"))

    assert price.monthly_minor == cents


def test_the_fake_lists_hourly_and_gross_prices_as_strings(api: FakeServer) -> None:
    answer = requests.get(f"{api.url}/v1/server_types", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)
    cx22 = next(t for t in answer.json()["server_types"] if t["name"] == "cx22")
    fsn1 = next(p for p in cx22["prices"] if p["location"] == "fsn1")

    assert fsn1["price_monthly"] == {"net": "4.5900000000", "gross": "5.4621000000"}
    assert all(isinstance(v, str) for v in (*fsn1["price_hourly"].values(), *fsn1["price_monthly"].values()))
