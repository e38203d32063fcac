"""The DigitalOcean adapter through the real python-digitalocean SDK, over HTTP, against the local fake API.

No SDK method is mocked: the fake is served on 127.0.0.1 and records what it receives, and the tests assert on
that. The first tests prove that every adapter call reaches the configured endpoint and nothing else, with
`DIGITALOCEAN_END_POINT` unset and every socket to anything but loopback refused.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import digitalocean
import pytest
import requests
from werkzeug.test import Client

from app.domain.availability import AlternativeKind
from app.providers.base import ActionStatus, ErrorKind, PowerState, ProviderError, ServerSpec
from app.providers.digitalocean import DigitalOceanCloud, label_tags, network_zone, usd_cents
from app.sandbox import FakeServer, serve
from app.sandbox.cloud import DIGITALOCEAN_OFFERS
from app.sandbox.digitalocean_api import PENDING_EVENT, DigitalOceanFake

TOKEN = "do-test-token"
BOOT, ACTION = 8.0, 3.0
START = datetime(2025, 3, 15, 12, 0, tzinfo=UTC)
SDK_ENVIRONMENT = ("DIGITALOCEAN_END_POINT", "DIGITALOCEAN_ACCESS_TOKEN", "PYTHON_DIGITALOCEAN_REQUEST_TIMEOUT_SEC")
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class LeftTheMachine(AssertionError):
    """A connection or name lookup for something other than loopback."""


@pytest.fixture(scope="module")
def do_clock() -> Clock:
    return Clock()


@pytest.fixture(scope="module")
def served(do_clock: Clock) -> Iterator[tuple[DigitalOceanFake, FakeServer]]:
    # Two droplets per page, so every listing of more than two follows the SDK's pagination links.
    fake = DigitalOceanFake(clock=do_clock, token=TOKEN, boot_seconds=BOOT, action_seconds=ACTION, max_per_page=2)
    server = serve(fake)
    yield fake, server
    server.shutdown()


@pytest.fixture(autouse=True)
def _no_sdk_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SDK_ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def fake(served: tuple[DigitalOceanFake, FakeServer], do_clock: Clock) -> DigitalOceanFake:
    do_clock.now = START
    served[0].reset()
    return served[0]


@pytest.fixture
def server(served: tuple[DigitalOceanFake, FakeServer]) -> FakeServer:
    return served[1]


@pytest.fixture
def endpoint(server: FakeServer) -> str:
    return f"{server.url}/v2"  # no trailing slash: the adapter adds it


@pytest.fixture
def cloud(fake: DigitalOceanFake, endpoint: str) -> DigitalOceanCloud:
    return DigitalOceanCloud(TOKEN, endpoint=endpoint, timeout=5.0)


@pytest.fixture
def impatient(fake: DigitalOceanFake, endpoint: str) -> DigitalOceanCloud:
    """An adapter with a short timeout, for answers that come late or never."""
    return DigitalOceanCloud(TOKEN, endpoint=endpoint, timeout=0.3)


def spec(name: str = "acme-s1-i1", size: str = "s-1vcpu-1gb", region: str = "fra1", item: str = "1",
         user_data: str = "#cloud-config\n") -> ServerSpec:
    return ServerSpec(name, size, region, "ubuntu-24-04-x64", user_data,
                      {"portal-tenant": "acme", "portal-item": item, "portal-subscription": "1"})


def calls(fake: DigitalOceanFake) -> list[tuple[str, str]]:
    return [(r.method, r.path.removeprefix("/v2")) for r in fake.received]


def count(fake: DigitalOceanFake, method: str, path: str) -> int:
    return calls(fake).count((method, path))


def running(cloud: DigitalOceanCloud, do_clock: Clock, server_spec: ServerSpec | None = None) -> str:
    server_id = cloud.create_server(server_spec or spec()).server_id
    do_clock.advance(BOOT)
    return server_id


def refuse_off_machine(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Fail any connection or name lookup that is not loopback; returns the addresses connected to."""
    connected: list[Any] = []
    real_connect, real_create, real_lookup = socket.socket.connect, socket.create_connection, socket.getaddrinfo

    def check(host: Any, what: Any) -> None:
        if host not in LOOPBACK:
            raise LeftTheMachine(f"{what!r} is not 127.0.0.1")

    def connect(self: socket.socket, address: Any) -> Any:
        check(address[0] if isinstance(address, tuple) else address, address)
        connected.append(address)
        return real_connect(self, address)

    def create_connection(address: Any, *args: Any, **kwargs: Any) -> Any:
        check(address[0], address)
        connected.append(address)
        return real_create(address, *args, **kwargs)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        check(host, host)
        return real_lookup(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "create_connection", create_connection)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return connected


def exercise_every_method(cloud: DigitalOceanCloud, do_clock: Clock) -> tuple[str, str]:
    """Call every method of the adapter once or more; returns the droplet's id and its power-off action's."""
    item = spec()
    cloud.offers()
    cloud.check_availability("s-1vcpu-1gb", "fra1")
    for name in ("acme-old-1", "acme-old-2"):  # same item tag, other names: the listing spans two pages
        cloud.create_server(spec(name=name))
    server_id = cloud.create_server(item).server_id
    assert cloud.find_server(item) is not None
    do_clock.advance(BOOT)
    cloud.server_info(server_id)
    action_id = cloud.power_off(server_id).id
    cloud.server_info(server_id)  # also asks for the running action
    do_clock.advance(ACTION)
    cloud.power_on(server_id)
    do_clock.advance(ACTION)
    cloud.reboot(server_id)
    do_clock.advance(ACTION)
    cloud.rebuild(server_id, image="debian-12-x64")
    cloud.server_info(server_id)  # with the running rebuild
    cloud.delete_server(server_id)
    cloud.delete_server(server_id)  # gone already
    return server_id, action_id


# --- Every call on the configured endpoint -----------------------------------------------------------


def test_every_adapter_call_reaches_the_configured_endpoint_and_nothing_else(monkeypatch, fake, server, cloud,
                                                                             do_clock):
    connected = refuse_off_machine(monkeypatch)

    droplet, action = exercise_every_method(cloud, do_clock)
    rebuild = next(a["id"] for a in fake.state()["actions"] if a["type"] == "rebuild")

    assert calls(fake) == [
        ("GET", "/sizes"), ("GET", "/regions"),  # offers
        ("GET", "/sizes"), ("GET", "/regions"),  # check_availability
        ("GET", "/droplets"), ("POST", "/droplets"),  # acme-old-1
        ("GET", "/droplets"), ("POST", "/droplets"),  # acme-old-2
        ("GET", "/droplets"), ("POST", "/droplets"),  # acme-s1-i1
        ("GET", "/droplets"), ("GET", "/droplets"),  # find_server: three droplets, two pages
        ("GET", f"/droplets/{droplet}"),  # server_info
        ("POST", f"/droplets/{droplet}/actions"),  # power_off
        ("GET", f"/droplets/{droplet}"), ("GET", f"/droplets/{droplet}/actions/{action}"),  # server_info
        ("POST", f"/droplets/{droplet}/actions"),  # power_on
        ("POST", f"/droplets/{droplet}/actions"),  # reboot
        ("POST", f"/droplets/{droplet}/actions"),  # rebuild
        ("GET", f"/droplets/{droplet}"), ("GET", f"/droplets/{droplet}/actions/{rebuild}"),  # server_info
        ("DELETE", f"/droplets/{droplet}"), ("DELETE", f"/droplets/{droplet}"),
    ]
    pages = [r.query.get("page") for r in fake.received if r.path == "/v2/droplets" and r.method == "GET"]
    assert pages == [None, None, None, None, "2"]
    assert connected, "the guard saw no connection at all"
    assert {address[:2] for address in connected} == {("127.0.0.1", server.server.server_port)}


def test_the_endpoint_variable_is_never_used(monkeypatch, fake, cloud, do_clock):
    decoy_fake = DigitalOceanFake(token=TOKEN)
    decoy = serve(decoy_fake)
    try:
        monkeypatch.setenv("DIGITALOCEAN_END_POINT", f"{decoy.url}/v2/")

        exercise_every_method(cloud, do_clock)
        assert decoy_fake.received == []
        assert fake.received

        # The decoy would catch a leak: an SDK path that drops `end_point` goes there.
        with pytest.raises(digitalocean.NotFoundError):
            digitalocean.Manager(token=TOKEN, end_point=f"{cloud._endpoint}").get_droplet(1)
        assert [(r.method, r.path) for r in decoy_fake.received] == [("GET", "/v2/droplets/1")]
    finally:
        decoy.shutdown()


def test_the_guard_catches_the_sdk_paths_that_drop_the_endpoint(monkeypatch, fake, endpoint):
    refuse_off_machine(monkeypatch)
    manager = digitalocean.Manager(token=TOKEN, end_point=f"{endpoint}/")
    with pytest.raises(LeftTheMachine, match=r"api\.digitalocean\.com"):
        manager.get_droplet(1)  # Droplet.get_object without end_point: the real API
    assert fake.received == []


# --- Offers and availability ---------------------------------------------------------------------------


def test_offers_are_the_catalog_with_prices_in_cents(cloud):
    key = lambda offer: (offer.server_type, offer.location)  # noqa: E731
    assert sorted(cloud.offers(), key=key) == sorted(DIGITALOCEAN_OFFERS, key=key)


@pytest.mark.parametrize(("amount", "cents"), [(6.0, 600), (4.35, 435), (2.675, 268), (0.285, 29), (19.99, 1999),
                                               (0.07, 7), (1e-05, 0), ("12.5", 1250)])
def test_usd_floats_become_cents_once_rounded_half_up(amount, cents):
    assert usd_cents(amount) == cents


@pytest.mark.parametrize(("region", "zone"), [("fra1", "eu"), ("ams3", "eu"), ("lon1", "eu"), ("nyc3", "us"),
                                              ("sfo3", "us"), ("tor1", "us"), ("sgp1", "ap"), ("blr1", "ap"),
                                              ("syd1", "ap"), ("xyz9", "xyz9")])
def test_regions_are_grouped_by_continent(region, zone):
    assert network_zone(region) == zone


def test_sold_out_sizes_and_regions_are_unavailable(cloud, fake):
    fake.set_capacity("s-4vcpu-8gb", "sgp1", 0)
    fake.set_region_available("lon1", False)
    fake.set_size_available("s-1vcpu-2gb", False)

    unavailable = {(o.server_type, o.location) for o in cloud.offers() if not o.available}

    assert unavailable == ({("s-4vcpu-8gb", "sgp1")} | {(o.server_type, "lon1") for o in DIGITALOCEAN_OFFERS}
                           | {("s-1vcpu-2gb", o.location) for o in DIGITALOCEAN_OFFERS})


def test_availability_with_alternatives(cloud, fake):
    fake.set_capacity("s-4vcpu-8gb", "sgp1", 0)

    sold_out = cloud.check_availability("s-4vcpu-8gb", "sgp1")

    assert not sold_out.available and not sold_out.permanent
    assert sold_out.alternatives[0].kind is AlternativeKind.OTHER_LOCATION
    assert {a.location for a in sold_out.alternatives} <= {"fra1", "ams3", "lon1", "nyc3", "sfo3"}
    assert cloud.check_availability("s-4vcpu-8gb", "fra1").available
    assert cloud.check_availability("s-64vcpu", "fra1").permanent


def test_creating_a_sold_out_size_is_unavailable(cloud, fake):
    fake.set_capacity("s-4vcpu-8gb", "sgp1", 0)
    fake.set_region_available("lon1", False)

    with pytest.raises(ProviderError) as sold_out:
        cloud.create_server(spec(size="s-4vcpu-8gb", region="sgp1"))
    with pytest.raises(ProviderError) as closed:
        cloud.create_server(spec(region="lon1"))

    assert sold_out.value.kind is ErrorKind.UNAVAILABLE and "not available" in sold_out.value.message
    assert closed.value.kind is ErrorKind.UNAVAILABLE
    assert fake.state()["droplets"] == []


# --- Create, find, info -------------------------------------------------------------------------------------


def test_create_boots_from_new_to_active_with_addresses(cloud, fake, do_clock):
    created = cloud.create_server(spec())

    assert created.power is PowerState.PROVISIONING and not created.ready
    assert created.ipv4 is None
    assert created.labels == {"portal-tenant": "acme", "portal-item": "1", "portal-subscription": "1"}
    assert created.created_at == START
    body = fake.received[-1].body
    assert body["name"] == "acme-s1-i1" and body["size"] == "s-1vcpu-1gb" and body["region"] == "fra1"
    assert body["image"] == "ubuntu-24-04-x64" and body["user_data"] == "#cloud-config\n" and body["ipv6"] is True
    assert body["tags"] == ["portal-item:1", "portal-subscription:1", "portal-tenant:acme"]

    do_clock.advance(BOOT)
    info = cloud.server_info(created.server_id)

    assert info.power is PowerState.RUNNING and info.ready
    assert info.ipv4.startswith("203.0.113.") and info.private_ip.startswith("10.") and ":" in info.ipv6
    assert (info.server_type, info.location, info.name) == ("s-1vcpu-1gb", "fra1", "acme-s1-i1")


def test_create_is_idempotent_by_tag(cloud, fake):
    first = cloud.create_server(spec())
    again = cloud.create_server(spec())

    assert again.server_id == first.server_id
    assert count(fake, "POST", "/droplets") == 1
    assert [r.query.get("tag_name") for r in fake.received if r.path == "/v2/droplets" and r.method == "GET"] == [
        "portal-item:1", "portal-item:1"]


def test_a_droplet_with_the_same_name_but_other_tags_is_not_adopted(cloud, fake):
    other = cloud.create_server(spec(item="2"))  # duplicate names are allowed at DigitalOcean
    mine = cloud.create_server(spec())

    assert mine.server_id != other.server_id
    assert cloud.find_server(spec()).server_id == mine.server_id
    assert len(fake.state()["droplets"]) == 2


def test_find_server_is_none_when_nothing_was_made(cloud):
    assert cloud.find_server(spec()) is None


def test_capacity_is_consumed_and_freed(cloud, fake):
    fake.set_capacity("s-1vcpu-1gb", "fra1", 1)
    server_id = cloud.create_server(spec()).server_id
    assert fake.capacity("s-1vcpu-1gb", "fra1") == 0
    assert not cloud.check_availability("s-1vcpu-1gb", "fra1").available

    cloud.delete_server(server_id)

    assert fake.capacity("s-1vcpu-1gb", "fra1") == 1


def test_oversized_user_data_is_refused_before_sending(cloud, fake):
    with pytest.raises(ProviderError) as error:
        cloud.create_server(spec(user_data="x" * (32 * 1024 + 1)))
    assert error.value.kind is ErrorKind.INVALID
    assert fake.received == []


def test_labels_become_valid_tags():
    assert label_tags({"portal-item": "7", "b": "a b/c"}) == ["b:a_b_c", "portal-item:7"]


# --- Power ---------------------------------------------------------------------------------------------------


def test_power_off_shows_progress_then_off(cloud, do_clock):
    server_id = running(cloud, do_clock)

    action = cloud.power_off(server_id)
    stopping = cloud.server_info(server_id)
    do_clock.advance(ACTION)
    off = cloud.server_info(server_id)

    assert (action.command, action.status) == ("power_off", ActionStatus.RUNNING)
    assert stopping.power is PowerState.STOPPING and stopping.action == action
    assert off.power is PowerState.OFF and off.action is None
    assert cloud.power_on(server_id).status is ActionStatus.RUNNING
    do_clock.advance(ACTION)
    assert cloud.server_info(server_id).power is PowerState.RUNNING
    assert cloud.reboot(server_id).command == "reboot"


def test_a_graceful_shutdown_is_sent_as_a_shutdown_action_and_ends_off(cloud, fake, do_clock):
    server_id = running(cloud, do_clock)

    action = cloud.shutdown(server_id)
    stopping = cloud.server_info(server_id)
    do_clock.advance(ACTION)
    off = cloud.server_info(server_id)

    assert (action.command, action.status) == ("shutdown", ActionStatus.RUNNING)
    posts = [(r.path, r.body) for r in fake.received if r.method == "POST"]
    assert posts[-1] == (f"/v2/droplets/{server_id}/actions", {"type": "shutdown"})
    assert stopping.power is PowerState.STOPPING and stopping.action == action
    assert off.power is PowerState.OFF and off.action is None
    assert [a["type"] for a in fake.state()["actions"]] == ["create", "shutdown"]


def test_a_shutdown_the_guest_ignores_errors_and_leaves_the_droplet_on(cloud, fake, do_clock):
    server_id = running(cloud, do_clock)
    fake.ignore_shutdown()

    cloud.shutdown(server_id)
    do_clock.advance(ACTION)

    assert cloud.server_info(server_id).power is PowerState.RUNNING
    assert fake.state()["actions"][-1]["status"] == "errored"
    cloud.power_off(server_id)  # the hard stop after the timeout
    do_clock.advance(ACTION)
    assert cloud.server_info(server_id).power is PowerState.OFF


def test_a_shutdown_while_another_action_runs_is_busy_and_of_a_gone_droplet_not_found(cloud, fake, do_clock):
    server_id = cloud.create_server(spec()).server_id
    with pytest.raises(ProviderError) as busy:
        cloud.shutdown(server_id)  # still booting
    fake.delete_out_of_band(server_id)
    with pytest.raises(ProviderError) as gone:
        cloud.shutdown(server_id)

    assert busy.value.kind is ErrorKind.BUSY and busy.value.retryable
    assert gone.value.kind is ErrorKind.NOT_FOUND and not gone.value.retryable


def test_power_on_a_running_droplet_succeeds_at_once(cloud, do_clock):
    server_id = running(cloud, do_clock)
    assert cloud.power_on(server_id).status is ActionStatus.SUCCESS


# --- RELIABILITY row 26: the create succeeded but its answer was lost ------------------------------------


def test_lost_create_answer_is_adopted_not_repeated(impatient, fake):
    fake.lose_next_answer("create", delay=1.0)  # held longer than the adapter's 0.3 s

    info = impatient.create_server(spec())

    assert info.name == "acme-s1-i1"
    assert [d["id"] for d in fake.state()["droplets"]] == [int(info.server_id)]
    assert count(fake, "POST", "/droplets") == 1
    assert calls(fake) == [("GET", "/droplets"), ("POST", "/droplets"), ("GET", "/droplets")]


def test_dropped_connection_after_create_is_adopted(cloud, fake):
    fake.lose_next_answer("create")  # no delay: the connection is closed unanswered

    info = cloud.create_server(spec())

    assert len(fake.state()["droplets"]) == 1 and info.server_id == str(fake.state()["droplets"][0]["id"])
    assert count(fake, "POST", "/droplets") == 1


def test_a_retry_after_a_lost_answer_and_a_failed_lookup_makes_one_droplet(cloud, fake):
    fake.lose_next_answer("create")
    fake.fail_next("list", 503, after=1)  # the lookup before the create works, the one after it fails

    with pytest.raises(ProviderError) as error:
        cloud.create_server(spec())
    assert error.value.kind is ErrorKind.TRANSIENT and error.value.retryable

    retried = cloud.create_server(spec())

    assert [d["id"] for d in fake.state()["droplets"]] == [int(retried.server_id)]
    assert count(fake, "POST", "/droplets") == 1


# --- RELIABILITY row 27: rate limits, 5xx, invalid requests -------------------------------------------------


def test_429_is_rate_limited_with_retry_after(cloud, fake):
    fake.fail_next("create", 429, retry_after=7)

    with pytest.raises(ProviderError) as error:
        cloud.create_server(spec())

    assert error.value.kind is ErrorKind.RATE_LIMITED and error.value.retry_after == 7.0
    assert count(fake, "POST", "/droplets") == 1  # no retry of its own
    assert fake.state()["droplets"] == []


@pytest.mark.parametrize(("operation", "call"), [
    ("sizes", lambda cloud: cloud.offers()),
    ("get", lambda cloud: cloud.server_info("1")),
    ("list", lambda cloud: cloud.find_server(spec())),
    ("delete", lambda cloud: cloud.delete_server("1")),
])
def test_5xx_is_transient(cloud, fake, operation, call):
    fake.fail_next(operation, 503)
    with pytest.raises(ProviderError) as error:
        call(cloud)
    assert error.value.kind is ErrorKind.TRANSIENT


def test_a_gateway_page_instead_of_json_is_transient(cloud, fake):
    fake.fail_next("regions", 502, body="<html><h1>502 Bad Gateway</h1></html>")
    with pytest.raises(ProviderError) as error:
        cloud.offers()
    assert error.value.kind is ErrorKind.TRANSIENT


def test_a_5xx_on_create_looks_again_before_giving_up(cloud, fake):
    fake.fail_next("create", 500)
    with pytest.raises(ProviderError) as error:
        cloud.create_server(spec())
    assert error.value.kind is ErrorKind.TRANSIENT
    assert calls(fake) == [("GET", "/droplets"), ("POST", "/droplets"), ("GET", "/droplets")]


def test_an_invalid_request_is_invalid_and_not_retryable(cloud, fake):
    with pytest.raises(ProviderError) as bad_name:
        cloud.create_server(spec(name="acme_s1_i1"))
    fake.fail_next("create", 422, message="You specified an invalid image for Droplet creation.")
    with pytest.raises(ProviderError) as injected:
        cloud.create_server(spec())

    assert bad_name.value.kind is ErrorKind.INVALID and not bad_name.value.retryable
    assert "hostname" in bad_name.value.message
    assert injected.value.kind is ErrorKind.INVALID
    assert count(fake, "POST", "/droplets") == 2


# --- RELIABILITY row 29: deleted out of band -------------------------------------------------------------


def test_a_droplet_deleted_in_the_console_is_not_found(cloud, fake, do_clock):
    server_id = running(cloud, do_clock)
    fake.delete_out_of_band(server_id)

    for call in (cloud.server_info, cloud.power_on, cloud.reboot):
        with pytest.raises(ProviderError) as error:
            call(server_id)
        assert error.value.kind is ErrorKind.NOT_FOUND and server_id in error.value.message
    cloud.delete_server(server_id)  # already gone: fine


def test_an_id_that_cannot_exist_is_not_found_without_a_request(cloud, fake):
    with pytest.raises(ProviderError) as error:
        cloud.server_info("../sizes")
    assert error.value.kind is ErrorKind.NOT_FOUND
    assert fake.received == []


# --- RELIABILITY row 30: one action at a time --------------------------------------------------------------


def test_a_power_action_while_another_runs_is_busy(cloud, fake, do_clock):
    server_id = cloud.create_server(spec()).server_id
    with pytest.raises(ProviderError) as booting:
        cloud.power_off(server_id)  # the create is still running
    do_clock.advance(BOOT)
    cloud.power_off(server_id)

    with pytest.raises(ProviderError) as busy:
        cloud.reboot(server_id)

    assert booting.value.kind is busy.value.kind is ErrorKind.BUSY
    assert busy.value.retryable
    assert [a["type"] for a in fake.state()["actions"]] == ["create", "power_off"]


# --- Access: keys in the user data, rebuild, no password reset ----------------------------------------

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ3c5m0Lr0mAkgmmTiN0T0nJHc8m8pXcWbJbTz6l1Q9x casey@laptop"


def test_the_user_data_with_the_keys_reaches_digitalocean(cloud, fake):
    user_data = f"#cloud-config\nssh_authorized_keys:\n- {KEY}\n"
    info = cloud.create_server(spec(name="web.acme.example.test", user_data=user_data))

    received = fake.droplet_received(info.server_id)
    assert received["user_data"] == user_data and info.root_password is None
    # No DigitalOcean key object is named: DigitalOcean would email a root password to the account's owner,
    # which is why orders on DigitalOcean need a key (the one in the user data is what the customer uses).
    assert received["ssh_keys"] == [] and received["root_password_emailed"]
    [create] = [r for r in fake.received if r.method == "POST" and r.path == "/v2/droplets"]
    assert create.body["ssh_keys"] == [] and create.body["user_data"] == user_data


def test_a_rebuild_reinstalls_the_image_keeps_the_user_data_and_locks_the_droplet(cloud, fake, do_clock):
    user_data = f"#cloud-config\nssh_authorized_keys:\n- {KEY}\n"
    server_id = running(cloud, do_clock, spec(user_data=user_data))

    rebuilt = cloud.rebuild(server_id, image="debian-12-x64", user_data="ignored: DigitalOcean takes none")

    assert rebuilt.action.command == "rebuild" and rebuilt.action.status is ActionStatus.RUNNING
    assert rebuilt.root_password is None
    [request] = [r for r in fake.received if r.path == f"/v2/droplets/{server_id}/actions"]
    assert request.body == {"type": "rebuild", "image": "debian-12-x64"}
    received = fake.droplet_received(server_id)
    assert received["rebuilds"] == ["debian-12-x64"] and received["user_data"] == user_data
    info = cloud.server_info(server_id)
    assert info.power is PowerState.PROVISIONING and info.action.command == "rebuild"
    with pytest.raises(ProviderError) as busy:
        cloud.reboot(server_id)
    assert busy.value.kind is ErrorKind.BUSY
    do_clock.advance(BOOT)
    assert cloud.server_info(server_id).power is PowerState.RUNNING


def test_a_rebuild_while_another_action_runs_is_busy(cloud, fake, do_clock):
    server_id = cloud.create_server(spec()).server_id
    with pytest.raises(ProviderError) as busy:
        cloud.rebuild(server_id, image="debian-12-x64")
    assert busy.value.kind is ErrorKind.BUSY
    assert fake.droplet_received(server_id)["rebuilds"] == []


def test_a_rebuild_from_an_unknown_image_is_invalid(cloud, fake, do_clock):
    server_id = running(cloud, do_clock)
    with pytest.raises(ProviderError) as invalid:
        cloud.rebuild(server_id, image="windows-95")
    assert invalid.value.kind is ErrorKind.INVALID and "invalid image" in invalid.value.message


def test_there_is_no_password_reset_on_digitalocean(cloud, fake, do_clock):
    server_id = running(cloud, do_clock)
    fake.clear_received()
    with pytest.raises(ProviderError) as refused:
        cloud.reset_password(server_id)
    assert refused.value.kind is ErrorKind.INVALID and fake.received == []


# --- RELIABILITY row 31: revoked tokens and quotas fail fast --------------------------------------------


def test_a_revoked_token_fails_fast_with_auth(cloud, fake):
    fake.set_token("rotated-token")

    started = time.monotonic()
    with pytest.raises(ProviderError) as error:
        cloud.offers()

    assert time.monotonic() - started < 1.0
    assert error.value.kind is ErrorKind.AUTH and not error.value.retryable
    assert "token" in error.value.message
    assert len(fake.received) == 1


def test_a_403_is_auth(cloud, fake):
    fake.fail_next("get", 403)
    with pytest.raises(ProviderError) as error:
        cloud.server_info("1")
    assert error.value.kind is ErrorKind.AUTH


def test_the_droplet_limit_is_an_auth_error_with_a_clear_message(cloud, fake):
    fake.set_droplet_limit(1)
    cloud.create_server(spec())

    with pytest.raises(ProviderError) as error:
        cloud.create_server(spec(name="acme-s1-i2", item="2"))

    assert error.value.kind is ErrorKind.AUTH and not error.value.retryable
    assert "droplet limit" in error.value.message and "limit" in error.value.message
    assert len(fake.state()["droplets"]) == 1


# --- Timeout --------------------------------------------------------------------------------------------


def test_the_adapter_timeout_is_honoured_without_the_environment(impatient, fake):
    fake.slow_next("get", 1.5)

    started = time.monotonic()
    with pytest.raises(ProviderError) as error:
        impatient.server_info("1")
    elapsed = time.monotonic() - started

    assert error.value.kind is ErrorKind.TRANSIENT and "0.3" in error.value.message
    assert 0.25 <= elapsed < 1.0
    assert all(name not in os.environ for name in SDK_ENVIRONMENT)


# --- The fake's /_control interface over HTTP ---------------------------------------------------------------


def control(server: FakeServer, method: str, path: str, body: dict[str, Any] | None = None) -> requests.Response:
    return requests.request(method, f"{server.url}/_control/{path}", json=body, timeout=5)


def api(server: FakeServer, method: str, path: str, body: dict[str, Any] | None = None,
        token: str = TOKEN) -> requests.Response:
    return requests.request(method, f"{server.url}/v2/{path}", json=body, timeout=5,
                            headers={"Authorization": f"Bearer {token}"})


def droplet_body(name: str = "web-1", size: str = "s-1vcpu-1gb", region: str = "fra1") -> dict[str, Any]:
    return {"name": name, "size": size, "region": region, "image": "debian-12-x64", "tags": ["portal-item:9"]}


def test_control_capacity_changes_what_regions_offer(server, fake):
    assert control(server, "POST", "capacity", {"size": "s-2vcpu-4gb", "region": "ams3", "count": 0}).ok

    regions = {r["slug"]: r for r in api(server, "GET", "regions").json()["regions"]}
    refused = api(server, "POST", "droplets", droplet_body(size="s-2vcpu-4gb", region="ams3"))

    assert "s-2vcpu-4gb" not in regions["ams3"]["sizes"] and "s-2vcpu-4gb" in regions["fra1"]["sizes"]
    assert refused.status_code == 422 and refused.json()["message"] == "Size is not available in this region."
    assert control(server, "POST", "capacity", {"size": "s-2vcpu-4gb", "region": "ams3", "count": None}).ok
    assert api(server, "POST", "droplets", droplet_body(size="s-2vcpu-4gb", region="ams3")).status_code == 202


def test_control_availability_and_droplet_limit(server, fake):
    assert control(server, "POST", "availability", {"region": "nyc3", "available": False}).ok
    assert api(server, "POST", "droplets", droplet_body(region="nyc3")).json()["message"] == "Region is not available"
    assert control(server, "POST", "droplet_limit", {"limit": 0}).ok
    limited = api(server, "POST", "droplets", droplet_body())
    assert limited.status_code == 422 and "droplet limit" in limited.json()["message"]


def test_control_fail_answers_the_error_once(server, fake):
    assert control(server, "POST", "fail", {"operation": "sizes", "status": 429, "retry_after": 3}).ok

    limited = api(server, "GET", "sizes")
    after = api(server, "GET", "sizes")

    assert limited.status_code == 429 and limited.headers["Retry-After"] == "3"
    assert set(limited.json()) == {"id", "message", "request_id"} and limited.json()["id"] == "too_many_requests"
    assert after.status_code == 200 and len(after.json()["sizes"]) == 4


def test_control_slow_delays_the_answer(server, fake):
    assert control(server, "POST", "slow", {"operation": "regions", "seconds": 0.2}).ok
    started = time.monotonic()
    assert api(server, "GET", "regions").ok
    assert time.monotonic() - started >= 0.2


def test_control_lose_answer_creates_then_drops_the_connection(server, fake):
    assert control(server, "POST", "lose_answer", {"operation": "create"}).ok

    with pytest.raises(requests.ConnectionError):
        api(server, "POST", "droplets", droplet_body())

    assert [d["name"] for d in control(server, "GET", "state").json()["droplets"]] == ["web-1"]


def test_control_deletes_out_of_band_and_reports_state(server, fake):
    droplet_id = api(server, "POST", "droplets", droplet_body()).json()["droplet"]["id"]

    assert control(server, "DELETE", f"droplets/{droplet_id}").ok
    assert control(server, "DELETE", f"droplets/{droplet_id}").status_code == 404
    assert api(server, "GET", f"droplets/{droplet_id}").status_code == 404
    state = control(server, "GET", "state").json()
    assert state["droplets"] == [] and [a["type"] for a in state["actions"]] == ["create"]
    recorded = control(server, "GET", "requests").json()["requests"]
    assert [(r["method"], r["path"]) for r in recorded] == [
        ("POST", "/v2/droplets"), ("GET", f"/v2/droplets/{droplet_id}")]


def test_control_token_and_reset(server, fake):
    assert control(server, "POST", "token", {"token": "new"}).ok
    refused = api(server, "GET", "sizes")
    assert refused.status_code == 401 and refused.json()["id"] == "unauthorized"
    assert api(server, "GET", "sizes", token="new").ok

    assert control(server, "POST", "reset").ok

    assert api(server, "GET", "sizes").ok
    assert control(server, "GET", "requests").json()["requests"] == [
        {"method": "GET", "path": "/v2/sizes", "query": {}, "body": None}]


def test_control_rejects_bad_input(server, fake):
    for path, body in [("fail", {"operation": "teleport", "status": 500}), ("capacity", {"size": "s-1vcpu-1gb"}),
                       ("capacity", {"size": "s-99", "region": "fra1", "count": 1}),
                       ("availability", {"available": "yes", "region": "fra1"})]:
        answer = control(server, "POST", path, body)
        assert answer.status_code == 400 and answer.json()["id"] == "bad_request" and answer.json()["message"]


# --- The fake's API shapes (in process) ------------------------------------------------------------------


@pytest.fixture
def wsgi() -> Client:
    return Client(DigitalOceanFake(clock=lambda: START, demo=True, action_seconds=ACTION))


def test_demo_starts_with_the_sandbox_sold_out_combination(wsgi):
    regions = {r["slug"]: r for r in wsgi.get("/v2/regions").json["regions"]}
    assert "s-4vcpu-8gb" not in regions["sgp1"]["sizes"] and "s-4vcpu-8gb" in regions["fra1"]["sizes"]


def test_paths_work_with_and_without_a_trailing_slash(wsgi):
    assert wsgi.get("/v2/sizes/").status_code == wsgi.get("/v2/sizes").status_code == 200
    created = wsgi.post("/v2/droplets/", json=droplet_body())
    assert created.status_code == 202 and created.json["links"]["actions"][0]["id"]
    assert created.json["droplet"]["networks"] == {"v4": [], "v6": []} and created.json["droplet"]["status"] == "new"


def test_prices_are_usd_floats(wsgi):
    size = next(s for s in wsgi.get("/v2/sizes").json["sizes"] if s["slug"] == "s-1vcpu-1gb")
    assert size["price_monthly"] == 6.0 and isinstance(size["price_hourly"], float)


def test_errors_always_carry_id_and_message(wsgi):
    for answer in (wsgi.get("/v2/droplets/1"), wsgi.get("/v2/nothing"), wsgi.put("/v2/sizes"),
                   wsgi.post("/v2/droplets", json={"name": "x"})):
        assert answer.status_code >= 400
        assert answer.json["id"] and answer.json["message"] and answer.json["request_id"]


def test_a_second_action_is_refused_as_pending(wsgi):
    droplet_id = wsgi.post("/v2/droplets", json=droplet_body()).json["droplet"]["id"]
    refused = wsgi.post(f"/v2/droplets/{droplet_id}/actions", json={"type": "reboot"})
    assert refused.status_code == 422 and refused.json["message"] == PENDING_EVENT


def test_a_token_is_required_when_set():
    client = Client(DigitalOceanFake(token=TOKEN))
    assert client.get("/v2/sizes").status_code == 401
    assert client.get("/v2/sizes", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/v2/sizes", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


# --- Resizing and prices ---------------------------------------------------------------------------


def stopped(cloud: DigitalOceanCloud, do_clock: Clock) -> str:
    server_id = running(cloud, do_clock)
    cloud.power_off(server_id)
    do_clock.advance(ACTION)
    return server_id


def test_a_droplet_that_is_on_cannot_be_resized(cloud, fake, do_clock):
    server_id = running(cloud, do_clock)

    with pytest.raises(ProviderError) as refused:
        cloud.resize(server_id, "s-2vcpu-4gb", upgrade_disk=True)

    assert refused.value.kind is ErrorKind.INVALID
    assert "power it off" in refused.value.message
    assert cloud.server_info(server_id).server_type == "s-1vcpu-1gb"


def test_a_droplet_that_is_off_is_resized_with_the_sdk_s_disk_flag(cloud, fake, do_clock):
    server_id = stopped(cloud, do_clock)

    action = cloud.resize(server_id, "s-2vcpu-4gb", upgrade_disk=True)

    assert (action.command, action.status) == ("resize", ActionStatus.RUNNING)
    sent = [r.body for r in fake.received if r.method == "POST" and r.path.endswith("/actions")][-1]
    assert sent == {"type": "resize", "size": "s-2vcpu-4gb", "disk": "true"}
    do_clock.advance(ACTION)
    info = cloud.server_info(server_id)
    assert (info.server_type, info.power, info.action) == ("s-2vcpu-4gb", PowerState.OFF, None)


def test_a_resized_disk_never_shrinks(cloud, fake, do_clock):
    server_id = stopped(cloud, do_clock)
    cloud.resize(server_id, "s-2vcpu-4gb", upgrade_disk=False)
    do_clock.advance(ACTION)
    sent = [r.body for r in fake.received if r.method == "POST" and r.path.endswith("/actions")][-1]
    assert sent == {"type": "resize", "size": "s-2vcpu-4gb"}  # the SDK leaves `disk` out
    cloud.resize(server_id, "s-1vcpu-1gb", upgrade_disk=False)  # CPU and memory only: back down is allowed
    do_clock.advance(ACTION)
    cloud.resize(server_id, "s-1vcpu-2gb", upgrade_disk=True)  # 25 GB -> 50 GB
    do_clock.advance(ACTION)

    with pytest.raises(ProviderError) as refused:
        cloud.resize(server_id, "s-1vcpu-1gb", upgrade_disk=False)

    assert refused.value.kind is ErrorKind.INVALID
    assert "disk" in refused.value.message
    assert fake.droplet_received(server_id)["resizes"] == [
        {"size": "s-2vcpu-4gb", "disk": False}, {"size": "s-1vcpu-1gb", "disk": False},
        {"size": "s-1vcpu-2gb", "disk": True}]


def test_a_resize_during_another_action_is_busy(cloud, do_clock):
    server_id = running(cloud, do_clock)
    cloud.power_off(server_id)

    with pytest.raises(ProviderError) as refused:
        cloud.resize(server_id, "s-2vcpu-4gb", upgrade_disk=True)

    assert refused.value.kind is ErrorKind.BUSY


def test_prices_are_one_per_size_and_region_in_cents(cloud):
    prices = {(p.server_type, p.location): p for p in cloud.prices()}

    assert set(prices) == {(o.server_type, o.location) for o in DIGITALOCEAN_OFFERS}
    small = prices["s-1vcpu-1gb", "fra1"]
    assert (small.monthly_minor, small.currency, small.vcpus, small.memory_gb, small.disk_gb) == (600, "USD", 1, 1, 25)


def test_the_fake_lists_prices_as_json_numbers(server):
    sizes = requests.get(f"{server.url}/v2/sizes", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5).json()
    small = next(s for s in sizes["sizes"] if s["slug"] == "s-2vcpu-4gb")

    assert (small["price_monthly"], small["price_hourly"]) == (24.0, 0.03571)  # 24 / 672 hours, as DigitalOcean lists it
