"""The guard that keeps the suite on this machine (checked without sending anything anywhere)."""

from __future__ import annotations

import socket

import pytest

from tests.netguard import ExternalRequestBlocked, check_address, guard, guard_lookup


class RecordingSocket:
    def __init__(self) -> None:
        self.connected: list[object] = []

    def connect(self, address: object) -> None:
        self.connected.append(address)


@pytest.mark.parametrize("address", [("127.0.0.1", 80), ("::1", 80, 0, 0), ("localhost", 5432),
                                     ("stratus.localhost", 5000), ("127.3.2.1", 1), "/run/pg.sock"])
def test_loopback_is_allowed(address):
    check_address(address)


@pytest.mark.parametrize("address", [("192.0.2.1", 443), ("api.hetzner.cloud", 443), ("10.0.0.1", 80),
                                     ("2001:db8::1", 443, 0, 0), ("api.digitalocean.com", 443)])
def test_anything_else_is_refused_before_connecting(address):
    sock = RecordingSocket()
    with pytest.raises(ExternalRequestBlocked):
        guard(RecordingSocket.connect)(sock, address)  # type: ignore[arg-type]
    assert sock.connected == []


def test_name_lookups_outside_loopback_are_refused():
    looked_up: list[object] = []
    lookup = guard_lookup(lambda host, *args, **kwargs: looked_up.append(host))
    with pytest.raises(ExternalRequestBlocked):
        lookup("api.hetzner.cloud", 443)
    lookup("localhost", 443)
    assert looked_up == ["localhost"]


def test_the_guard_is_installed_for_the_whole_suite():
    assert socket.socket.connect.__name__ == "guarded"
    assert socket.getaddrinfo.__name__ == "guarded"
