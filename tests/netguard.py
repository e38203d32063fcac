"""No request of the test suite may leave this machine: connections and name lookups outside loopback fail.

Installed for the whole session by tests/conftest.py. The check runs before the real call, so a request
that would leave 127.0.0.1 raises here and never reaches the network.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from typing import Any

LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


class ExternalRequestBlocked(AssertionError):
    """A test tried to reach something that is not this machine."""


def is_loopback_host(host: object) -> bool:
    if not isinstance(host, str):
        return isinstance(host, bytes) and is_loopback_host(host.decode())
    name = host.strip("[]").lower()
    if name in LOOPBACK_NAMES or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name.split("%")[0]).is_loopback
    except ValueError:
        return False


def check_address(address: Any) -> None:
    """Allow Unix sockets and loopback (host, port) pairs; refuse anything else."""
    if isinstance(address, (str, bytes)):  # a Unix socket path
        return
    host = address[0] if isinstance(address, tuple) and address else address
    if not is_loopback_host(host):
        raise ExternalRequestBlocked(f"the test suite tried to reach {address!r}, which is not this machine")


def guard(connect: Callable[..., Any]) -> Callable[..., Any]:
    def guarded(self: socket.socket, address: Any) -> Any:
        check_address(address)
        return connect(self, address)

    return guarded


def guard_lookup(getaddrinfo: Callable[..., Any]) -> Callable[..., Any]:
    def guarded(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host is not None:
            check_address((host, 0))
        return getaddrinfo(host, *args, **kwargs)

    return guarded


def install() -> None:
    socket.socket.connect = guard(socket.socket.connect)  # type: ignore[method-assign]
    socket.socket.connect_ex = guard(socket.socket.connect_ex)  # type: ignore[method-assign]
    socket.getaddrinfo = guard_lookup(socket.getaddrinfo)
