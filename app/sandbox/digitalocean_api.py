"""A stateful fake of the DigitalOcean API v2: the demo and the adapter's tests drive python-digitalocean at it.

`DigitalOceanFake` is a WSGI app (serve it with `app.sandbox.serve`). It answers the paths the adapter
uses, under `/v2`, with or without a trailing slash, in the shapes of the real API:

    GET    /v2/sizes                          GET  /v2/regions
    POST   /v2/droplets             202       GET  /v2/droplets?tag_name=&page=&per_page=
    GET    /v2/droplets/{id}                  DELETE /v2/droplets/{id}   204
    POST   /v2/droplets/{id}/actions 201      GET  /v2/droplets/{id}/actions[/{action_id}]
    GET    /v2/actions/{action_id}

Behaviour copied from the real API and from the sandbox cloud: droplets are `new` for `boot_seconds` (no
addresses yet), then `active`; power actions are `in-progress` for `action_seconds` and refuse a second one
with 422 "Droplet already has a pending event."; asking for the power state a droplet is already in completes
at once; a graceful `shutdown` runs like `power_off` (the droplet stays `active` until it is `off`) or, while
guests ignore ACPI (`ignore_shutdown`), ends `errored` with the droplet still on. A `rebuild` action
(`{"type": "rebuild", "image": slug or id}`) runs for `boot_seconds`, locks the droplet like any action and
leaves it on with the new image and its own user data (DigitalOcean's rebuild takes no new user data). A
`resize` (`{"type": "resize", "size": slug, "disk": "true"?}`) is refused while the droplet is on ("Droplet is
currently on. Please power it off to run this event.") and when the new size's disk is smaller than the
droplet's disk (which only a resize with `disk` grows); it runs for `action_seconds` and leaves the droplet off.
Sizes list `price_monthly` and `price_hourly` as JSON numbers (USD), as DigitalOcean does. The
create records `ssh_keys` and `user_data`; a droplet made without `ssh_keys` is marked
`root_password_emailed`, as DigitalOcean would email a root password to the account's owner. A size can be placed in a
region only if the region is available, the size is available and the size is in `region.sizes`; capacity per
(size, region) hides a sold-out size from `region.sizes`. Duplicate names are allowed, as at DigitalOcean.
Errors are `{"id", "message", "request_id"}`. Time comes from `clock` so tests move it instead of sleeping;
only injected slow answers really sleep.

Every request to `/v2` is recorded in `received` (method, path without trailing slash, query, JSON body);
`droplet_received(id)` gives what a droplet was made with and the images it was rebuilt from.
The controls are Python methods and JSON endpoints under `/_control` (not recorded, no token needed):

    GET  /_control/state                      POST /_control/reset
    GET  /_control/requests                   DELETE /_control/requests
    POST /_control/capacity      {"size", "region", "count": int | null}
    POST /_control/availability  {"region" | "size", "available": bool}
    POST /_control/droplet_limit {"limit": int | null}
    POST /_control/token         {"token": str | null}
    POST /_control/ignore_shutdown {"ignore"?: bool}  (guests ignore ACPI: a shutdown errors, the droplet stays on)
    POST /_control/fail          {"operation", "status", "id"?, "message"?, "retry_after"?, "times"?, "body"?,
                                  "after"?: calls to let through first}
    POST /_control/slow          {"operation", "seconds", "times"?}
    POST /_control/lose_answer   {"operation"?: "create", "delay"?: float | null (null drops the connection),
                                  "times"?}
    DELETE /_control/droplets/{id}            (deleted out of band, as in the console)

Operations for faults: sizes, regions, create, list, get, delete, action, get_action.

Run `python -m app.sandbox.digitalocean_api --port 8765` for a demo instance (s-4vcpu-8gb sold out in
sgp1, as `DEMO_SOLD_OUT`); point the adapter at http://127.0.0.1:8765/v2/.
"""

from __future__ import annotations

import argparse
import hmac
import json
import re
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from app.domain.geography import LOCATION_NAMES
from app.sandbox import serve
from app.sandbox.capacity import Capacity
from app.sandbox.cloud import DEMO_SOLD_OUT, DIGITALOCEAN_OFFERS

Clock = Callable[[], datetime]
JSON = dict[str, Any]

OPERATIONS = frozenset({"sizes", "regions", "create", "list", "get", "delete", "action", "get_action"})
IMAGES = frozenset({"ubuntu-24-04-x64", "ubuntu-22-04-x64", "debian-12-x64", "rocky-9-x64", "fedora-40-x64"})
MAX_USER_DATA_BYTES = 64 * 1024  # DigitalOcean's limit (the portal sends at most 32 KiB)
HOURS_PER_MONTH = 672  # DigitalOcean bills at most 4 weeks of hours per month
POWER_TARGET = {"power_on": True, "power_off": False, "shutdown": False, "reboot": True, "power_cycle": True}

PENDING_EVENT = "Droplet already has a pending event."
DROPLET_ON = "Droplet is currently on. Please power it off to run this event."
SMALLER_DISK = "The Droplet's disk cannot shrink: choose a size whose disk is at least the current one."
INVALID_SIZE = "You specified an invalid size for Droplet resize."
SIZE_UNAVAILABLE = "Size is not available in this region."
REGION_UNAVAILABLE = "Region is not available"
DROPLET_LIMIT = "creating this/these droplet(s) will exceed your droplet limit"
_HOSTNAME = re.compile(r"[A-Za-z0-9.-]{1,255}")
_TAG = re.compile(r"[A-Za-z0-9:_-]{1,255}")

_ERROR_IDS = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
              405: "method_not_allowed", 422: "unprocessable_entity", 429: "too_many_requests",
              500: "server_error", 502: "bad_gateway", 503: "service_unavailable", 504: "gateway_timeout"}
_ERROR_MESSAGES = {401: "Unable to authenticate you", 403: "You do not have access for the attempted action.",
                   404: "The resource you were accessing could not be found.", 429: "API Rate limit exceeded.",
                   500: "Server was unable to give you a response.", 503: "Service is temporarily unavailable."}


@dataclass(frozen=True)
class ReceivedRequest:
    method: str
    path: str  # without the trailing slash
    query: dict[str, str]
    body: Any = None


@dataclass(frozen=True)
class Fault:
    """What happens to the next call of an operation: `fail` answers an error and does nothing, `slow`
    sleeps before handling it, `lose` handles it and then holds the answer `delay` seconds or, when `delay`
    is None, drops the connection without answering; `pass` lets it through."""

    kind: str
    status: int = 500
    error_id: str | None = None
    message: str | None = None
    retry_after: float | None = None
    body: str | None = None  # a raw, non-JSON body (e.g. a gateway's HTML page)
    delay: float | None = None


@dataclass(frozen=True)
class _Size:
    slug: str
    vcpus: int
    memory: int
    disk: int
    price_cents: int
    regions: tuple[str, ...]


@dataclass(frozen=True)
class _Action:
    id: int
    type: str
    droplet_id: int
    region: str
    started_at: datetime
    seconds: float
    errored: bool = False  # how it ends: a shutdown the guest ignored errors

    def running(self, now: datetime) -> bool:
        return self.seconds > 0 and now < self.started_at + timedelta(seconds=self.seconds)


@dataclass
class _Droplet:
    id: int
    number: int  # for the documentation addresses
    name: str
    size: str
    region: str
    image: str
    tags: list[str]
    ipv6: bool
    user_data: str | None
    created_at: datetime
    action: _Action
    on: bool = True  # where the power ends up once `action` has finished
    was_on: bool = True  # the power while `action` runs
    ssh_keys: tuple[Any, ...] = ()  # ids or fingerprints, as the create named them
    rebuilds: tuple[str, ...] = ()  # the image of each rebuild
    resizes: tuple[JSON, ...] = ()  # {"size", "disk"} of each resize
    disk: int = 0  # GB: the size's at the create, grown only by a resize with `disk`

    def received(self) -> JSON:
        return {"ssh_keys": list(self.ssh_keys), "user_data": self.user_data, "image": self.image,
                "rebuilds": list(self.rebuilds), "resizes": [dict(r) for r in self.resizes],
                "root_password_emailed": not self.ssh_keys}

    def status(self, now: datetime) -> str:
        if self.action.running(now):
            if self.action.type == "create":
                return "new"
            return "active" if self.was_on else "off"
        return "active" if self.on else "off"


class FakeError(Exception):
    """An error answer: status, DigitalOcean error id and message."""

    def __init__(self, status: int, message: str | None = None, error_id: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.error_id = error_id or _ERROR_IDS.get(status, "error")
        self.message = message or _ERROR_MESSAGES.get(status, "The request failed.")


def _catalog() -> tuple[dict[str, _Size], list[str]]:
    """The sandbox's DigitalOcean catalog as API sizes: same slugs, regions and prices."""
    regions = list(dict.fromkeys(offer.location for offer in DIGITALOCEAN_OFFERS))
    sizes: dict[str, _Size] = {}
    for offer in DIGITALOCEAN_OFFERS:
        known = sizes.get(offer.server_type)
        offered_in = (*known.regions, offer.location) if known else (offer.location,)
        sizes[offer.server_type] = _Size(offer.server_type, offer.cores, offer.memory_mb, offer.disk_gb,
                                         offer.price_minor, offered_in)
    return sizes, regions


def _region_name(slug: str) -> str:
    city = LOCATION_NAMES.get(slug, slug).split(",")[0]
    return f"{city} {slug[-1]}" if slug[-1:].isdigit() else city


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _wall_clock() -> datetime:
    return datetime.now(UTC)


def _json(status: int, payload: JSON | None, headers: dict[str, str] | None = None) -> Response:
    body = "" if payload is None else json.dumps(payload)
    mimetype = None if payload is None else "application/json"
    return Response(body, status=status, mimetype=mimetype, headers=headers)


def _error_response(error: FakeError, headers: dict[str, str] | None = None) -> Response:
    payload = {"id": error.error_id, "message": error.message, "request_id": str(uuid.uuid4())}
    return _json(error.status, payload, headers)


_API = Map([
    Rule("/v2/sizes", methods=["GET"], endpoint="sizes"),
    Rule("/v2/regions", methods=["GET"], endpoint="regions"),
    Rule("/v2/droplets", methods=["GET"], endpoint="list"),
    Rule("/v2/droplets", methods=["POST"], endpoint="create"),
    Rule("/v2/droplets/<int:droplet_id>", methods=["GET"], endpoint="get"),
    Rule("/v2/droplets/<int:droplet_id>", methods=["DELETE"], endpoint="delete"),
    Rule("/v2/droplets/<int:droplet_id>/actions", methods=["POST"], endpoint="action"),
    Rule("/v2/droplets/<int:droplet_id>/actions", methods=["GET"], endpoint="list_actions"),
    Rule("/v2/droplets/<int:droplet_id>/actions/<int:action_id>", methods=["GET"], endpoint="droplet_action"),
    Rule("/v2/actions/<int:action_id>", methods=["GET"], endpoint="get_action"),
], strict_slashes=False)
_OPERATION = {"list_actions": "get_action", "droplet_action": "get_action"}

_CONTROL = Map([
    Rule("/_control/state", methods=["GET"], endpoint="state"),
    Rule("/_control/reset", methods=["POST"], endpoint="reset"),
    Rule("/_control/requests", methods=["GET"], endpoint="requests"),
    Rule("/_control/requests", methods=["DELETE"], endpoint="clear_requests"),
    Rule("/_control/capacity", methods=["POST"], endpoint="capacity"),
    Rule("/_control/availability", methods=["POST"], endpoint="availability"),
    Rule("/_control/droplet_limit", methods=["POST"], endpoint="droplet_limit"),
    Rule("/_control/token", methods=["POST"], endpoint="token"),
    Rule("/_control/ignore_shutdown", methods=["POST"], endpoint="ignore_shutdown"),
    Rule("/_control/fail", methods=["POST"], endpoint="fail"),
    Rule("/_control/slow", methods=["POST"], endpoint="slow"),
    Rule("/_control/lose_answer", methods=["POST"], endpoint="lose_answer"),
    Rule("/_control/droplets/<int:droplet_id>", methods=["DELETE"], endpoint="delete_droplet"),
], strict_slashes=False)


class DigitalOceanFake:
    """The DigitalOcean API v2 in memory, thread-safe. See the module docstring for paths and controls.

    `clock` returns timezone-aware UTC datetimes (default: the wall clock). With `token`, requests without
    `Authorization: Bearer <token>` answer 401. `demo=True` starts with `DEMO_SOLD_OUT` sold out (and `reset`
    keeps it). `max_per_page` caps `per_page` like the real API's 200; tests lower it to exercise pagination.
    """

    def __init__(self, *, clock: Clock | None = None, boot_seconds: float = 8.0, action_seconds: float = 3.0,
                 token: str | None = None, demo: bool = False, max_per_page: int = 200) -> None:
        self._clock = clock or _wall_clock
        self._boot_seconds = boot_seconds
        self._action_seconds = action_seconds
        self._initial_token = token
        self._demo = demo
        self._max_per_page = max_per_page
        self._sizes, self._regions = _catalog()
        self._lock = threading.Lock()
        self._last_droplet_id = 300_000_000
        self._last_action_id = 2_000_000_000
        self._received: list[ReceivedRequest] = []
        self.reset()

    # --- Controls --------------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget droplets, actions, faults, recorded requests and settings (ids keep increasing)."""
        with self._lock:
            self._token = self._initial_token
            self._droplets: dict[int, _Droplet] = {}
            self._actions: dict[int, _Action] = {}
            self._capacity = Capacity()
            self._region_available = dict.fromkeys(self._regions, True)
            self._size_available = dict.fromkeys(self._sizes, True)
            self._droplet_limit: int | None = None
            self._guest_ignores_shutdown = False
            self._faults: dict[str, deque[Fault]] = {op: deque() for op in OPERATIONS}
            self._received.clear()
            if self._demo:
                self._capacity.set(DEMO_SOLD_OUT["digitalocean"], 0)

    def set_capacity(self, size: str, region: str, count: int | None) -> None:
        """How many more droplets of `size` fit in `region`; None for unlimited (the default). At 0 the size
        leaves `region.sizes`; creating consumes one, deleting frees one."""
        with self._lock:
            self._capacity.set(self._offered(size, region), count)

    def capacity(self, size: str, region: str) -> int | None:
        with self._lock:
            return self._capacity.get(self._offered(size, region))

    def set_region_available(self, region: str, available: bool) -> None:
        with self._lock:
            if region not in self._region_available:
                raise ValueError(f"unknown region {region!r}")
            self._region_available[region] = available

    def set_size_available(self, size: str, available: bool) -> None:
        with self._lock:
            if size not in self._size_available:
                raise ValueError(f"unknown size {size!r}")
            self._size_available[size] = available

    def set_droplet_limit(self, limit: int | None) -> None:
        """The account's droplet limit (a quota); None for none. Creates beyond it answer 422."""
        with self._lock:
            self._droplet_limit = limit

    def ignore_shutdown(self, ignore: bool = True) -> None:
        """Guests ignore ACPI from now on: a `shutdown` runs, then errors, and the droplet stays on."""
        with self._lock:
            self._guest_ignores_shutdown = ignore

    def set_token(self, token: str | None) -> None:
        """Accept only this token from now on (a revoked token answers 401); None accepts any."""
        with self._lock:
            self._token = token

    def fail_next(self, operation: str, status: int = 500, *, error_id: str | None = None,
                  message: str | None = None, retry_after: float | None = None, times: int = 1,
                  body: str | None = None, after: int = 0) -> None:
        """After letting `after` calls through, the next `times` calls of `operation` answer `status` with a
        DigitalOcean error (or the raw `body`) and change nothing. `retry_after` sets Retry-After."""
        if not 400 <= status <= 599:
            raise ValueError("a failure needs a 4xx or 5xx status")
        self._queue(operation, Fault("pass"), after)
        self._queue(operation, Fault("fail", status, error_id, message, retry_after, body), times)

    def slow_next(self, operation: str, seconds: float, *, times: int = 1) -> None:
        """The next `times` calls of `operation` sleep `seconds` (really) before being handled."""
        self._queue(operation, Fault("slow", delay=seconds), times)

    def lose_next_answer(self, operation: str = "create", *, delay: float | None = None, times: int = 1) -> None:
        """The next `times` calls of `operation` are carried out, then the answer is held for `delay` seconds
        (longer than the client's timeout) or, with `delay=None`, the connection is dropped unanswered."""
        self._queue(operation, Fault("lose", delay=delay), times)

    def delete_out_of_band(self, droplet_id: int | str) -> None:
        """Delete a droplet as if in the console (not recorded); KeyError when there is none."""
        with self._lock:
            if self._remove(int(droplet_id)) is None:
                raise KeyError(droplet_id)

    @property
    def received(self) -> list[ReceivedRequest]:
        """Every request to /v2 so far, oldest first."""
        with self._lock:
            return list(self._received)

    def clear_received(self) -> None:
        with self._lock:
            self._received.clear()

    def droplet_received(self, droplet_id: int | str) -> JSON:
        """What the droplet was made with (ssh_keys, user_data), its image, the images of its rebuilds, and
        whether DigitalOcean would have emailed a root password (no ssh_keys). KeyError if there is none."""
        with self._lock:
            return self._droplets[int(droplet_id)].received()

    def state(self) -> JSON:
        """A JSON snapshot: droplets, actions, capacity, availability, limit and queued faults."""
        with self._lock:
            now = self._now()
            return {
                "droplets": [self._droplet_json(d, now) for d in self._droplets.values()],
                "actions": [self._action_json(a, now) for a in self._actions.values()],
                "capacity": [{"size": s, "region": r, "count": n} for (s, r), n in self._capacity.items()],
                "unavailable_regions": [r for r, ok in self._region_available.items() if not ok],
                "unavailable_sizes": [s for s, ok in self._size_available.items() if not ok],
                "droplet_limit": self._droplet_limit,
                "faults": {op: len(queue) for op, queue in self._faults.items() if queue},
                "requests": len(self._received),
            }

    # --- WSGI ------------------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        request = Request(environ)
        path = request.path.rstrip("/") or "/"
        handle = self._control if path.startswith("/_control") else self._api
        return handle(request, path)(environ, start_response)

    def _api(self, request: Request, path: str) -> Response:
        body = self._record(request, path)
        try:
            if not self._authorized(request):
                raise FakeError(401)
            endpoint, args = _API.bind("fake").match(path, request.method)
        except (NotFound, MethodNotAllowed) as error:
            return _error_response(FakeError(error.code or 404))
        except FakeError as error:
            return _error_response(error)
        operation = _OPERATION.get(endpoint, endpoint)
        fault = self._take_fault(operation)
        if fault is not None and fault.kind == "fail":
            return self._fault_response(fault)
        if fault is not None and fault.kind == "slow":
            time.sleep(fault.delay or 0.0)
        try:
            response = getattr(self, f"_handle_{endpoint}")(request, body, **args)
        except FakeError as error:
            response = _error_response(error)
        if fault is not None and fault.kind == "lose":
            self._lose(request, fault)
        return response

    def _record(self, request: Request, path: str) -> Any:
        body = request.get_json(silent=True) if request.content_length else None
        with self._lock:
            self._received.append(ReceivedRequest(request.method, path, dict(request.args.items()), body))
        return body

    def _authorized(self, request: Request) -> bool:
        with self._lock:
            token = self._token
        if token is None:
            return True
        return hmac.compare_digest(request.headers.get("Authorization", ""), f"Bearer {token}")

    def _queue(self, operation: str, fault: Fault, times: int) -> None:
        if operation not in OPERATIONS:
            raise ValueError(f"unknown operation {operation!r}; expected one of {sorted(OPERATIONS)}")
        with self._lock:
            self._faults[operation].extend([fault] * times)

    def _take_fault(self, operation: str) -> Fault | None:
        with self._lock:
            queue = self._faults[operation]
            return queue.popleft() if queue else None

    def _fault_response(self, fault: Fault) -> Response:
        headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else {}
        if fault.body is not None:
            return Response(fault.body, status=fault.status, mimetype="text/html", headers=headers)
        return _error_response(FakeError(fault.status, fault.message, fault.error_id), headers)

    @staticmethod
    def _lose(request: Request, fault: Fault) -> None:
        if fault.delay is not None:
            time.sleep(fault.delay)
            return
        connection = request.environ.get("werkzeug.socket")
        if connection is not None:
            connection.shutdown(socket.SHUT_RDWR)  # the client sees the connection closed without an answer

    # --- API handlers ----------------------------------------------------------------------------

    def _handle_sizes(self, request: Request, body: Any) -> Response:
        with self._lock:
            sizes = [self._size_json(size) for size in self._sizes.values()]
        return _json(200, {"sizes": sizes, "links": {}, "meta": {"total": len(sizes)}})

    def _handle_regions(self, request: Request, body: Any) -> Response:
        with self._lock:
            regions = [self._region_json(slug) for slug in self._regions]
        return _json(200, {"regions": regions, "links": {}, "meta": {"total": len(regions)}})

    def _handle_create(self, request: Request, body: Any) -> Response:
        if not isinstance(body, dict):
            raise FakeError(400, "The request body must be a JSON object.")
        with self._lock:
            now = self._now()
            droplet = self._place(body, now)
            payload = {"droplet": self._droplet_json(droplet, now),
                       "links": {"actions": [{"id": droplet.action.id, "rel": "create",
                                              "href": f"{request.host_url}v2/actions/{droplet.action.id}"}]}}
        return _json(202, payload)

    def _handle_list(self, request: Request, body: Any) -> Response:
        tag = request.args.get("tag_name")
        page = max(1, _int_arg(request, "page", 1))
        per_page = min(self._max_per_page, max(1, _int_arg(request, "per_page", 20)))
        with self._lock:
            now = self._now()
            droplets = [d for d in self._droplets.values() if tag is None or tag in d.tags]
            shown = droplets[(page - 1) * per_page:page * per_page]
            items = [self._droplet_json(d, now) for d in shown]
        last = max(1, -(-len(droplets) // per_page))
        links = _page_links(request, page, last, per_page, tag)
        return _json(200, {"droplets": items, "links": links, "meta": {"total": len(droplets)}})

    def _handle_get(self, request: Request, body: Any, droplet_id: int) -> Response:
        with self._lock:
            return _json(200, {"droplet": self._droplet_json(self._get(droplet_id), self._now())})

    def _handle_delete(self, request: Request, body: Any, droplet_id: int) -> Response:
        with self._lock:
            if self._remove(droplet_id) is None:
                raise FakeError(404)
        return _json(204, None)

    def _handle_action(self, request: Request, body: Any, droplet_id: int) -> Response:
        kind = body.get("type") if isinstance(body, dict) else None
        with self._lock:
            now = self._now()
            droplet = self._get(droplet_id)
            if kind not in (*POWER_TARGET, "rebuild", "resize"):
                raise FakeError(422, f"The action type {kind!r} is not supported.")
            if droplet.action.running(now):
                raise FakeError(422, PENDING_EVENT)
            if kind == "rebuild":
                return self._rebuild(droplet, body.get("image"), now)
            if kind == "resize":
                return self._resize(droplet, body, now)
            target = POWER_TARGET[kind]
            changes = kind in ("reboot", "power_cycle") or droplet.on != target
            ignored = kind == "shutdown" and changes and self._guest_ignores_shutdown
            droplet.was_on, droplet.on = droplet.on, droplet.on if ignored else target
            seconds = self._action_seconds if changes else 0.0
            droplet.action = self._new_action(kind, droplet.id, droplet.region, now, seconds, errored=ignored)
            return _json(201, {"action": self._action_json(droplet.action, now)})

    def _rebuild(self, droplet: _Droplet, image: Any, now: datetime) -> Response:
        slugs = sorted(IMAGES)
        if isinstance(image, int) and 0 <= image - 100 < len(slugs):
            image = slugs[image - 100]  # the image ids the droplet JSON shows
        if image not in IMAGES:
            raise FakeError(422, "You specified an invalid image for Droplet rebuild.")
        droplet.image, droplet.rebuilds = image, (*droplet.rebuilds, image)
        droplet.was_on = droplet.on = True
        droplet.action = self._new_action("rebuild", droplet.id, droplet.region, now, self._boot_seconds)
        return _json(201, {"action": self._action_json(droplet.action, now)})

    def _resize(self, droplet: _Droplet, body: JSON, now: datetime) -> Response:
        """Only while off; the disk grows to the new size's with `disk` ("true" as the SDK sends it, or true),
        and never shrinks: a size with a smaller disk than the droplet has now is refused."""
        slug = body.get("size")
        if not isinstance(slug, str) or slug not in self._sizes:
            raise FakeError(422, INVALID_SIZE)
        if droplet.on:
            raise FakeError(422, DROPLET_ON)
        size = self._sizes[slug]
        if size.disk < droplet.disk:
            raise FakeError(422, SMALLER_DISK)
        if slug != droplet.size and not self._in_stock(slug, droplet.region):
            raise FakeError(422, SIZE_UNAVAILABLE)
        if slug != droplet.size:
            self._capacity.take((slug, droplet.region))
            self._capacity.give_back((droplet.size, droplet.region))
        droplet.size = slug
        if body.get("disk") in (True, "true"):
            droplet.disk = size.disk
        droplet.was_on = droplet.on = False
        droplet.resizes = (*droplet.resizes, {"size": slug, "disk": body.get("disk") in (True, "true")})
        droplet.action = self._new_action("resize", droplet.id, droplet.region, now, self._action_seconds)
        return _json(201, {"action": self._action_json(droplet.action, now)})

    def _handle_list_actions(self, request: Request, body: Any, droplet_id: int) -> Response:
        with self._lock:
            now = self._now()
            self._get(droplet_id)
            actions = [self._action_json(a, now) for a in reversed(self._actions.values())
                       if a.droplet_id == droplet_id]
        return _json(200, {"actions": actions, "links": {}, "meta": {"total": len(actions)}})

    def _handle_droplet_action(self, request: Request, body: Any, droplet_id: int, action_id: int) -> Response:
        with self._lock:
            action = self._actions.get(action_id)
            if action is None or action.droplet_id != droplet_id:
                raise FakeError(404)
            return _json(200, {"action": self._action_json(action, self._now())})

    def _handle_get_action(self, request: Request, body: Any, action_id: int) -> Response:
        with self._lock:
            action = self._actions.get(action_id)
            if action is None:
                raise FakeError(404)
            return _json(200, {"action": self._action_json(action, self._now())})

    # --- State (the lock is held) ----------------------------------------------------------------

    def _now(self) -> datetime:
        now = self._clock()
        if now.tzinfo is None:
            raise ValueError("the fake's clock must return timezone-aware datetimes")
        return now

    def _offered(self, size: str, region: str) -> tuple[str, str]:
        if size not in self._sizes or region not in self._sizes[size].regions:
            raise ValueError(f"{size} in {region} is not in the catalog")
        return size, region

    def _in_stock(self, size: str, region: str) -> bool:
        return (region in self._sizes[size].regions and self._size_available[size]
                and self._capacity.allows((size, region)))

    def _validate(self, body: JSON) -> None:
        name, size, region = body.get("name"), body.get("size"), body.get("region")
        tags = body.get("tags") or []
        if not isinstance(name, str) or not _HOSTNAME.fullmatch(name):
            raise FakeError(422, "Only valid hostname characters are allowed. (a-z, A-Z, 0-9, . and -)")
        if size not in self._sizes:
            raise FakeError(422, "You specified an invalid size for Droplet creation.")
        if region not in self._region_available:
            raise FakeError(422, "You specified an invalid region for Droplet creation.")
        if body.get("image") not in IMAGES:
            raise FakeError(422, "You specified an invalid image for Droplet creation.")
        if not isinstance(tags, list) or not all(isinstance(t, str) and _TAG.fullmatch(t) for t in tags):
            raise FakeError(422, "Tag names may only contain letters, numbers, colons, dashes and underscores, "
                                 "and may not exceed 255 characters.")
        if len(str(body.get("user_data") or "").encode()) > MAX_USER_DATA_BYTES:
            raise FakeError(422, "user_data is larger than 64 KiB.")
        keys = body.get("ssh_keys") or []
        if not isinstance(keys, list) or not all(isinstance(k, str | int) for k in keys):
            raise FakeError(422, "ssh_keys must be a list of SSH key ids or fingerprints.")

    def _place(self, body: JSON, now: datetime) -> _Droplet:
        self._validate(body)
        size, region = body["size"], body["region"]
        if not self._region_available[region]:
            raise FakeError(422, REGION_UNAVAILABLE)
        if not self._in_stock(size, region):
            raise FakeError(422, SIZE_UNAVAILABLE)
        if self._droplet_limit is not None and len(self._droplets) >= self._droplet_limit:
            raise FakeError(422, DROPLET_LIMIT)
        self._capacity.take((size, region))
        self._last_droplet_id += 1
        droplet_id = self._last_droplet_id
        action = self._new_action("create", droplet_id, region, now, self._boot_seconds)
        droplet = _Droplet(droplet_id, droplet_id - 300_000_000, body["name"], size, region, body["image"],
                           list(dict.fromkeys(body.get("tags") or [])), bool(body.get("ipv6")),
                           body.get("user_data"), now, action, ssh_keys=tuple(body.get("ssh_keys") or ()),
                           disk=self._sizes[size].disk)
        self._droplets[droplet_id] = droplet
        return droplet

    def _new_action(self, kind: str, droplet_id: int, region: str, now: datetime, seconds: float, *,
                    errored: bool = False) -> _Action:
        self._last_action_id += 1
        action = _Action(self._last_action_id, kind, droplet_id, region, now, seconds, errored)
        self._actions[action.id] = action
        return action

    def _get(self, droplet_id: int) -> _Droplet:
        droplet = self._droplets.get(droplet_id)
        if droplet is None:
            raise FakeError(404)
        return droplet

    def _remove(self, droplet_id: int) -> _Droplet | None:
        droplet = self._droplets.pop(droplet_id, None)
        if droplet is not None:
            self._capacity.give_back((droplet.size, droplet.region))
        return droplet

    # --- JSON shapes (the lock is held) ----------------------------------------------------------

    def _size_json(self, size: _Size) -> JSON:
        monthly = size.price_cents / 100
        return {"slug": size.slug, "memory": size.memory, "vcpus": size.vcpus, "disk": size.disk,
                "transfer": round(size.memory / 1024, 1), "price_monthly": monthly,
                "price_hourly": round(monthly / HOURS_PER_MONTH, 5), "regions": list(size.regions),
                "available": self._size_available[size.slug], "description": "Basic"}

    def _region_json(self, slug: str) -> JSON:
        sizes = [size for size in self._sizes if self._in_stock(size, slug)]
        return {"slug": slug, "name": _region_name(slug), "sizes": sizes, "available": self._region_available[slug],
                "features": ["backups", "ipv6", "metadata", "install_agent", "storage", "image_transfer"]}

    def _droplet_json(self, droplet: _Droplet, now: datetime) -> JSON:
        status = droplet.status(now)
        size = self._sizes[droplet.size]
        return {
            "id": droplet.id, "name": droplet.name, "memory": size.memory, "vcpus": size.vcpus, "disk": droplet.disk,
            "locked": False, "status": status, "kernel": None, "created_at": _timestamp(droplet.created_at),
            "features": ["ipv6"] if droplet.ipv6 else [], "backup_ids": [], "next_backup_window": None,
            "snapshot_ids": [], "volume_ids": [], "vpc_uuid": None, "tags": list(droplet.tags),
            "image": {"id": 100 + sorted(IMAGES).index(droplet.image), "slug": droplet.image,
                      "name": droplet.image, "distribution": droplet.image.split("-")[0].title(), "public": True},
            "size": self._size_json(size), "size_slug": droplet.size, "region": self._region_json(droplet.region),
            "networks": _networks(droplet) if status != "new" else {"v4": [], "v6": []},
        }

    def _action_json(self, action: _Action, now: datetime) -> JSON:
        running = action.running(now)
        completed = action.started_at + timedelta(seconds=action.seconds)
        status = "in-progress" if running else "errored" if action.errored else "completed"
        return {"id": action.id, "status": status, "type": action.type,
                "started_at": _timestamp(action.started_at),
                "completed_at": None if running else _timestamp(completed),
                "resource_id": action.droplet_id, "resource_type": "droplet",
                "region": self._region_json(action.region), "region_slug": action.region}

    # --- /_control -------------------------------------------------------------------------------

    def _control(self, request: Request, path: str) -> Response:
        try:
            endpoint, args = _CONTROL.bind("fake").match(path, request.method)
            body = request.get_json(silent=True) if request.content_length else {}
            if body is not None and not isinstance(body, dict):
                raise ValueError("the body must be a JSON object")
            payload = getattr(self, f"_control_{endpoint}")(body or {}, **args)
        except (NotFound, MethodNotAllowed) as error:
            return _error_response(FakeError(error.code or 404))
        except FakeError as error:
            return _error_response(error)
        except KeyError as error:
            return _error_response(FakeError(400, f"The field {error.args[0]!r} is missing."))
        except (ValueError, TypeError) as error:
            return _error_response(FakeError(400, str(error)))
        return _json(200, payload if payload is not None else {"ok": True})

    def _control_state(self, body: JSON) -> JSON:
        return self.state()

    def _control_reset(self, body: JSON) -> None:
        self.reset()

    def _control_requests(self, body: JSON) -> JSON:
        return {"requests": [{"method": r.method, "path": r.path, "query": r.query, "body": r.body}
                             for r in self.received]}

    def _control_clear_requests(self, body: JSON) -> None:
        self.clear_received()

    def _control_capacity(self, body: JSON) -> None:
        count = body.get("count")
        self.set_capacity(body["size"], body["region"], None if count is None else int(count))

    def _control_availability(self, body: JSON) -> None:
        available = body["available"]
        if not isinstance(available, bool):
            raise ValueError("available must be true or false")
        if "region" in body:
            self.set_region_available(body["region"], available)
        elif "size" in body:
            self.set_size_available(body["size"], available)
        else:
            raise ValueError("name a region or a size")

    def _control_droplet_limit(self, body: JSON) -> None:
        limit = body.get("limit")
        self.set_droplet_limit(None if limit is None else int(limit))

    def _control_token(self, body: JSON) -> None:
        self.set_token(body.get("token"))

    def _control_ignore_shutdown(self, body: JSON) -> None:
        self.ignore_shutdown(bool(body.get("ignore", True)))

    def _control_fail(self, body: JSON) -> None:
        retry_after = body.get("retry_after")
        self.fail_next(body["operation"], int(body.get("status", 500)), error_id=body.get("id"),
                       message=body.get("message"), times=int(body.get("times", 1)), body=body.get("body"),
                       retry_after=None if retry_after is None else float(retry_after),
                       after=int(body.get("after", 0)))

    def _control_slow(self, body: JSON) -> None:
        self.slow_next(body["operation"], float(body["seconds"]), times=int(body.get("times", 1)))

    def _control_lose_answer(self, body: JSON) -> None:
        delay = body.get("delay")
        self.lose_next_answer(body.get("operation", "create"), delay=None if delay is None else float(delay),
                              times=int(body.get("times", 1)))

    def _control_delete_droplet(self, body: JSON, droplet_id: int) -> None:
        try:
            self.delete_out_of_band(droplet_id)
        except KeyError:
            raise FakeError(404) from None


def _int_arg(request: Request, name: str, default: int) -> int:
    try:
        return int(request.args.get(name, default))
    except ValueError:
        return default


def _page_links(request: Request, page: int, last: int, per_page: int, tag: str | None) -> JSON:
    """DigitalOcean's absolute page links; the SDK follows `next` as given, so they name this server."""
    def url(number: int) -> str:
        query = {"page": number, "per_page": per_page, **({"tag_name": tag} if tag is not None else {})}
        return f"{request.host_url}v2/droplets?{urlencode(query)}"

    pages: JSON = {}
    if page > 1:
        pages.update(first=url(1), prev=url(page - 1))
    if page < last:
        pages.update(next=url(page + 1), last=url(last))
    return {"pages": pages} if pages else {}


def _networks(droplet: _Droplet) -> JSON:
    n = droplet.number
    v4 = [{"ip_address": f"203.0.113.{(n - 1) % 254 + 1}", "netmask": "255.255.255.0",
           "gateway": "203.0.113.254", "type": "public"},
          {"ip_address": f"10.110.{(n >> 8) & 0xFF}.{n & 0xFF}", "netmask": "255.255.0.0",
           "gateway": "10.110.0.1", "type": "private"}]
    v6 = ([{"ip_address": f"2001:db8:{(n >> 16) & 0xFFFF:x}:{n & 0xFFFF:x}::1", "netmask": 64,
            "gateway": f"2001:db8:{(n >> 16) & 0xFFFF:x}:{n & 0xFFFF:x}::", "type": "public"}]
          if droplet.ipv6 else [])
    return {"v4": v4, "v6": v6}


def main(argv: list[str] | None = None) -> None:
    """Serve a demo instance on 127.0.0.1 until interrupted."""
    parser = argparse.ArgumentParser(description="A fake DigitalOcean API v2 on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--token", help="accept only this API token (default: any)")
    args = parser.parse_args(argv)
    server = serve(DigitalOceanFake(token=args.token, demo=True), port=args.port)
    print(f"DigitalOcean fake API on {server.url}/v2/ (Ctrl-C stops it)")
    try:
        server.thread.join()
    except KeyboardInterrupt:
        server.shutdown()


if __name__ == "__main__":
    main()
