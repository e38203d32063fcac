"""A stateful fake of the Hetzner Cloud API v1: the demo and the tests drive the real `hcloud` SDK against it.

`HetznerFake` is a WSGI app holding everything in memory behind one lock. It answers the paths the adapter
uses with the JSON shapes of the real API: server types with per-location prices (decimal
strings) and availability, locations with network zones, servers that are `initializing` for `boot_seconds`
and then `running`, power actions that run for `action_seconds` and lock the server meanwhile (423 `locked`),
named as Hetzner names them (`stop_server` for a poweroff, ...), an ACPI `shutdown` whose action only sends the
request (the server is off `action_seconds` later, or never while guests ignore ACPI),
names that must be unique (409 `uniqueness_error`), a `root_password` in the create's answer unless `ssh_keys`
named keys, rebuilds (`rebuild_server`, the server `rebuilding` for `boot_seconds`, with new `user_data` if
sent and a new root password unless made with keys) and `reset_password` (a new root password) that lock the
server like any action, `change_type` (`change_server_type`, only while the server is off, else 409
`server_not_stopped`; `upgrade_disk` grows the disk, which never shrinks again: a type with a smaller disk than
the server's is refused with 400 `invalid_input`), capacity that runs out (412 `resource_unavailable`),
unsupported combinations (400 `invalid_input`), a server limit (403 `resource_limit_exceeded`), a bearer
token (401 `unauthorized`) and a 3600-per-hour rate limit with `RateLimit-*` headers. The catalog is the
sandbox's `HETZNER_OFFERS`; `demo=True` starts with cx42 sold out in hel1, as the sandbox demo does.

Time comes from `clock` (aware UTC) plus whatever `advance()` added, so tests move time instead of sleeping.
Only injected slow answers and lost answers really sleep.

Controls, as methods and as JSON endpoints under /_control (no token needed):

set_capacity(type, location, count | None)         POST /_control/capacity {server_type, location, count}
fail_next(operation, status, code, message, ...)   POST /_control/faults {kind: "error", operation, status, ...}
slow_next(operation, seconds, times=1)             POST /_control/faults {kind: "slow", operation, seconds}
lose_next_answer(operation, delay=None, times=1)   POST /_control/faults {kind: "lose_answer", operation, delay}
clear_faults()                                     DELETE /_control/faults
delete_out_of_band(server_id)                      DELETE /_control/servers/<id>
set_price(type, location, monthly_net)             POST /_control/prices {server_type, location, monthly_net}
set_deprecated(type, location, deprecated)         POST /_control/deprecation {server_type, location, deprecated}
set_server_limit(limit | None)                     POST /_control/server_limit {limit}
set_token(token | None)                            POST /_control/token {token}
ignore_shutdown(ignore=True)                       POST /_control/ignore_shutdown {ignore}
set_rate_limit(per_hour)                           POST /_control/rate_limit {per_hour}
advance(seconds)                                   POST /_control/advance {seconds}
state() / calls                                    GET /_control/state, GET /_control/calls
reset()                                            POST /_control/reset

`received(server_id)` gives what a server was made with and what was done to it (ssh_keys, user_data, the
rebuilds with their image and user_data, the password resets); `state()` lists it under "received".

Operations that faults attach to: create (POST /servers), get (GET /servers/{id}), list (GET /servers),
action (POST /servers/{id}/actions/...), delete, types (/server_types), locations, poll (every GET of an
action). A lost answer performs the operation, then answers only after `delay` seconds (longer than the
client's timeout) or, with `delay=None`, drops the connection without answering. `calls` records every API
request with the status it answered (a slow one once it answers); a request still sleeping when `reset()`
runs is answered 503 and not recorded, so one test's stragglers never reach the next.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import secrets
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from app.domain.availability import Offer
from app.sandbox.capacity import Capacity
from app.sandbox.cloud import DEMO_SOLD_OUT, HETZNER_OFFERS

Clock = Callable[[], datetime]
Json = dict[str, Any]

OPERATIONS = ("create", "get", "list", "action", "delete", "types", "locations", "poll")
POWER_COMMANDS = ("poweron", "poweroff", "shutdown", "reboot", "reset")
# The action each request starts, as Hetzner names it in the answer and in GET /actions.
COMMAND_OF_ACTION = {"poweron": "start_server", "poweroff": "stop_server", "shutdown": "shutdown_server",
                     "reboot": "reboot_server", "reset": "reset_server", "rebuild": "rebuild_server",
                     "reset_password": "reset_password", "change_type": "change_server_type"}
NOT_STOPPED_MESSAGE = "server must be stopped before changing its type"
SMALLER_DISK_MESSAGE = "cannot downgrade the disk: the server's disk is larger than the new server type's"
SHUTDOWN_SEND_SECONDS = 1.0  # a shutdown action only sends the ACPI request
MAX_USER_DATA_BYTES = 32 * 1024
RATE_LIMIT_PER_HOUR = 3600
VAT = Decimal("1.19")
INCLUDED_TRAFFIC = 21_990_232_555_520  # 20 TB, as Hetzner's EU locations
LOCKED_MESSAGE = "The item you are trying to access is locked (there is already an Action running)"

_DEFAULT_ERRORS: dict[int, tuple[str, str]] = {
    400: ("invalid_input", "invalid input"),
    401: ("unauthorized", "unable to authenticate"),
    403: ("forbidden", "insufficient permissions for this request"),
    404: ("not_found", "the requested resource was not found"),
    409: ("conflict", "the resource has changed during the request, please retry"),
    412: ("resource_unavailable", "error during placement"),
    423: ("locked", LOCKED_MESSAGE),
    429: ("rate_limit_exceeded", "limit of 3600 requests per hour reached"),
    500: ("server_error", "an internal error occurred"),
    502: ("bad_gateway", "bad gateway"),
    503: ("unavailable", "the service is currently unavailable"),
    504: ("timeout", "the request timed out"),
}

# id, description, country, city, latitude, longitude (network zones come from the catalog)
_LOCATIONS: dict[str, tuple[int, str, str, str, float, float]] = {
    "fsn1": (1, "Falkenstein DC Park 1", "DE", "Falkenstein", 50.47612, 12.370071),
    "nbg1": (2, "Nuremberg DC Park 1", "DE", "Nuremberg", 49.452102, 11.076665),
    "hel1": (3, "Helsinki DC Park 1", "FI", "Helsinki", 60.169855, 24.938379),
    "ash": (4, "Ashburn, VA", "US", "Ashburn, VA", 39.045821, -77.487073),
    "hil": (5, "Hillsboro, OR", "US", "Hillsboro, OR", 45.54222, -122.951924),
    "sin": (6, "Singapore", "SG", "Singapore", 1.283333, 103.833333),
}
_TYPE_IDS = {"cpx21": 23, "cax11": 45, "cx22": 104, "cx32": 105, "cx42": 106}
_HOST_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_NAME = re.compile(rf"^(?=.{{1,253}}$){_HOST_LABEL}(\.{_HOST_LABEL})*$")  # RFC 1123 hostname
_LABEL_KEY = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
_SELECTOR_TERM = re.compile(r"^\s*(?P<not>!)?\s*(?P<key>[^\s!=,()]+)\s*(?:(?P<op>==|!=|=)\s*(?P<value>[^\s,()]*)"
                            r"|\s(?P<set>in|notin)\s*\((?P<values>[^()]*)\))?\s*$")


class ApiError(Exception):
    """An error answer of the API: `{"error": {"code", "message", "details"}}` with `status`."""

    def __init__(self, status: int, code: str, message: str, details: Json | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message, self.details = status, code, message, details or {}


@dataclass(frozen=True)
class Fault:
    """What happens to one call: an error answer (`status`), a delay, or a lost answer."""

    status: int | None = None
    code: str | None = None
    message: str | None = None
    details: Json | None = None
    json_body: bool = True
    retry_after: float | None = None
    before: float = 0.0  # seconds to sleep before answering
    lose_answer: bool = False  # perform the operation, then delay the answer by `after` or drop it
    after: float | None = None


@dataclass(frozen=True)
class Call:
    """One API request the fake received, with the status it answered."""

    operation: str
    method: str
    path: str
    status: int


@dataclass
class _Action:
    id: int
    command: str
    server_id: int
    started: datetime
    seconds: float
    during: str  # the server's status while this action runs

    def running(self, now: datetime) -> bool:
        return self.seconds > 0 and now < self.started + timedelta(seconds=self.seconds)

    def json(self, now: datetime) -> Json:
        running = self.running(now)
        progress = min(99, int((now - self.started).total_seconds() * 100 / self.seconds)) if running else 100
        return {"id": self.id, "command": self.command, "status": "running" if running else "success",
                "progress": max(0, progress), "started": self.started.isoformat(),
                "finished": None if running else (self.started + timedelta(seconds=self.seconds)).isoformat(),
                "resources": [{"id": self.server_id, "type": "server"}], "error": None}


@dataclass
class _Server:
    id: int
    name: str
    server_type: str
    location: str
    image: str
    labels: dict[str, str]
    user_data: str | None
    created: datetime
    on: bool  # where the server ends up once its actions have finished
    ssh_keys: list[str | int] = field(default_factory=list)  # as named in the create (names or ids)
    actions: list[_Action] = field(default_factory=list)
    guest_off_at: datetime | None = None  # an ACPI shutdown was sent: the guest is off from then on
    rebuilds: list[Json] = field(default_factory=list)  # {"image", "user_data"} of each rebuild
    password_resets: int = 0
    disk: int = 0  # GB: the type's at the create, grown only by a change_type with upgrade_disk
    type_changes: list[Json] = field(default_factory=list)  # {"server_type", "upgrade_disk"} of each

    def received(self) -> Json:
        return {"ssh_keys": list(self.ssh_keys), "user_data": self.user_data, "image": self.image,
                "rebuilds": [dict(r) for r in self.rebuilds], "password_resets": self.password_resets,
                "type_changes": [dict(c) for c in self.type_changes]}

    def running_actions(self, now: datetime) -> list[_Action]:
        return [a for a in self.actions if a.running(now)]

    def is_on(self, now: datetime) -> bool:
        return self.on and (self.guest_off_at is None or now < self.guest_off_at)

    def status(self, now: datetime) -> str:
        running = self.running_actions(now)
        if running:
            return running[0].during
        return "running" if self.is_on(now) else "off"


class HetznerFake:
    """The fake Hetzner Cloud API. Serve it with `app.sandbox.serve(fake)`; the API is under /v1."""

    def __init__(self, *, clock: Clock | None = None, boot_seconds: float = 8.0, action_seconds: float = 3.0,
                 token: str | None = None, demo: bool = False, catalog: Iterable[Offer] = HETZNER_OFFERS,
                 rate_limit: int = RATE_LIMIT_PER_HOUR) -> None:
        self._clock = clock or (lambda: datetime.now(UTC))
        self.boot_seconds = boot_seconds
        self.action_seconds = action_seconds
        self._initial_token = token
        self._demo = demo
        self._catalog = {(o.server_type, o.location): o for o in catalog}
        self._initial_rate_limit = rate_limit
        self._generation = 0
        self._lock = threading.RLock()
        self._routes = Map([Rule(path, methods=[method], endpoint=name) for method, path, name in _ROUTES])
        self.reset()

    # --- Controls -------------------------------------------------------------------------------------

    def reset(self) -> None:
        """Back to the state right after construction: no servers, calls, faults or price changes."""
        with self._lock:
            self._generation += 1  # requests still sleeping on an injected delay are answered 503, unrecorded
            self._token = self._initial_token
            self._rate_limit = self._initial_rate_limit
            self._offset = timedelta()
            self._servers: dict[int, _Server] = {}
            self._actions: dict[int, _Action] = {}
            self._ids = itertools.count(1)
            self._action_ids = itertools.count(1)
            self._capacity = Capacity()
            self._prices = {key: Decimal(o.price_minor) / 100 for key, o in self._catalog.items()}
            self._deprecated = {key for key, o in self._catalog.items() if o.deprecated}
            self._server_limit: int | None = None
            self.guest_ignores_shutdown = False
            self._faults: dict[str, deque[Fault]] = {op: deque() for op in OPERATIONS}
            self._calls: list[Call] = []
            self._bucket = (float(self._rate_limit), self._now())
            if self._demo:
                self.set_capacity(*DEMO_SOLD_OUT["hetzner"], 0)

    def set_capacity(self, server_type: str, location: str, count: int | None) -> None:
        """How many more servers of this type fit in this location; None for unlimited (the default)."""
        with self._lock:
            self._capacity.set(self._offered(server_type, location), count)

    def fail_next(self, operation: str, status: int, code: str | None = None, message: str | None = None, *,
                  times: int = 1, details: Json | None = None, retry_after: float | None = None,
                  json_body: bool = True, delay: float = 0.0) -> None:
        """Answer the next `times` calls of `operation` with this error, without doing anything.

        `code` and `message` default to Hetzner's for `status`; `json_body=False` answers like a proxy
        (no JSON, as a 502/504 from a load balancer); `retry_after` sets the Retry-After header.
        """
        default_code, default_message = _DEFAULT_ERRORS.get(status, ("server_error", "an error occurred"))
        self._add(operation, times, Fault(status, code or default_code, message or default_message, details,
                                          json_body, retry_after, before=delay))

    def slow_next(self, operation: str, seconds: float, *, times: int = 1) -> None:
        """Sleep `seconds` before answering the next `times` calls of `operation` (really sleeps)."""
        self._add(operation, times, Fault(before=seconds))

    def lose_next_answer(self, operation: str = "create", *, delay: float | None = None, times: int = 1) -> None:
        """Do the next `times` calls of `operation`, then answer only after `delay` s, or drop the connection."""
        self._add(operation, times, Fault(lose_answer=True, after=delay))

    def clear_faults(self) -> None:
        with self._lock:
            for queue in self._faults.values():
                queue.clear()

    def delete_out_of_band(self, server_id: int | str) -> None:
        """Delete a server as if someone did it in Hetzner's console; KeyError when there is none."""
        with self._lock:
            if not self._remove(int(server_id)):
                raise KeyError(server_id)

    def set_price(self, server_type: str, location: str, monthly_net: str | Decimal) -> None:
        """Set the monthly net price in EUR (a decimal string, e.g. "4.595")."""
        with self._lock:
            self._prices[self._offered(server_type, location)] = _decimal(monthly_net)

    def set_deprecated(self, server_type: str, location: str, deprecated: bool = True) -> None:
        with self._lock:
            key = self._offered(server_type, location)
            (self._deprecated.add if deprecated else self._deprecated.discard)(key)

    def set_server_limit(self, limit: int | None) -> None:
        """The project's server quota; creates beyond it answer 403 resource_limit_exceeded."""
        with self._lock:
            self._server_limit = limit

    def ignore_shutdown(self, ignore: bool = True) -> None:
        """Guests ignore ACPI from now on: a shutdown action succeeds and the server stays on (poweroff works)."""
        with self._lock:
            self.guest_ignores_shutdown = ignore

    def set_token(self, token: str | None) -> None:
        """Change (or revoke) the accepted token; None accepts any request."""
        with self._lock:
            self._token = token

    def set_rate_limit(self, per_hour: int) -> None:
        """Requests allowed per hour (Hetzner: 3600); the bucket starts full."""
        if per_hour < 1:
            raise ValueError("the rate limit must be at least 1 per hour")
        with self._lock:
            self._rate_limit = per_hour
            self._bucket = (float(per_hour), self._now())

    def advance(self, seconds: float) -> None:
        """Move the fake's time forward (on top of its clock)."""
        with self._lock:
            self._offset += timedelta(seconds=seconds)

    @property
    def calls(self) -> list[Call]:
        """Every API request received so far, oldest first."""
        with self._lock:
            return list(self._calls)

    def received(self, server_id: int | str) -> Json:
        """What the server was made with and what was done to it: ssh_keys, user_data, image, rebuilds
        ({"image", "user_data"} each) and password_resets. KeyError when there is no such server."""
        with self._lock:
            return self._servers[int(server_id)].received()

    def state(self) -> Json:
        """Servers, actions, capacity, quota and pending faults, as JSON-ready data."""
        with self._lock:
            now = self._now()
            return {
                "servers": [self._server_json(s, now) for s in self._servers.values()],
                "received": {str(s.id): s.received() for s in self._servers.values()},
                "actions": [a.json(now) for a in self._actions.values()],
                "capacity": [{"server_type": t, "location": loc, "count": n} for (t, loc), n in self._capacity.items()],
                "server_limit": self._server_limit,
                "pending_faults": {op: len(q) for op, q in self._faults.items() if q},
                "now": now.isoformat(),
            }

    # --- WSGI -----------------------------------------------------------------------------------------

    def __call__(self, environ: Json, start_response: Callable[..., Any]) -> Iterable[bytes]:
        return self.wsgi_app(environ, start_response)

    def wsgi_app(self, environ: Json, start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = Request(environ)
        try:
            endpoint, args = self._routes.bind_to_environ(environ).match()
        except HTTPException as exc:
            response = _error(exc.code or 404, "not_found" if exc.code == 404 else "invalid_input",
                              exc.description or "not found")
        else:
            if endpoint.startswith("control_"):
                response = self._control(request, endpoint, args)
            else:
                response = self._api(request, endpoint, args)
        return response(environ, start_response)

    def _api(self, request: Request, endpoint: str, args: Json) -> Response:
        operation = _OPERATION_OF[endpoint]
        with self._lock:
            fault, generation = self._pop_fault(operation), self._generation
        if fault.before:
            time.sleep(fault.before)
        with self._lock:
            if generation != self._generation:
                return _error(503, "unavailable", "the fake was reset while this request waited")
            now = self._now()
            remaining, reset_at = self._take_token(now)
            try:
                if fault.status is not None:
                    response = _fault_response(fault)
                else:
                    self._authorize(request)
                    if remaining < 0:
                        raise ApiError(429, *_DEFAULT_ERRORS[429])
                    body, status = getattr(self, f"_{endpoint}")(request, now, **args)
                    response = _json(body, status)
            except ApiError as exc:
                response = _error(exc.status, exc.code, exc.message, exc.details)
                if exc.status == 429:
                    response.headers["Retry-After"] = str(math.ceil(3600 / self._rate_limit))
            response.headers["RateLimit-Limit"] = str(self._rate_limit)
            response.headers["RateLimit-Remaining"] = str(max(0, remaining))
            response.headers["RateLimit-Reset"] = str(int(reset_at.timestamp()))
            self._calls.append(Call(operation, request.method, request.path, response.status_code))
        if fault.lose_answer:
            _lose(request, fault.after)
        return response

    # --- API handlers (the lock is held) --------------------------------------------------------------

    def _list_server_types(self, request: Request, now: datetime) -> tuple[Json, int]:
        names = [n for n in self._type_names() if request.args.get("name") in (None, n)]
        return _page(request, "server_types", [self._server_type_json(n) for n in names]), 200

    def _get_server_type(self, request: Request, now: datetime, id: int) -> tuple[Json, int]:
        name = next((n for n in self._type_names() if self._type_id(n) == id), None)
        if name is None:
            raise ApiError(404, "not_found", f"server_type with ID '{id}' not found")
        return {"server_type": self._server_type_json(name)}, 200

    def _list_locations(self, request: Request, now: datetime) -> tuple[Json, int]:
        names = [n for n in self._location_names() if request.args.get("name") in (None, n)]
        return _page(request, "locations", [self._location_json(n) for n in names]), 200

    def _get_location(self, request: Request, now: datetime, id: int) -> tuple[Json, int]:
        name = next((n for n in self._location_names() if _LOCATIONS[n][0] == id), None)
        if name is None:
            raise ApiError(404, "not_found", f"location with ID '{id}' not found")
        return {"location": self._location_json(name)}, 200

    def _list_servers(self, request: Request, now: datetime) -> tuple[Json, int]:
        servers = list(self._servers.values())
        if "name" in request.args:
            servers = [s for s in servers if s.name == request.args["name"]]
        if "label_selector" in request.args:
            matches = _selector(request.args["label_selector"])
            servers = [s for s in servers if matches(s.labels)]
        statuses = request.args.getlist("status")
        if statuses:
            servers = [s for s in servers if s.status(now) in statuses]
        return _page(request, "servers", [self._server_json(s, now) for s in servers]), 200

    def _get_server(self, request: Request, now: datetime, id: int) -> tuple[Json, int]:
        return {"server": self._server_json(self._server(id), now)}, 200

    def _create_server(self, request: Request, now: datetime) -> tuple[Json, int]:
        body = _body(request)
        name, type_name, location, image = self._validate_create(body)
        if any(s.name == name for s in self._servers.values()):
            raise ApiError(409, "uniqueness_error", "server name is already used",
                           {"fields": [{"name": "name", "messages": ["is already used"]}]})
        if self._server_limit is not None and len(self._servers) >= self._server_limit:
            raise ApiError(403, "resource_limit_exceeded", "server limit exceeded",
                           {"limits": [{"name": "server_limit"}]})
        location = location or self._first_available(type_name)
        if not self._available(type_name, location):
            raise ApiError(412, "resource_unavailable", "error during placement")
        self._capacity.take((type_name, location))
        start = body.get("start_after_create", True) is not False
        server = _Server(next(self._ids), name, type_name, location, image, dict(body.get("labels") or {}),
                         body.get("user_data"), now, on=start, ssh_keys=list(body.get("ssh_keys") or []),
                         disk=self._catalog[type_name, location].disk_gb)
        self._servers[server.id] = server
        action = self._act(server, "create_server", now, self.boot_seconds, "initializing")
        next_actions = [self._act(server, "start_server", now, self.boot_seconds, "initializing")] if start else []
        return {"server": self._server_json(server, now), "action": action.json(now),
                "next_actions": [a.json(now) for a in next_actions], "root_password": self._password(server)}, 201

    def _delete_server(self, request: Request, now: datetime, id: int) -> tuple[Json, int]:
        server = self._server(id)
        action = self._act(server, "delete_server", now, 0.0, "deleting")
        self._remove(id)
        return {"action": action.json(now)}, 200

    def _server_action(self, request: Request, now: datetime, id: int, command: str) -> tuple[Json, int]:
        server = self._server(id)
        if command not in (*POWER_COMMANDS, "rebuild", "reset_password", "change_type"):
            raise ApiError(404, "not_found", f"action '{command}' not found")
        if server.running_actions(now):
            raise ApiError(423, "locked", LOCKED_MESSAGE)
        if command == "rebuild":
            return self._rebuild(server, _body(request), now)
        if command == "change_type":
            return self._change_type(server, _body(request), now)
        if command == "reset_password":
            server.password_resets += 1
            action = self._act(server, COMMAND_OF_ACTION[command], now, self.action_seconds, server.status(now))
            return {"action": action.json(now), "root_password": _new_password()}, 201
        if command == "shutdown":
            return {"action": self._shutdown(server, now).json(now)}, 201
        on = command in ("poweron", "reboot", "reset")
        was_on = server.is_on(now)
        # Like Hetzner, asking for the state the server is in already succeeds at once.
        changes = command in ("reboot", "reset") or was_on != on
        during = "running" if changes and was_on and on else ("starting" if on else "stopping")
        action = self._act(server, COMMAND_OF_ACTION[command], now, self.action_seconds if changes else 0.0, during)
        server.on, server.guest_off_at = on, None
        return {"action": action.json(now)}, 201

    def _rebuild(self, server: _Server, body: Json, now: datetime) -> tuple[Json, int]:
        """The disk rewritten from `image`; `user_data`, when sent, replaces the server's. It comes back running."""
        image, user_data = body.get("image"), body.get("user_data")
        if not isinstance(image, str | int) or image in ("", 0):
            raise _invalid("image", "is required")
        if user_data is not None and len(str(user_data).encode()) > MAX_USER_DATA_BYTES:
            raise _invalid("user_data", "must not be longer than 32 KiB")
        server.image = str(image)
        if user_data is not None:
            server.user_data = str(user_data)
        server.rebuilds.append({"image": str(image), "user_data": user_data})
        action = self._act(server, COMMAND_OF_ACTION["rebuild"], now, self.boot_seconds, "rebuilding")
        server.on, server.guest_off_at = True, None
        return {"action": action.json(now), "root_password": self._password(server)}, 201

    def _change_type(self, server: _Server, body: Json, now: datetime) -> tuple[Json, int]:
        """Only on a stopped server (409 `server_not_stopped`); `upgrade_disk` grows the disk to the new type's,
        and a disk never shrinks (a type with a smaller disk than the server's is refused). It stays off."""
        type_ref, upgrade_disk = body.get("server_type"), body.get("upgrade_disk")
        type_name = next((n for n in self._type_names() if type_ref in (n, self._type_id(n))), None)
        if type_name is None:
            raise _invalid("server_type", "server type not found")
        if not isinstance(upgrade_disk, bool):
            raise _invalid("upgrade_disk", "is required and must be a boolean")
        if server.is_on(now):
            raise ApiError(409, "server_not_stopped", NOT_STOPPED_MESSAGE)
        if (type_name, server.location) not in self._catalog:
            raise ApiError(400, "invalid_input", "unsupported location for server type")
        new_disk = self._catalog[type_name, server.location].disk_gb
        if new_disk < server.disk:
            raise ApiError(400, "invalid_input", SMALLER_DISK_MESSAGE)
        if type_name != server.server_type:
            if not self._available(type_name, server.location):
                raise ApiError(412, "resource_unavailable", "error during placement")
            self._capacity.take((type_name, server.location))
            self._capacity.give_back((server.server_type, server.location))
        server.server_type = type_name
        if upgrade_disk:
            server.disk = new_disk
        server.type_changes.append({"server_type": type_name, "upgrade_disk": upgrade_disk})
        action = self._act(server, COMMAND_OF_ACTION["change_type"], now, self.action_seconds, "off")
        return {"action": action.json(now)}, 201

    @staticmethod
    def _password(server: _Server) -> str | None:
        """Hetzner sets (and answers) a root password whenever no SSH key object was named at the create."""
        return None if server.ssh_keys else _new_password()

    def _shutdown(self, server: _Server, now: datetime) -> _Action:
        """ACPI: the action only sends the request (it succeeds quickly, the server still running); the guest
        is off `action_seconds` later, or never when it ignores ACPI."""
        seconds = min(SHUTDOWN_SEND_SECONDS, self.action_seconds)
        if server.is_on(now) and not self.guest_ignores_shutdown and server.guest_off_at is None:
            server.guest_off_at = now + timedelta(seconds=self.action_seconds)
        return self._act(server, COMMAND_OF_ACTION["shutdown"], now, seconds, "running")

    def _get_action(self, request: Request, now: datetime, id: int, server_id: int | None = None) -> tuple[Json, int]:
        action = self._actions.get(id)
        if action is None or (server_id is not None and action.server_id != server_id):
            raise ApiError(404, "not_found", f"action with ID '{id}' not found")
        return {"action": action.json(now)}, 200

    def _list_server_actions(self, request: Request, now: datetime, server_id: int | None = None) -> tuple[Json, int]:
        if server_id is not None:
            self._server(server_id)
        actions = [a.json(now) for a in self._actions.values() if server_id in (None, a.server_id)]
        statuses = request.args.getlist("status")
        if statuses:
            actions = [a for a in actions if a["status"] in statuses]
        return _page(request, "actions", actions), 200

    # --- Helpers (the lock is held) -------------------------------------------------------------------

    def _now(self) -> datetime:
        now = self._clock()
        if now.tzinfo is None:
            raise ValueError("the fake's clock must return timezone-aware datetimes")
        return now + self._offset

    def _add(self, operation: str, times: int, fault: Fault) -> None:
        if operation not in OPERATIONS:
            raise ValueError(f"unknown operation {operation!r}; expected one of {list(OPERATIONS)}")
        with self._lock:
            self._faults[operation].extend([fault] * times)

    def _pop_fault(self, operation: str) -> Fault:
        with self._lock:
            queue = self._faults[operation]
            return queue.popleft() if queue else Fault()

    def _take_token(self, now: datetime) -> tuple[int, datetime]:
        """Hetzner's bucket: `rate_limit` per hour, refilled gradually. Returns (remaining or -1 when empty,
        when it is full again)."""
        tokens, since = self._bucket
        per_second = self._rate_limit / 3600
        tokens = min(self._rate_limit, tokens + max(0.0, (now - since).total_seconds()) * per_second)
        allowed = tokens >= 1
        if allowed:
            tokens -= 1
        self._bucket = (tokens, now)
        reset_at = now + timedelta(seconds=(self._rate_limit - tokens) / per_second)
        return (int(tokens) if allowed else -1), reset_at

    def _authorize(self, request: Request) -> None:
        if self._token is not None and request.headers.get("Authorization") != f"Bearer {self._token}":
            raise ApiError(401, "unauthorized", "unable to authenticate")

    def _type_names(self) -> list[str]:
        return list(dict.fromkeys(t for t, _ in self._catalog))

    def _type_id(self, name: str) -> int:
        return _TYPE_IDS.get(name, 1000 + self._type_names().index(name))

    def _location_names(self) -> list[str]:
        names = dict.fromkeys(loc for _, loc in self._catalog)
        return sorted(names, key=lambda n: _LOCATIONS.get(n, (99,))[0])

    def _zone(self, location: str) -> str:
        return next(o.network_zone for (_, loc), o in self._catalog.items() if loc == location)

    def _offered(self, server_type: str, location: str) -> tuple[str, str]:
        if (server_type, location) not in self._catalog:
            raise ValueError(f"{server_type} in {location} is not in the catalog")
        return server_type, location

    def _available(self, server_type: str, location: str) -> bool:
        key = (server_type, location)
        return self._catalog[key].available and self._capacity.allows(key)

    def _first_available(self, server_type: str) -> str:
        offered = [loc for loc in self._location_names() if (server_type, loc) in self._catalog]
        return next((loc for loc in offered if self._available(server_type, loc)), offered[0])

    def _validate_create(self, body: Json) -> tuple[str, str, str | None, str]:
        name, type_ref, image = body.get("name"), body.get("server_type"), body.get("image")
        location_ref = body.get("location")
        if not isinstance(name, str) or not _NAME.match(name):
            raise _invalid("name", "must be a valid hostname")
        type_name = next((n for n in self._type_names() if type_ref in (n, self._type_id(n))), None)
        if type_name is None:
            raise _invalid("server_type", "server type not found")
        if not isinstance(image, str | int) or image in ("", 0):
            raise _invalid("image", "is required")
        location = next((n for n in self._location_names() if location_ref in (n, _LOCATIONS.get(n, (0,))[0])), None)
        if location_ref is not None and location is None:
            raise _invalid("location", "location not found")
        if len(str(body.get("user_data") or "").encode()) > MAX_USER_DATA_BYTES:
            raise _invalid("user_data", "must not be longer than 32 KiB")
        keys = body.get("ssh_keys") or []
        if not isinstance(keys, list) or not all(isinstance(k, str | int) and k not in ("", 0) for k in keys):
            raise _invalid("ssh_keys", "must be a list of SSH key names or ids")
        labels = body.get("labels") or {}
        if not isinstance(labels, dict) or not all(
                isinstance(k, str) and isinstance(v, str) and _LABEL_KEY.match(k) and _LABEL_VALUE.match(v)
                for k, v in labels.items()):
            raise _invalid("labels", "invalid label")
        if location is not None and (type_name, location) not in self._catalog:
            raise ApiError(400, "invalid_input", "unsupported location for server type")
        return name, type_name, location, str(image)

    def _server(self, id: int) -> _Server:
        server = self._servers.get(id)
        if server is None:
            raise ApiError(404, "not_found", f"server with ID '{id}' not found", {"resource": "server", "id": id})
        return server

    def _act(self, server: _Server, command: str, now: datetime, seconds: float, during: str) -> _Action:
        action = _Action(next(self._action_ids), command, server.id, now, seconds, during)
        self._actions[action.id] = action
        server.actions.append(action)
        return action

    def _remove(self, id: int) -> bool:
        server = self._servers.pop(id, None)
        if server is None:
            return False
        self._capacity.give_back((server.server_type, server.location))
        return True

    # --- JSON shapes ----------------------------------------------------------------------------------

    def _location_json(self, name: str) -> Json:
        id, description, country, city, latitude, longitude = _LOCATIONS.get(name, (99, name, "", name, 0.0, 0.0))
        return {"id": id, "name": name, "description": description, "country": country, "city": city,
                "latitude": latitude, "longitude": longitude, "network_zone": self._zone(name)}

    def _server_type_json(self, name: str) -> Json:
        offers = [self._catalog[name, loc] for loc in self._location_names() if (name, loc) in self._catalog]
        first = offers[0]
        return {
            "id": self._type_id(name), "name": name, "description": name.upper(),
            "category": "cost_optimized" if first.architecture == "arm" else "shared",
            "cores": first.cores, "memory": first.memory_mb / 1024, "disk": first.disk_gb,
            "deprecated": False, "deprecation": None, "storage_type": "local", "cpu_type": "shared",
            "architecture": first.architecture,
            "prices": [_price_json(o.location, self._prices[name, o.location]) for o in offers],
            "locations": [{"id": self._location_json(o.location)["id"], "name": o.location,
                           "deprecation": _deprecation() if (name, o.location) in self._deprecated else None,
                           "available": self._available(name, o.location), "recommended": o.recommended}
                          for o in offers],
        }

    def _server_json(self, server: _Server, now: datetime) -> Json:
        n = server.id
        type_json = self._server_type_json(server.server_type)
        return {
            "id": n, "name": server.name, "status": server.status(now), "created": server.created.isoformat(),
            "public_net": {
                "ipv4": {"id": 100_000 + n, "ip": f"203.0.113.{(n - 1) % 254 + 1}", "blocked": False,
                         "dns_ptr": f"static.{(n - 1) % 254 + 1}.113.0.203.clients.your-server.de"},
                "ipv6": {"id": 200_000 + n, "ip": f"2001:db8:{(n >> 16) & 0xFFFF:x}:{n & 0xFFFF:x}::/64",
                         "blocked": False, "dns_ptr": []},
                "floating_ips": [], "firewalls": [],
            },
            "private_net": [],
            "server_type": type_json,
            "location": self._location_json(server.location),
            "image": {"id": 161547269, "type": "system", "status": "available", "name": server.image,
                      "description": server.image, "image_size": None, "disk_size": 5,
                      "created": "2024-04-25T00:00:00+00:00", "created_from": None, "bound_to": None,
                      "os_flavor": server.image.split("-")[0], "os_version": None, "rapid_deploy": True,
                      "protection": {"delete": False}, "deprecated": None, "labels": {},
                      "architecture": type_json["architecture"]},
            "iso": None, "rescue_enabled": False, "locked": False, "backup_window": None,
            "outgoing_traffic": 0, "ingoing_traffic": 0, "included_traffic": INCLUDED_TRAFFIC,
            "protection": {"delete": False, "rebuild": False}, "labels": dict(server.labels),
            "volumes": [], "load_balancers": [], "primary_disk_size": server.disk, "placement_group": None,
        }

    # --- /_control ------------------------------------------------------------------------------------

    def _control(self, request: Request, endpoint: str, args: Json) -> Response:
        body = request.get_json(silent=True) or {}
        try:
            result = _CONTROLS[endpoint](self, body, **args)
        except (KeyError, ValueError, TypeError) as exc:
            return _json({"error": f"{type(exc).__name__}: {exc}"}, 400)
        return _json(result if result is not None else {"ok": True}, 200)


# --- Control endpoints: body (JSON) -> result -------------------------------------------------------

def _control_fault(fake: HetznerFake, body: Json) -> None:
    kind, operation, times = body.get("kind", "error"), body["operation"], int(body.get("times", 1))
    if kind == "error":
        fake.fail_next(operation, int(body["status"]), body.get("code"), body.get("message"), times=times,
                       details=body.get("details"), retry_after=body.get("retry_after"),
                       json_body=bool(body.get("json_body", True)), delay=float(body.get("delay", 0.0)))
    elif kind == "slow":
        fake.slow_next(operation, float(body["seconds"]), times=times)
    elif kind == "lose_answer":
        delay = body.get("delay")
        fake.lose_next_answer(operation, delay=None if delay is None else float(delay), times=times)
    else:
        raise ValueError(f"unknown fault kind {kind!r}; expected error, slow or lose_answer")


_CONTROLS: dict[str, Callable[..., Any]] = {
    "control_state": lambda fake, body: fake.state(),
    "control_calls": lambda fake, body: {"calls": [asdict(c) for c in fake.calls]},
    "control_reset": lambda fake, body: fake.reset(),
    "control_capacity": lambda fake, body: fake.set_capacity(body["server_type"], body["location"], body["count"]),
    "control_fault": _control_fault,
    "control_clear_faults": lambda fake, body: fake.clear_faults(),
    "control_delete_server": lambda fake, body, id: fake.delete_out_of_band(id),
    "control_price": lambda fake, body: fake.set_price(body["server_type"], body["location"], body["monthly_net"]),
    "control_deprecation": lambda fake, body: fake.set_deprecated(body["server_type"], body["location"],
                                                                  bool(body.get("deprecated", True))),
    "control_server_limit": lambda fake, body: fake.set_server_limit(body["limit"]),
    "control_token": lambda fake, body: fake.set_token(body["token"]),
    "control_ignore_shutdown": lambda fake, body: fake.ignore_shutdown(bool(body.get("ignore", True))),
    "control_rate_limit": lambda fake, body: fake.set_rate_limit(int(body["per_hour"])),
    "control_advance": lambda fake, body: fake.advance(float(body["seconds"])),
}

# method, path, endpoint (API endpoints name a HetznerFake method with a leading underscore)
_ROUTES = [
    ("GET", "/v1/server_types", "list_server_types"),
    ("GET", "/v1/server_types/<int:id>", "get_server_type"),
    ("GET", "/v1/locations", "list_locations"),
    ("GET", "/v1/locations/<int:id>", "get_location"),
    ("GET", "/v1/servers", "list_servers"),
    ("POST", "/v1/servers", "create_server"),
    ("GET", "/v1/servers/<int:id>", "get_server"),
    ("DELETE", "/v1/servers/<int:id>", "delete_server"),
    ("POST", "/v1/servers/<int:id>/actions/<command>", "server_action"),
    ("GET", "/v1/servers/<int:server_id>/actions", "list_server_actions"),
    ("GET", "/v1/servers/<int:server_id>/actions/<int:id>", "get_action"),
    ("GET", "/v1/servers/actions", "list_server_actions"),
    ("GET", "/v1/servers/actions/<int:id>", "get_action"),
    ("GET", "/v1/actions/<int:id>", "get_action"),
    ("GET", "/_control/state", "control_state"),
    ("GET", "/_control/calls", "control_calls"),
    ("POST", "/_control/reset", "control_reset"),
    ("POST", "/_control/capacity", "control_capacity"),
    ("POST", "/_control/faults", "control_fault"),
    ("DELETE", "/_control/faults", "control_clear_faults"),
    ("DELETE", "/_control/servers/<int:id>", "control_delete_server"),
    ("POST", "/_control/prices", "control_price"),
    ("POST", "/_control/deprecation", "control_deprecation"),
    ("POST", "/_control/server_limit", "control_server_limit"),
    ("POST", "/_control/token", "control_token"),
    ("POST", "/_control/ignore_shutdown", "control_ignore_shutdown"),
    ("POST", "/_control/rate_limit", "control_rate_limit"),
    ("POST", "/_control/advance", "control_advance"),
]
_OPERATION_OF = {
    "list_server_types": "types", "get_server_type": "types", "list_locations": "locations",
    "get_location": "locations", "list_servers": "list", "create_server": "create", "get_server": "get",
    "delete_server": "delete", "server_action": "action", "list_server_actions": "poll", "get_action": "poll",
}


# --- Small pieces -----------------------------------------------------------------------------------

def _json(body: Json, status: int) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json")


def _error(status: int, code: str, message: str, details: Json | None = None) -> Response:
    return _json({"error": {"code": code, "message": message, "details": details or {}}}, status)


def _invalid(field_name: str, message: str) -> ApiError:
    return ApiError(400, "invalid_input", f"invalid input in field '{field_name}'",
                    {"fields": [{"name": field_name, "messages": [message]}]})


def _new_password() -> str:
    return secrets.token_urlsafe(15)


def _fault_response(fault: Fault) -> Response:
    status = fault.status or 500
    if fault.json_body:
        response = _error(status, fault.code or "server_error", fault.message or "error", fault.details)
    else:
        response = Response(f"<html><body><h1>{status} Error</h1></body></html>", status=status, mimetype="text/html")
    if fault.retry_after is not None:
        response.headers["Retry-After"] = str(int(fault.retry_after))
    return response


def _lose(request: Request, delay: float | None) -> None:
    """After the operation was done: answer too late for the client, or hang up without answering."""
    if delay is not None:
        time.sleep(delay)
        return
    sock = request.environ.get("werkzeug.socket")
    if sock is None:
        raise RuntimeError("dropping the connection needs werkzeug's server (serve())")
    sock.shutdown(socket.SHUT_RDWR)
    raise ConnectionAbortedError("answer dropped by fault injection")  # werkzeug treats it as a dropped client


def _body(request: Request) -> Json:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError(400, "json_error", "the request body could not be parsed as JSON")
    return body


def _page(request: Request, key: str, items: list[Json]) -> Json:
    try:
        page = max(1, int(request.args.get("page", 1)))
        per_page = min(50, max(1, int(request.args.get("per_page", 25))))
    except ValueError as exc:
        raise ApiError(400, "invalid_input", "invalid pagination") from exc
    last = max(1, -(-len(items) // per_page))
    return {key: items[(page - 1) * per_page: page * per_page], "meta": {"pagination": {
        "page": page, "per_page": per_page, "previous_page": page - 1 if page > 1 else None,
        "next_page": page + 1 if page < last else None, "last_page": last, "total_entries": len(items)}}}


def _price_json(location: str, monthly_net: Decimal) -> Json:
    hourly = monthly_net / 730
    return {"location": location,
            "price_hourly": {"net": f"{hourly:.10f}", "gross": f"{hourly * VAT:.10f}"},
            "price_monthly": {"net": f"{monthly_net:.10f}", "gross": f"{monthly_net * VAT:.10f}"},
            "included_traffic": INCLUDED_TRAFFIC,
            "price_per_tb_traffic": {"net": "1.0000000000", "gross": "1.1900000000"}}


def _deprecation() -> Json:
    return {"announced": "2025-09-24T00:00:00+00:00", "unavailable_after": "2026-12-31T00:00:00+00:00"}


def _decimal(value: str | Decimal) -> Decimal:
    try:
        return Decimal(value)
    except InvalidOperation as exc:
        raise ValueError(f"not a decimal: {value!r}") from exc


def _selector(selector: str) -> Callable[[dict[str, str]], bool]:
    """Hetzner's label selector: `k=v`, `k==v`, `k!=v`, `k`, `!k`, `k in (a,b)`, `k notin (a,b)`, comma = and."""
    terms = [t for t in re.split(r",(?![^()]*\))", selector) if t.strip()]
    checks: list[Callable[[dict[str, str]], bool]] = []
    for term in terms:
        m = _SELECTOR_TERM.match(term)
        if m is None:
            raise ApiError(400, "invalid_input", f"invalid label_selector: {term!r}")
        checks.append(_check(m.group("key"), m.group("not") is not None, m.group("op") or m.group("set"),
                             m.group("value") or "", [v.strip() for v in (m.group("values") or "").split(",")]))
    return lambda labels: all(check(labels) for check in checks)


def _check(key: str, negated: bool, op: str | None, value: str, values: list[str]) -> Callable[[dict[str, str]], bool]:
    if op in ("=", "=="):
        return lambda labels: labels.get(key) == value
    if op == "!=":
        return lambda labels: labels.get(key) != value
    if op == "in":
        return lambda labels: labels.get(key) in values
    if op == "notin":
        return lambda labels: labels.get(key) not in values
    return lambda labels: (key in labels) != negated


def main() -> None:  # pragma: no cover - a convenience for running the demo by hand
    """`python -m app.sandbox.hetzner_api [--port 8081] [--token T]`: the demo fake on loopback."""
    import argparse

    from werkzeug.serving import run_simple

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--token", default=None)
    args = parser.parse_args()
    run_simple("127.0.0.1", args.port, HetznerFake(token=args.token, demo=True), threaded=True)


if __name__ == "__main__":  # pragma: no cover
    main()
