"""Hetzner Cloud behind `CloudProvider`, through the `hcloud` SDK (never raw HTTP).

Choices worth knowing (the API and SDK have traps):

- The SDK retries by itself (rate_limit_exceeded, conflict, bad_gateway, timeout, 502/504 without a body and
  requests timeouts, POST included) up to 5 times with jittered backoff up to 60 s. hcloud 2.27 has no public
  setting for that, so the constructor sets the two attributes the SDK's `ClientBase.request` reads,
  `_retry_max_retries` and `_retry_interval_func`, to `retries` (default 2) and a short exponential backoff
  (`backoff` s doubling, at most 10 s). It fails loudly if an SDK upgrade renames them. The caller (the
  worker) owns the long-term retry schedule; the SDK only smooths over blips.
- The SDK does not expose the HTTP response on `APIException`, so `Retry-After` is read by a response hook
  on the SDK's own `requests.Session` and kept per thread.
- Creates are idempotent: the name is deterministic and the labels tie the server to its subscription item.
  An existing server with that name and those labels is adopted; a create whose answer was lost (a timeout,
  a dropped connection, a 5xx, or the SDK's own retry meeting 409 `uniqueness_error`) is followed by a
  look-up by name.
- `power_off` uses `poweroff` (a hard stop that always completes); `shutdown` is the ACPI request the guest
  may ignore, whose action succeeds once the request is sent, before the server is off: callers poll the
  server's status and power it off after a timeout.
- Action commands are Hetzner's (`start_server`, `stop_server`, `shutdown_server`, `reboot_server`,
  `reset_server`, `rebuild_server`, `reset_password`), not the path names of the requests that start them.
- Root passwords: Hetzner answers one to a create and a rebuild whenever no Hetzner SSH key object was named
  (the portal sends customers' keys in the cloud-init user data instead), and to `reset_password`. They are
  handed back (`ServerInfo.root_password`, `PasswordAction`) outside any repr; the caller decides what to keep.
- `resize` is `change_type` (`upgrade_disk` as asked); Hetzner refuses it while the server runs
  (`server_not_stopped`) and never shrinks a disk, so a type with a smaller disk than the server has now is
  refused. `prices` reads the per-location `prices[]` of `/server_types`: net monthly EUR strings, to cents
  exactly (Decimal, half up), never through a float.
- A rebuild sends the user data again (hcloud's `rebuild(..., user_data=)`), so cloud-init applies the keys
  to the fresh disk.
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from email.utils import parsedate_to_datetime
from typing import NoReturn

import requests
from hcloud import APIException, Client, exponential_backoff_function
from hcloud.actions import BoundAction
from hcloud.images import Image
from hcloud.locations import Location
from hcloud.server_types import BoundServerType, ServerType
from hcloud.servers import BoundServer, Server

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
    create_or_adopt,
)

DEFAULT_ENDPOINT = "https://api.hetzner.cloud/v1"
DEFAULT_RETRIES = 2
MAX_BACKOFF_SECONDS = 10.0
CURRENCY = "EUR"

_KIND_OF_CODE: dict[str, ErrorKind] = {
    "invalid_input": ErrorKind.INVALID, "json_error": ErrorKind.INVALID, "protected": ErrorKind.INVALID,
    "uniqueness_error": ErrorKind.CONFLICT,
    "resource_unavailable": ErrorKind.UNAVAILABLE, "placement_error": ErrorKind.UNAVAILABLE,
    "unavailable": ErrorKind.TRANSIENT,  # 503 "service currently not available"; sold out is resource_unavailable
    "locked": ErrorKind.BUSY,
    "not_found": ErrorKind.NOT_FOUND,
    "rate_limit_exceeded": ErrorKind.RATE_LIMITED,
    "unauthorized": ErrorKind.AUTH, "forbidden": ErrorKind.AUTH, "token_readonly": ErrorKind.AUTH,
    "resource_limit_exceeded": ErrorKind.AUTH,
    "conflict": ErrorKind.TRANSIENT, "timeout": ErrorKind.TRANSIENT, "bad_gateway": ErrorKind.TRANSIENT,
    "server_error": ErrorKind.TRANSIENT, "service_error": ErrorKind.TRANSIENT, "maintenance": ErrorKind.TRANSIENT,
}
_KIND_OF_STATUS = {401: ErrorKind.AUTH, 403: ErrorKind.AUTH, 404: ErrorKind.NOT_FOUND, 409: ErrorKind.CONFLICT,
                   412: ErrorKind.UNAVAILABLE, 423: ErrorKind.BUSY, 429: ErrorKind.RATE_LIMITED}
_MESSAGES = {
    ErrorKind.UNAVAILABLE: "Hetzner Cloud has no capacity for this server type in this location right now.",
    ErrorKind.RATE_LIMITED: "Hetzner Cloud is limiting our requests; we will try again shortly.",
    ErrorKind.TRANSIENT: "Hetzner Cloud did not answer in time; we will try again shortly.",
    ErrorKind.NOT_FOUND: "The server no longer exists at Hetzner Cloud.",
    ErrorKind.BUSY: BUSY_MESSAGE,
    ErrorKind.CONFLICT: "A server with this name exists already at Hetzner Cloud.",
}
_AUTH_MESSAGES = {
    "resource_limit_exceeded": "The Hetzner Cloud project has reached its server quota; the provider account "
                               "needs a higher limit before more servers can be created.",
    "forbidden": "The Hetzner Cloud API token may not do this (is it read-only?); the provider account needs "
                 "attention.",
    "token_readonly": "The Hetzner Cloud API token is read-only; the provider account needs attention.",
}
_AUTH_MESSAGE = "Hetzner Cloud rejected the API token (revoked or wrong); the provider account needs attention."
# Hetzner has no rebooting status: a reboot shows as "running" with a running reboot action.
_POWER_OF_STATUS = {"initializing": PowerState.PROVISIONING, "starting": PowerState.STARTING,
                    "running": PowerState.RUNNING, "stopping": PowerState.STOPPING, "off": PowerState.OFF,
                    "rebuilding": PowerState.PROVISIONING, "migrating": PowerState.RUNNING}
_POWER_OF_ACTION = {"reboot_server": PowerState.REBOOTING, "reset_server": PowerState.REBOOTING,
                    "rebuild_server": PowerState.PROVISIONING,
                    "start_server": PowerState.STARTING, "stop_server": PowerState.STOPPING,
                    "shutdown_server": PowerState.STOPPING}


class HetznerCloud:
    """One Hetzner Cloud project, reached with its API token. Returns only the project's dataclasses."""

    name = "hetzner"

    def __init__(self, token: str, *, endpoint: str = DEFAULT_ENDPOINT, timeout: float = 15.0,
                 poll_interval: float = 1.0, poll_max_retries: int = 60, retries: int | None = None,
                 backoff: float = 0.5) -> None:
        self._client = Client(token, api_endpoint=endpoint.rstrip("/"), poll_interval=poll_interval,
                              poll_max_retries=poll_max_retries, timeout=timeout)
        self._responses = threading.local()
        _bound_sdk_retries(self._client, DEFAULT_RETRIES if retries is None else retries, backoff)
        self._client._client._session.hooks["response"].append(self._remember)

    def close(self) -> None:
        """Close the SDK's HTTP connections."""
        self._client._client._session.close()

    # --- Catalog --------------------------------------------------------------------------------------

    def offers(self) -> list[Offer]:
        """One offer per (server type, location) Hetzner lists, with the monthly net price in EUR cents."""
        with self._translated():
            zones = {loc.name: loc.network_zone for loc in self._client.locations.get_all()}
            types = self._client.server_types.get_all()
        return [offer for server_type in types for offer in _offers_of(server_type, zones)]

    def check_availability(self, server_type: str, location: str) -> Availability:
        return availability(self.offers(), server_type, location)

    def prices(self) -> list[CostPrice]:
        """The monthly net price of every server type in every location it has a price for, in EUR cents."""
        with self._translated():
            types = self._client.server_types.get_all()
        return [CostPrice(t.name, p["location"], _cents(p["price_monthly"]["net"]), CURRENCY, t.cores,
                          Decimal(str(t.memory)) if t.memory is not None else None, t.disk)
                for t in types for p in t.prices or []]

    # --- Servers --------------------------------------------------------------------------------------

    def create_server(self, spec: ServerSpec) -> ServerInfo:
        """Create the server, or adopt the one already carrying `spec.name` and labels (idempotent).

        After a lost answer, or the SDK's own retry of it (409 uniqueness_error), the server is adopted.
        """
        return create_or_adopt(spec, find=self._made_for, create=self._create,
                               adopt_after=frozenset({ErrorKind.TRANSIENT, ErrorKind.CONFLICT}))

    def _create(self, spec: ServerSpec) -> ServerInfo:
        with self._translated(spec):
            response = self._client.servers.create(
                spec.name, server_type=ServerType(name=spec.server_type), image=Image(name=spec.image),
                location=Location(name=spec.location) if spec.location else None,
                labels=dict(spec.labels), user_data=spec.user_data or None, start_after_create=True)
        info = _server_info(response.server, [response.action, *response.next_actions])
        return replace(info, root_password=response.root_password or None)

    def find_server(self, spec: ServerSpec) -> ServerInfo | None:
        """The server named `spec.name`, if it carries every label of `spec`."""
        with self._translated():
            server = self._client.servers.get_by_name(spec.name)
            return self._info(server) if server is not None and _carries(server, spec) else None

    def server_info(self, server_id: str) -> ServerInfo:
        """Live state with the running action, if any; NOT_FOUND when the server is gone."""
        with self._translated():
            return self._info(self._client.servers.get_by_id(_id(server_id)))

    def managed_servers(self, label: str, value: str) -> list[ServerInfo]:
        """Servers carrying the label, without their running actions (one listing, not one call per server)."""
        with self._translated():
            return [_server_info(server, []) for server in
                    self._client.servers.get_all(label_selector=f"{label}={value}")]

    def power_on(self, server_id: str) -> ActionInfo:
        return self._act(server_id, self._client.servers.power_on)

    def power_off(self, server_id: str) -> ActionInfo:
        """A hard power-off: it always completes, unlike an ACPI shutdown the guest may ignore."""
        return self._act(server_id, self._client.servers.power_off)

    def shutdown(self, server_id: str) -> ActionInfo:
        """An ACPI shutdown: the action succeeds once it is sent; the server is off only when the guest says so."""
        return self._act(server_id, self._client.servers.shutdown)

    def reboot(self, server_id: str) -> ActionInfo:
        return self._act(server_id, self._client.servers.reboot)

    def rebuild(self, server_id: str, *, image: str, user_data: str = "") -> PasswordAction:
        """Reinstall from `image` with `user_data` run again; the answer's root password, if any, is handed back."""
        check_user_data(user_data)
        with self._translated():
            response = self._client.servers.rebuild(Server(id=_id(server_id)), Image(name=image),
                                                    user_data=user_data or None)
        return PasswordAction(_action_info(response.action), response.root_password or None)

    def reset_password(self, server_id: str) -> PasswordAction:
        """A new root password, set through the guest agent; BUSY while another action runs."""
        with self._translated():
            response = self._client.servers.reset_password(Server(id=_id(server_id)))
        return PasswordAction(_action_info(response.action), response.root_password or None)

    def resize(self, server_id: str, server_type: str, *, upgrade_disk: bool) -> ActionInfo:
        """Change the server's type (`change_type`); the server must be off. With `upgrade_disk` the disk grows
        to the new type's and the server can never move to a type with a smaller disk again."""
        with self._translated():
            return _action_info(self._client.servers.change_type(Server(id=_id(server_id)),
                                                                 ServerType(name=server_type), upgrade_disk))

    def delete_server(self, server_id: str) -> None:
        """Delete the server; one that is gone already is not an error."""
        try:
            with self._translated():
                self._client.servers.delete(Server(id=_id(server_id)))
        except ProviderError as error:
            if error.kind is not ErrorKind.NOT_FOUND:
                raise

    # --- Internals ------------------------------------------------------------------------------------

    def _made_for(self, spec: ServerSpec) -> ServerInfo | None:
        """The server named `spec.name`: adopted when it carries the labels, CONFLICT when it does not."""
        with self._translated():
            server = self._client.servers.get_by_name(spec.name)
            if server is None:
                return None
            if not _carries(server, spec):
                raise ProviderError(ErrorKind.CONFLICT, f"A server named {spec.name} exists already at Hetzner "
                                                        "Cloud and belongs to something else.")
            return self._info(server)

    def _info(self, server: BoundServer) -> ServerInfo:
        running = self._client.servers.get_actions_list(server, status=["running"]).actions
        return _server_info(server, running)

    def _act(self, server_id: str, command: Callable[[Server], BoundAction]) -> ActionInfo:
        with self._translated():
            return _action_info(command(Server(id=_id(server_id))))

    def _remember(self, response: requests.Response, *args: object, **kwargs: object) -> None:
        self._responses.headers = response.headers

    def _retry_after(self) -> float | None:
        headers = getattr(self._responses, "headers", None)
        return _seconds(headers.get("Retry-After")) if headers is not None else None

    @contextmanager
    def _translated(self, spec: ServerSpec | None = None) -> Iterator[None]:
        """Turn SDK and requests exceptions into `ProviderError` with a customer message."""
        try:
            yield
        except APIException as error:
            _raise_api(error, spec, self._retry_after())
        except requests.RequestException as error:  # timeouts (after the SDK's retries), resets, refusals
            raise ProviderError(ErrorKind.TRANSIENT, _MESSAGES[ErrorKind.TRANSIENT]) from error


def _raise_api(error: APIException, spec: ServerSpec | None, retry_after: float | None) -> NoReturn:
    code = error.code
    if isinstance(code, str):
        kind = _KIND_OF_CODE.get(code, ErrorKind.INVALID)
    else:
        kind = ErrorKind.TRANSIENT if code >= 500 else _KIND_OF_STATUS.get(code, ErrorKind.INVALID)
    message = _message(kind, str(code), error.message, spec)
    raise ProviderError(kind, message, retry_after=retry_after if kind is ErrorKind.RATE_LIMITED else None) from error


def _message(kind: ErrorKind, code: str, api_message: str, spec: ServerSpec | None) -> str:
    if kind is ErrorKind.AUTH:
        return _AUTH_MESSAGES.get(code, _AUTH_MESSAGE)
    if spec is not None and kind is ErrorKind.UNAVAILABLE:
        return f"{spec.server_type} is sold out in {spec.location} for now."
    if spec is not None and api_message == "unsupported location for server type":
        return f"{spec.server_type} is not offered in {spec.location}."
    if kind is ErrorKind.INVALID:
        return f"Hetzner Cloud refused the request: {api_message}."
    return _MESSAGES[kind]


def _bound_sdk_retries(client: Client, retries: int, backoff: float) -> None:
    base = client._client
    if not hasattr(base, "_retry_max_retries") or not hasattr(base, "_retry_interval_func"):
        raise RuntimeError("hcloud changed how it retries; bound its retries again in app/providers/hetzner.py")
    base._retry_max_retries = max(0, retries)
    base._retry_interval_func = exponential_backoff_function(base=backoff, multiplier=2, cap=MAX_BACKOFF_SECONDS,
                                                             jitter=True)


def _offers_of(server_type: BoundServerType, zones: dict[str, str]) -> list[Offer]:
    prices = {p["location"]: p["price_monthly"]["net"] for p in server_type.prices or []}
    return [
        Offer(server_type.name, entry.location.name, zones.get(entry.location.name, ""),
              _cents(prices[entry.location.name]), CURRENCY, bool(entry.available), server_type.cores,
              int(Decimal(str(server_type.memory)) * 1024), server_type.disk, server_type.architecture or "x86",
              deprecated=entry.deprecation is not None, recommended=bool(entry.recommended))
        for entry in server_type.locations or []
        if entry.location.name in prices  # a type without a price there cannot be sold there
    ]


def _cents(amount: str) -> int:
    """A decimal EUR string to integer cents, half up: the one conversion from Hetzner's prices."""
    return int((Decimal(amount) * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _server_info(server: BoundServer, actions: list[BoundAction]) -> ServerInfo:
    running = [a for a in actions if a.status == "running"]
    action = min(running, key=lambda a: a.id) if running else None
    public = server.public_net
    return ServerInfo(
        server_id=str(server.id),
        name=server.name,
        power=_power(server.status, action),
        server_type=server.server_type.name,
        location=server.location.name,
        ipv4=public.ipv4.ip if public and public.ipv4 else None,
        ipv6=str(ipaddress.IPv6Network(public.ipv6.ip, strict=False)[1]) if public and public.ipv6 else None,
        private_ip=server.private_net[0].ip if server.private_net else None,
        labels=dict(server.labels or {}),
        created_at=server.created.astimezone(UTC) if isinstance(server.created, datetime) else None,
        action=_action_info(action) if action is not None else None,
    )


def _power(status: str, action: BoundAction | None) -> PowerState:
    if action is not None and status not in ("initializing", "rebuilding"):
        return _POWER_OF_ACTION.get(action.command, _POWER_OF_STATUS.get(status, PowerState.UNKNOWN))
    return _POWER_OF_STATUS.get(status, PowerState.UNKNOWN)


def _action_info(action: BoundAction) -> ActionInfo:
    error = action.error["message"] if action.error else None
    return ActionInfo(str(action.id), action.command, ActionStatus(action.status), action.progress or 0, error)


def _carries(server: BoundServer, spec: ServerSpec) -> bool:
    return spec.labels.items() <= (server.labels or {}).items()


def _id(server_id: str) -> int:
    try:
        return int(server_id)
    except ValueError:
        raise ProviderError(ErrorKind.NOT_FOUND, f"There is no Hetzner Cloud server {server_id}.") from None


def _seconds(value: str | None) -> float | None:
    """Retry-After as seconds: a number of seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError):
        return None
