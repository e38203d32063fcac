"""The protocol every cloud adapter implements, the values it returns and the errors it raises."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Protocol

from app.domain.availability import Availability, Offer
from app.domain.cloud_init import MAX_USER_DATA_BYTES


class PowerState(StrEnum):
    RUNNING = "running"
    OFF = "off"
    STARTING = "starting"
    STOPPING = "stopping"
    REBOOTING = "rebooting"
    PROVISIONING = "provisioning"
    UNKNOWN = "unknown"


class ActionStatus(StrEnum):
    RUNNING = "running"
    SUCCESS = "success"
    ERROR = "error"


BUSY_MESSAGE = "Another action is running on this server; try again in a moment."


class ErrorKind(StrEnum):
    UNAVAILABLE = "unavailable"  # sold out for now: retry later or backorder
    INVALID = "invalid"  # the request can never succeed as sent
    RATE_LIMITED = "rate_limited"
    TRANSIENT = "transient"  # 5xx, timeouts, resets: retry with backoff
    AUTH = "auth"  # bad or revoked credentials, quota: fail fast
    NOT_FOUND = "not_found"
    BUSY = "busy"  # another action runs on this server
    CONFLICT = "conflict"  # e.g. the name exists already


RETRYABLE = frozenset({ErrorKind.RATE_LIMITED, ErrorKind.TRANSIENT, ErrorKind.BUSY})


class ProviderError(Exception):
    """A cloud said no. `message` is fit for the customer; `retry_after` in seconds when the cloud says."""

    def __init__(self, kind: ErrorKind, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        return self.kind in RETRYABLE


@dataclass(frozen=True)
class ActionInfo:
    id: str
    command: str
    status: ActionStatus
    progress: int = 0
    error: str | None = None


@dataclass(frozen=True)
class CostPrice:
    """What a cloud charges for a server type in a location: the monthly price in integer minor units, converted
    exactly from the API's decimal text (Hetzner's net price; DigitalOcean's one price for every region)."""

    server_type: str
    location: str
    monthly_minor: int
    currency: str
    vcpus: int | None = None
    memory_gb: Decimal | None = None
    disk_gb: int | None = None


@dataclass(frozen=True)
class ServerSpec:
    """What to create. `name` is deterministic and `labels` tie the server to its subscription item."""

    name: str
    server_type: str
    location: str
    image: str
    user_data: str = ""
    labels: dict[str, str] = field(default_factory=dict)


def check_user_data(user_data: str) -> None:
    """Refuse, before any request, user_data larger than the portal-wide limit (Hetzner's 32 KiB)."""
    size = len(user_data.encode())
    if size > MAX_USER_DATA_BYTES:
        raise ProviderError(ErrorKind.INVALID, f"The cloud-init user data is {size} bytes; clouds accept at most "
                                               f"{MAX_USER_DATA_BYTES // 1024} KiB.")


def create_or_adopt(spec: ServerSpec, *, find: Callable[[ServerSpec], ServerInfo | None],
                    create: Callable[[ServerSpec], ServerInfo],
                    adopt_after: frozenset[ErrorKind] = frozenset({ErrorKind.TRANSIENT})) -> ServerInfo:
    """The idempotent create every adapter shares: adopt the server made for `spec`, else create it.

    A create that failed with a kind in `adopt_after` (a lost answer, a timeout) may have made the server
    all the same, so it is looked for once more and adopted rather than made twice; if it is not found the
    original error stands and the caller's retry will adopt it then.
    """
    check_user_data(spec.user_data)
    if (existing := find(spec)) is not None:
        return existing
    try:
        return create(spec)
    except ProviderError as error:
        if error.kind not in adopt_after:
            raise
        try:
            adopted = find(spec)
        except ProviderError:
            adopted = None
        if adopted is None:
            raise
        return adopted


@dataclass(frozen=True)
class PasswordAction:
    """An action that may come with a new root password (a rebuild; a password reset at Hetzner).

    The password is never part of the repr, so it cannot reach a log line by accident."""

    action: ActionInfo
    root_password: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class ServerInfo:
    server_id: str
    name: str
    power: PowerState
    server_type: str
    location: str
    ipv4: str | None = None
    ipv6: str | None = None
    private_ip: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    created_at: datetime | None = None
    action: ActionInfo | None = None
    # The root password the cloud set, from a create's answer only (Hetzner gives one whenever no cloud SSH key
    # was named); never in the repr.
    root_password: str | None = field(default=None, repr=False, compare=False)

    @property
    def ready(self) -> bool:
        return self.power in (PowerState.RUNNING, PowerState.OFF)


class CloudProvider(Protocol):
    """One cloud account. Implementations: the sandbox (in-process), Hetzner (hcloud), DigitalOcean."""

    name: str

    def offers(self) -> list[Offer]:
        """Every server type in every location, with price and availability now."""
        ...

    def check_availability(self, server_type: str, location: str) -> Availability:
        """Can this type be placed there now; alternatives when not."""
        ...

    def create_server(self, spec: ServerSpec) -> ServerInfo:
        """Create the server, or adopt the one that already carries `spec.name` and labels (idempotent)."""
        ...

    def find_server(self, spec: ServerSpec) -> ServerInfo | None:
        """The server made for `spec` (by name and labels), if any."""
        ...

    def server_info(self, server_id: str) -> ServerInfo:
        """Live state; raises ProviderError(NOT_FOUND) when the server is gone."""
        ...

    def managed_servers(self, label: str, value: str) -> list[ServerInfo]:
        """Every server carrying the label `label=value` (the portal marks its servers so)."""
        ...

    def power_on(self, server_id: str) -> ActionInfo: ...

    def power_off(self, server_id: str) -> ActionInfo:
        """Cut the power (a hard stop that always completes)."""
        ...

    def shutdown(self, server_id: str) -> ActionInfo:
        """Ask the guest to shut down gracefully (ACPI). The action may succeed before the server is off, and a
        guest that ignores ACPI stays on: poll `server_info` and `power_off` after a timeout."""
        ...

    def reboot(self, server_id: str) -> ActionInfo: ...

    def rebuild(self, server_id: str, *, image: str, user_data: str = "") -> PasswordAction:
        """Reinstall the server from `image`, erasing its disk; BUSY while another action runs. Hetzner takes
        `user_data` anew (and may answer a new root password); DigitalOcean runs the droplet's own again."""
        ...

    def reset_password(self, server_id: str) -> PasswordAction:
        """Set a new root password and answer it (Hetzner); clouds that cannot raise ProviderError(INVALID)."""
        ...

    def delete_server(self, server_id: str) -> None:
        """Delete; a server that is already gone is not an error."""
        ...

    def resize(self, server_id: str, server_type: str, *, upgrade_disk: bool) -> ActionInfo:
        """Change the server's type. The server must be off (INVALID while it runs, BUSY while an action runs);
        `upgrade_disk` grows the disk to the new type's, after which the disk can never shrink again (a type
        with a smaller disk is refused, INVALID)."""
        ...

    def prices(self) -> list[CostPrice]:
        """What the cloud charges per server type and location, per month."""
        ...
