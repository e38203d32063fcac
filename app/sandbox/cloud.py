"""An in-process cloud for the demo and fast tests: no credentials, no network, time from an injected clock.

`SandboxCloud` implements `CloudProvider` with the behaviour the real adapters have to cope with: servers
that boot for a while, power actions and rebuilds that take time and lock the server, capacity that runs
out, creates whose answer is lost (the retry must adopt the server, not make a second one) and injected
failures of every `ErrorKind`. A resize (a change of type) needs the server off and never shrinks its disk.
Named "hetzner", it answers a root password to every create and rebuild (the
portal names no Hetzner key objects) and resets passwords; named otherwise, like DigitalOcean, it does not.
Progress is computed from the clock, never from sleeping, so tests move a frozen clock.

The demo catalogs use the real type and location names with realistic sizes and monthly prices in cents:

- `HETZNER_OFFERS` (EUR): cx22, cx32, cx42 and cax11 (arm) in fsn1, nbg1, hel1 only, as at Hetzner;
  cpx21 everywhere (fsn1, nbg1, hel1, ash, hil, sin), dearer outside the EU.
- `DIGITALOCEAN_OFFERS` (USD): every size in every region, same price everywhere.

The shared sandboxes from `sandbox_for` start with one combination sold out (capacity 0), so the demo can
show alternatives: Hetzner cx42 in hel1 and DigitalOcean s-4vcpu-8gb in sgp1 (see `DEMO_SOLD_OUT`;
`set_capacity(..., None)` lifts it). A `SandboxCloud` built directly has unlimited capacity everywhere.
"""

from __future__ import annotations

import secrets
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal

from app.domain.availability import Availability, Offer, availability
from app.providers.base import (
    BUSY_MESSAGE,
    ActionInfo,
    ActionStatus,
    CostPrice,
    ErrorKind,
    PasswordAction,
    PowerState,
    ProviderError,
    ServerInfo,
    ServerSpec,
    check_user_data,
)
from app.sandbox.capacity import Capacity

Clock = Callable[[], datetime]

OPERATIONS = frozenset({"create", "find", "info", "power", "rebuild", "password", "delete", "offers", "resize"})
NOT_OFF_MESSAGE = "The server must be off before its type can change."
SMALLER_DISK_MESSAGE = "The server's disk cannot shrink: choose a type whose disk is at least the current one."

_DEFAULT_MESSAGES = {
    ErrorKind.UNAVAILABLE: "The server type is sold out in this location for now.",
    ErrorKind.INVALID: "The cloud rejected the request.",
    ErrorKind.RATE_LIMITED: "Too many requests to the cloud; try again later.",
    ErrorKind.TRANSIENT: "The cloud did not answer in time.",
    ErrorKind.AUTH: "The cloud rejected the credentials.",
    ErrorKind.NOT_FOUND: "The server no longer exists.",
    ErrorKind.BUSY: BUSY_MESSAGE,
    ErrorKind.CONFLICT: "A server with this name exists already.",
}


@dataclass(frozen=True)
class _Failure:
    kind: ErrorKind
    message: str
    retry_after: float | None


@dataclass(frozen=True)
class _Action:
    id: str
    command: str
    started_at: datetime
    seconds: float
    during: PowerState  # what the server shows while the action runs

    def running(self, now: datetime) -> bool:
        return self.seconds > 0 and now < self.started_at + timedelta(seconds=self.seconds)

    def info(self, now: datetime) -> ActionInfo:
        if not self.running(now):
            return ActionInfo(self.id, self.command, ActionStatus.SUCCESS, 100)
        elapsed = (now - self.started_at).total_seconds()
        # 100 only once it has finished, so a poller never sees "running" at 100 %.
        progress = min(99, max(0, int(elapsed * 100 / self.seconds)))
        return ActionInfo(self.id, self.command, ActionStatus.RUNNING, progress)


@dataclass
class _Server:
    id: str
    spec: ServerSpec
    created_at: datetime
    ipv4: str
    ipv6: str
    action: _Action
    on: bool = True  # where the server ends up once its action has finished
    disk_gb: int = 0  # the type's at the create, grown only by a resize with upgrade_disk

    def current_action(self, now: datetime) -> _Action | None:
        return self.action if self.action.running(now) else None

    def power(self, now: datetime) -> PowerState:
        action = self.current_action(now)
        if action is not None:
            return action.during
        return PowerState.RUNNING if self.on else PowerState.OFF

    def info(self, now: datetime) -> ServerInfo:
        action = self.current_action(now)
        return ServerInfo(
            server_id=self.id,
            name=self.spec.name,
            power=self.power(now),
            server_type=self.spec.server_type,
            location=self.spec.location,
            ipv4=self.ipv4,
            ipv6=self.ipv6,
            labels=dict(self.spec.labels),
            created_at=self.created_at,
            action=action.info(now) if action else None,
        )

    def made_for(self, spec: ServerSpec) -> bool:
        """Same name and carries every label of `spec` (a cloud may add labels of its own)."""
        return self.spec.name == spec.name and spec.labels.items() <= self.spec.labels.items()


def _password() -> str:
    return secrets.token_urlsafe(15)


def _ipv4(n: int) -> str:
    return f"203.0.113.{(n - 1) % 254 + 1}"  # TEST-NET-3, documentation only


def _ipv6(n: int) -> str:
    return f"2001:db8:{(n >> 16) & 0xFFFF:x}:{n & 0xFFFF:x}::1"  # 2001:db8::/32, documentation only


class SandboxCloud:
    """A thread-safe in-memory cloud implementing `CloudProvider`, with controls for tests and the demo.

    Every provider call is appended to `calls` as `(operation, main arguments...)` so tests can assert on
    what was asked. Ids are strings of increasing integers. Time comes only from `clock`, which must return
    timezone-aware UTC datetimes.
    """

    def __init__(self, name: str, catalog: list[Offer], *, clock: Clock,
                 boot_seconds: float = 8.0, action_seconds: float = 3.0) -> None:
        self.name = name
        self.calls: list[tuple[str, ...]] = []
        self._catalog = {(o.server_type, o.location): o for o in catalog}
        self._clock = clock
        self._boot_seconds = boot_seconds
        self._action_seconds = action_seconds
        self._lock = threading.Lock()
        self._servers: dict[str, _Server] = {}
        self._capacity = Capacity()
        self._failures: dict[str, deque[_Failure]] = {op: deque() for op in OPERATIONS}
        self._lost_answers = 0
        self._guests_ignore_shutdown = False
        self._last_server_id = 0
        self._last_action_id = 0

    # --- Controls for tests and the demo -----------------------------------------------------------

    def set_capacity(self, server_type: str, location: str, count: int | None) -> None:
        """How many more servers of this type fit in this location; None for unlimited (the default)."""
        with self._lock:
            self._capacity.set(self._offered(server_type, location), count)

    def set_price(self, server_type: str, location: str, monthly_minor: int | None) -> None:
        """Change what the cloud charges for a combination it sells; None stops selling it (gone from `offers`
        and `prices`), as a cloud that retires a server type does."""
        with self._lock:
            offer = self._catalog[self._offered(server_type, location)]
            if monthly_minor is None:
                del self._catalog[(server_type, location)]
            else:
                self._catalog[(server_type, location)] = replace(offer, price_minor=monthly_minor)

    def capacity(self, server_type: str, location: str) -> int | None:
        """Capacity left for this combination; None when unlimited."""
        with self._lock:
            return self._capacity.get(self._offered(server_type, location))

    def fail_next(self, operation: str, kind: ErrorKind, times: int = 1, *,
                  message: str | None = None, retry_after: float | None = None) -> None:
        """Make the next `times` calls of `operation` raise ProviderError(kind) before doing anything.

        Operations: "create", "find" (find_server, managed_servers), "info" (server_info), "power" (power_on,
        power_off, shutdown, reboot), "rebuild", "password" (reset_password), "delete", "offers" (offers,
        check_availability). Failures queue up in order.
        """
        if operation not in OPERATIONS:
            raise ValueError(f"unknown operation {operation!r}; expected one of {sorted(OPERATIONS)}")
        failure = _Failure(kind, message or _DEFAULT_MESSAGES[kind], retry_after)
        with self._lock:
            self._failures[operation].extend([failure] * times)

    def fail_after_create(self, times: int = 1) -> None:
        """The next `times` successful creates lose their answer: the server exists, the caller sees a timeout."""
        with self._lock:
            self._lost_answers += times

    def ignore_shutdown(self, ignore: bool = True) -> None:
        """Guests ignore ACPI from now on: `shutdown` succeeds and leaves the server on (`power_off` works)."""
        with self._lock:
            self._guests_ignore_shutdown = ignore

    def delete_out_of_band(self, server_id: str) -> None:
        """Delete a server as if someone did it in the provider's console (not recorded in `calls`)."""
        with self._lock:
            if not self._remove(server_id):
                raise KeyError(server_id)

    def list_servers(self) -> list[ServerInfo]:
        """A snapshot of every server, oldest first (not recorded in `calls`)."""
        with self._lock:
            now = self._now()
            return [server.info(now) for server in self._servers.values()]

    def managed_servers(self, label: str, value: str) -> list[ServerInfo]:
        with self._lock:
            now = self._begin("find", "managed_servers", label, value)
            return [server.info(now) for server in self._servers.values() if server.spec.labels.get(label) == value]

    def server_count(self) -> int:
        with self._lock:
            return len(self._servers)

    def user_data(self, server_id: str) -> str:
        """The user data the server was made (or last rebuilt) with (not recorded in `calls`)."""
        with self._lock:
            return self._get(server_id).spec.user_data

    def image(self, server_id: str) -> str:
        """The image the server runs (not recorded in `calls`)."""
        with self._lock:
            return self._get(server_id).spec.image

    @property
    def gives_passwords(self) -> bool:
        """Whether this cloud answers root passwords (Hetzner does; DigitalOcean does not)."""
        return self.name == "hetzner"

    # --- CloudProvider -----------------------------------------------------------------------------

    def offers(self) -> list[Offer]:
        """The catalog, with `available` false where capacity has run out."""
        with self._lock:
            self._begin("offers", "offers")
            return self._offers()

    def check_availability(self, server_type: str, location: str) -> Availability:
        """Availability with alternatives, computed from `offers()` by the domain rules."""
        with self._lock:
            self._begin("offers", "check_availability", server_type, location)
            return availability(self._offers(), server_type, location)

    def create_server(self, spec: ServerSpec) -> ServerInfo:
        """Create the server, or adopt the one with the same name and labels. CONFLICT on a foreign one."""
        with self._lock:
            now = self._begin("create", "create_server", spec.name, spec.server_type, spec.location)
            existing = self._existing(spec)
            server = existing or self._place(spec, now)
            if self._lost_answers:
                self._lost_answers -= 1
                raise ProviderError(ErrorKind.TRANSIENT, "The request timed out; the server may exist already.")
            made = existing is None and self.gives_passwords
            return replace(server.info(now), root_password=_password() if made else None)

    def find_server(self, spec: ServerSpec) -> ServerInfo | None:
        """The server with `spec.name` that carries its labels, if any."""
        with self._lock:
            now = self._begin("find", "find_server", spec.name)
            server = self._named(spec.name)
            return server.info(now) if server is not None and server.made_for(spec) else None

    def server_info(self, server_id: str) -> ServerInfo:
        """Live state, with the running action and its progress; NOT_FOUND when the server is gone."""
        with self._lock:
            now = self._begin("info", "server_info", server_id)
            return self._get(server_id).info(now)

    def power_on(self, server_id: str) -> ActionInfo:
        """Start the server; on a running server, an action that has already succeeded."""
        return self._power(server_id, "power_on", on=True)

    def power_off(self, server_id: str) -> ActionInfo:
        """Stop the server; on a stopped server, an action that has already succeeded."""
        return self._power(server_id, "power_off", on=False)

    def shutdown(self, server_id: str) -> ActionInfo:
        """Shut down gracefully: off once the action finishes, or, while guests ignore ACPI (`ignore_shutdown`),
        the action completes and the server stays on, as at the real clouds."""
        return self._power(server_id, "shutdown", on=None)

    def reboot(self, server_id: str) -> ActionInfo:
        """Reboot the server; a stopped server is started."""
        return self._power(server_id, "reboot", on=True)

    def rebuild(self, server_id: str, *, image: str, user_data: str = "") -> PasswordAction:
        """Reinstall from `image` (running for the boot time, BUSY meanwhile). Hetzner takes the new user data
        and answers a password; otherwise the server's own user data stays."""
        with self._lock:
            now = self._begin("rebuild", "rebuild", server_id, image)
            server = self._busy_or(server_id, now)
            check_user_data(user_data)
            server.spec = replace(server.spec, image=image,
                                  user_data=user_data if self.gives_passwords else server.spec.user_data)
            server.action = self._action("rebuild_server", now, self._boot_seconds, PowerState.PROVISIONING)
            server.on = True
            return PasswordAction(server.action.info(now), _password() if self.gives_passwords else None)

    def reset_password(self, server_id: str) -> PasswordAction:
        """A new root password (Hetzner only; INVALID elsewhere), BUSY while another action runs."""
        with self._lock:
            now = self._begin("password", "reset_password", server_id)
            if not self.gives_passwords:
                raise ProviderError(ErrorKind.INVALID, "This cloud cannot reset root passwords.")
            server = self._busy_or(server_id, now)
            server.action = self._action("reset_password", now, self._action_seconds, server.power(now))
            return PasswordAction(server.action.info(now), _password())

    def resize(self, server_id: str, server_type: str, *, upgrade_disk: bool) -> ActionInfo:
        """Change the type of a server that is off (INVALID while on, BUSY during an action), as the real clouds
        do; the disk grows with `upgrade_disk` and never shrinks (INVALID for a type with a smaller disk)."""
        with self._lock:
            now = self._begin("resize", "resize", server_id, server_type, str(upgrade_disk))
            server = self._busy_or(server_id, now)
            offer = self._catalog.get((server_type, server.spec.location))
            if offer is None:
                raise ProviderError(ErrorKind.INVALID, f"{server_type} is not offered in {server.spec.location}.")
            if server.on:
                raise ProviderError(ErrorKind.INVALID, NOT_OFF_MESSAGE)
            if offer.disk_gb < server.disk_gb:
                raise ProviderError(ErrorKind.INVALID, SMALLER_DISK_MESSAGE)
            old = (server.spec.server_type, server.spec.location)
            if server_type != old[0]:
                if not (offer.available and self._capacity.allows((server_type, old[1]))):
                    raise ProviderError(ErrorKind.UNAVAILABLE, f"{server_type} is sold out in {old[1]} for now.")
                self._capacity.take((server_type, old[1]))
                self._capacity.give_back(old)
            server.spec = replace(server.spec, server_type=server_type)
            if upgrade_disk:
                server.disk_gb = offer.disk_gb
            server.action = self._action("change_type", now, self._action_seconds, PowerState.OFF)
            return server.action.info(now)

    def prices(self) -> list[CostPrice]:
        """The catalog's monthly prices with the types' specs."""
        with self._lock:
            self._begin("offers", "prices")
            return [CostPrice(o.server_type, o.location, o.price_minor, o.currency, o.cores,
                              Decimal(o.memory_mb) / 1024, o.disk_gb) for o in self._catalog.values()]

    def disk_gb(self, server_id: str) -> int:
        """The server's disk size now (not recorded in `calls`)."""
        with self._lock:
            return self._get(server_id).disk_gb

    def delete_server(self, server_id: str) -> None:
        """Delete the server and free its capacity; a server that is already gone is not an error."""
        with self._lock:
            self._begin("delete", "delete_server", server_id)
            self._remove(server_id)

    # --- Internals (the lock is held) --------------------------------------------------------------

    def _now(self) -> datetime:
        now = self._clock()
        if now.tzinfo is None:
            raise ValueError("the sandbox clock must return timezone-aware datetimes")
        return now

    def _begin(self, operation: str, *call: str) -> datetime:
        """Record the call and raise the failure injected for `operation`, if any; returns now."""
        self.calls.append(call)
        failures = self._failures[operation]
        if failures:
            failure = failures.popleft()
            raise ProviderError(failure.kind, failure.message, retry_after=failure.retry_after)
        return self._now()

    def _offered(self, server_type: str, location: str) -> tuple[str, str]:
        if (server_type, location) not in self._catalog:
            raise ValueError(f"{server_type} in {location} is not in the catalog of {self.name}")
        return server_type, location

    def _offers(self) -> list[Offer]:
        return [replace(offer, available=offer.available and self._capacity.allows(key))
                for key, offer in self._catalog.items()]

    def _named(self, name: str) -> _Server | None:
        return next((s for s in self._servers.values() if s.spec.name == name), None)

    def _get(self, server_id: str) -> _Server:
        server = self._servers.get(server_id)
        if server is None:
            raise ProviderError(ErrorKind.NOT_FOUND, f"The server {server_id} no longer exists.")
        return server

    def _existing(self, spec: ServerSpec) -> _Server | None:
        server = self._named(spec.name)
        if server is not None and not server.made_for(spec):
            raise ProviderError(ErrorKind.CONFLICT, f"A server named {spec.name} exists already.")
        return server

    def _place(self, spec: ServerSpec, now: datetime) -> _Server:
        if not spec.name:
            raise ProviderError(ErrorKind.INVALID, "A server needs a name.")
        check_user_data(spec.user_data)
        verdict = availability(self._offers(), spec.server_type, spec.location)
        if not verdict.available:
            raise ProviderError(ErrorKind.INVALID if verdict.permanent else ErrorKind.UNAVAILABLE, verdict.message)
        self._capacity.take((spec.server_type, spec.location))
        self._last_server_id += 1
        n = self._last_server_id
        action = self._action("create_server", now, self._boot_seconds, PowerState.PROVISIONING)
        server = _Server(str(n), replace(spec, labels=dict(spec.labels)), now, _ipv4(n), _ipv6(n), action,
                         disk_gb=self._catalog[spec.server_type, spec.location].disk_gb)
        self._servers[server.id] = server
        return server

    def _busy_or(self, server_id: str, now: datetime) -> _Server:
        """The server, unless an action runs on it (BUSY)."""
        server = self._get(server_id)
        if server.current_action(now) is not None:
            raise ProviderError(ErrorKind.BUSY, BUSY_MESSAGE)
        return server

    def _power(self, server_id: str, command: str, *, on: bool | None) -> ActionInfo:
        """`on` None: a shutdown, which the guest may ignore."""
        with self._lock:
            now = self._begin("power", command, server_id)
            server = self._busy_or(server_id, now)
            if on is None:
                on = server.on and self._guests_ignore_shutdown
            # Like the real clouds, asking for the state the server is already in succeeds at once.
            changes = command == "reboot" or server.on != on
            if command == "reboot" and server.on:
                during = PowerState.REBOOTING
            else:
                during = PowerState.STARTING if on else PowerState.STOPPING
            server.action = self._action(command, now, self._action_seconds if changes else 0.0, during)
            server.on = on
            return server.action.info(now)

    def _action(self, command: str, now: datetime, seconds: float, during: PowerState) -> _Action:
        self._last_action_id += 1
        return _Action(str(self._last_action_id), command, now, seconds, during)

    def _remove(self, server_id: str) -> bool:
        server = self._servers.pop(server_id, None)
        if server is None:
            return False
        self._capacity.give_back((server.spec.server_type, server.spec.location))
        return True


# --- Demo catalogs ---------------------------------------------------------------------------------

_HETZNER_ZONES = {"fsn1": "eu-central", "nbg1": "eu-central", "hel1": "eu-central",
                  "ash": "us-east", "hil": "us-west", "sin": "ap-southeast"}
_HETZNER_EU = ("fsn1", "nbg1", "hel1")

# name, cores, memory MB, disk GB, architecture, recommended, {location: EUR cents per month}
_HETZNER_TYPES: list[tuple[str, int, int, int, str, bool, dict[str, int]]] = [
    ("cx22", 2, 4096, 40, "x86", True, dict.fromkeys(_HETZNER_EU, 459)),
    ("cx32", 4, 8192, 80, "x86", False, dict.fromkeys(_HETZNER_EU, 799)),
    ("cx42", 8, 16384, 160, "x86", False, dict.fromkeys(_HETZNER_EU, 1899)),
    ("cpx21", 3, 4096, 80, "x86", True, {**dict.fromkeys(_HETZNER_EU, 899), "ash": 1049, "hil": 1049, "sin": 1349}),
    ("cax11", 2, 4096, 40, "arm", False, dict.fromkeys(_HETZNER_EU, 449)),
]

HETZNER_OFFERS: list[Offer] = [
    Offer(name, location, _HETZNER_ZONES[location], price, "EUR", True, cores, memory, disk, arch,
          recommended=recommended)
    for name, cores, memory, disk, arch, recommended, prices in _HETZNER_TYPES
    for location, price in prices.items()
]

_DIGITALOCEAN_ZONES = {"fra1": "eu", "ams3": "eu", "lon1": "eu", "nyc3": "us", "sfo3": "us", "sgp1": "ap"}

# slug, vCPUs, memory MB, disk GB, USD cents per month (the same in every region)
_DIGITALOCEAN_SIZES: list[tuple[str, int, int, int, int]] = [
    ("s-1vcpu-1gb", 1, 1024, 25, 600),
    ("s-1vcpu-2gb", 1, 2048, 50, 1200),
    ("s-2vcpu-4gb", 2, 4096, 80, 2400),
    ("s-4vcpu-8gb", 4, 8192, 160, 4800),
]

DIGITALOCEAN_OFFERS: list[Offer] = [
    Offer(slug, region, zone, price, "USD", True, cores, memory, disk)
    for slug, cores, memory, disk, price in _DIGITALOCEAN_SIZES
    for region, zone in _DIGITALOCEAN_ZONES.items()
]

CATALOGS: dict[str, list[Offer]] = {"hetzner": HETZNER_OFFERS, "digitalocean": DIGITALOCEAN_OFFERS}
DEMO_SOLD_OUT: dict[str, tuple[str, str]] = {"hetzner": ("cx42", "hel1"), "digitalocean": ("s-4vcpu-8gb", "sgp1")}

# --- Shared sandboxes ------------------------------------------------------------------------------

# The web process and the in-process worker must see the same servers, so there is one per key.
_sandboxes: dict[tuple[int, str], SandboxCloud] = {}
_sandboxes_lock = threading.Lock()


def sandbox_for(tenant_id: int, provider: str, clock: Clock, *, boot_seconds: float = 8.0,
                action_seconds: float = 3.0) -> SandboxCloud:
    """The tenant's sandbox for `provider` ("hetzner" or "digitalocean"), created on first use.

    A new sandbox gets the provider's demo catalog with `DEMO_SOLD_OUT` applied. The clock of the first
    call is kept, so pass one that reads the app's clock rather than a copy of the time.
    """
    key = (tenant_id, str(provider))
    if key[1] not in CATALOGS:
        raise ValueError(f"no sandbox catalog for provider {provider!r}")
    with _sandboxes_lock:
        sandbox = _sandboxes.get(key)
        if sandbox is None:
            sandbox = _sandboxes[key] = SandboxCloud(key[1], CATALOGS[key[1]], clock=clock, boot_seconds=boot_seconds,
                                                     action_seconds=action_seconds)
            sandbox.set_capacity(*DEMO_SOLD_OUT[key[1]], 0)
        return sandbox


def reset_sandboxes() -> None:
    """Forget every shared sandbox (for tests)."""
    with _sandboxes_lock:
        _sandboxes.clear()
