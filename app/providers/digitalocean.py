"""DigitalOcean through python-digitalocean, behind `CloudProvider`.

The SDK (1.17, unmaintained since 2021) has traps this adapter works around:

- Endpoint. Several code paths build objects without passing `end_point` on (`Droplet.get_object`,
  `Manager.get_droplet`, `get_action`, the droplets of `get_all_droplets`, the `Action` of
  `power_*(return_dict=False)`, SSH keys given as strings); those talk to the `DIGITALOCEAN_END_POINT`
  environment variable or the real API. Here every SDK object that sends a request is created by `_sdk()`
  with `end_point` set, and objects the SDK creates itself are only read, never asked to call.
- Timeout. The SDK reads its timeout only from `PYTHON_DIGITALOCEAN_REQUEST_TIMEOUT_SEC`. Our subclasses
  override `BaseAPI.get_timeout()`, which the SDK calls for every request, so the process environment is
  never touched.
- Errors. The SDK raises `NotFoundError` on 404 and `DataReadError(message)` on anything else, dropping
  the status. Our subclasses keep the last raw response (`last_response`), so errors are classified by
  status first and by message second; Retry-After is read from it.
- Sessions. Each SDK object opens a `requests.Session` and never closes it; `_calling()` closes it.
- No retries at all (429 included): the caller retries with backoff.

Catalogue: one `Offer` per size and region in `size.regions`, available when the region is available, the
size is available and the size is in `region.sizes`; prices are the USD float `price_monthly` converted once
to cents (`usd_cents`). Network zones group regions by continent from the slug's letters (`NETWORK_ZONES`):
"eu" (fra, ams, lon), "us" for North America (nyc, sfo, tor, atl), "ap" (sgp, blr, syd); an unknown region
is a zone of its own.

Idempotent creates: DigitalOcean allows duplicate names, so servers are found by tags. Each label becomes a
tag `key:value` (tags allow letters, digits, colon, dash and underscore; anything else becomes `_`); a
droplet is the one made for a spec when it has the spec's name and carries all its tags. `create_server`
looks first and adopts; after a timeout, dropped connection or 5xx it looks again, so a create whose answer
was lost is adopted, never repeated. User data is limited to 32 KiB (Hetzner's limit, the portal-wide one;
DigitalOcean itself allows 64 KiB) and checked before anything is sent.

Resizing is the droplet action `resize` (`disk` as asked: the SDK sends `"disk": "true"` or leaves it out);
DigitalOcean refuses it while the droplet is on and never shrinks a disk. `prices` reads `/sizes`: one USD
price per size, the same in every region it is sold in, converted once to cents through its decimal text.

Access: customers' SSH keys travel in the user data (cloud-init), not as DigitalOcean key objects; the create
names none. A rebuild (`{"type": "rebuild", "image": slug}`) cannot take new user data: DigitalOcean runs the
droplet's own again on the fresh disk, so the keys come back. DigitalOcean never answers a root password (it
emails one to the account's owner when no key object is named), so there is no password reset here.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, TypeVar

import digitalocean
import requests
from digitalocean.baseapi import GET

from app.domain.availability import Availability, Offer, availability
from app.providers.base import (
    ActionInfo,
    ActionStatus,
    CostPrice,
    ErrorKind,
    PasswordAction,
    PowerState,
    ProviderError,
    ServerInfo,
    ServerSpec,
    create_or_adopt,
)

DEFAULT_ENDPOINT = "https://api.digitalocean.com/v2/"
NETWORK_ZONES = {"fra": "eu", "ams": "eu", "lon": "eu", "nyc": "us", "sfo": "us", "tor": "us", "atl": "us",
                 "sgp": "ap", "blr": "ap", "syd": "ap"}
NOT_FOUND_MESSAGE = "DigitalOcean answered 404 Not Found; check the API endpoint."
ITEM_LABEL_SUFFIX = "item"  # the label that names one subscription item: the narrowest tag to list by

_POWER = {"new": PowerState.PROVISIONING, "active": PowerState.RUNNING, "off": PowerState.OFF}
_DURING = {"power_on": PowerState.STARTING, "power_off": PowerState.STOPPING, "shutdown": PowerState.STOPPING,
           "reboot": PowerState.REBOOTING, "power_cycle": PowerState.REBOOTING, "rebuild": PowerState.PROVISIONING}
_ACTION_STATUS = {"in-progress": ActionStatus.RUNNING, "completed": ActionStatus.SUCCESS,
                  "errored": ActionStatus.ERROR}
_NOT_TAG = re.compile(r"[^A-Za-z0-9:_-]")
_QUOTA = re.compile(r"exceed\w* your .*limit|droplet limit|quota")


class _Configured:
    """Mixed into the SDK classes: our timeout, and the raw response kept so errors keep their status."""

    request_timeout: float | None = None
    last_response: requests.Response | None = None

    def get_timeout(self) -> float | None:  # the SDK asks this before every request
        return self.request_timeout

    # BaseAPI's private `__perform_request` (name-mangled), wrapped to remember the response.
    def _BaseAPI__perform_request(self, url: str, type: str = GET,
                                  params: dict[str, Any] | None = None) -> requests.Response:
        self.last_response = None
        response: requests.Response = super()._BaseAPI__perform_request(url, type, params)  # type: ignore[misc]
        self.last_response = response
        return response


class _Manager(_Configured, digitalocean.Manager):
    pass


class _Droplet(_Configured, digitalocean.Droplet):
    pass


class _Action(_Configured, digitalocean.Action):
    pass


_SDK = TypeVar("_SDK", _Manager, _Droplet, _Action)


class _RecentActions:
    """Power actions started through this process, so `server_info` can show one while it runs.

    DigitalOcean's droplet JSON does not say that an action runs (the status stays `active` while it powers
    off), and listing a droplet's actions costs a request per action in the SDK; remembering what we started
    costs one request per poll, and only while such an action is pending. Bounded; keyed by endpoint and id.
    """

    def __init__(self, limit: int = 1000) -> None:
        self._limit = limit
        self._lock = threading.Lock()
        self._actions: OrderedDict[tuple[str, str], str] = OrderedDict()

    def remember(self, endpoint: str, server_id: str, action_id: str) -> None:
        with self._lock:
            self._actions[endpoint, server_id] = action_id
            self._actions.move_to_end((endpoint, server_id))
            while len(self._actions) > self._limit:
                self._actions.popitem(last=False)

    def get(self, endpoint: str, server_id: str) -> str | None:
        with self._lock:
            return self._actions.get((endpoint, server_id))

    def forget(self, endpoint: str, server_id: str) -> None:
        with self._lock:
            self._actions.pop((endpoint, server_id), None)


_recent_actions = _RecentActions()


class DigitalOceanCloud:
    """One DigitalOcean account (one API token). Every request goes to `endpoint` with `timeout` seconds."""

    name = "digitalocean"

    def __init__(self, token: str, *, endpoint: str = DEFAULT_ENDPOINT, timeout: float = 15.0) -> None:
        if not token:
            raise ValueError("a DigitalOcean API token is required")
        if timeout <= 0:
            raise ValueError("the timeout must be positive")
        self._token = token
        self._endpoint = endpoint.rstrip("/") + "/"  # the SDK joins relative paths onto it
        self._timeout = timeout

    def __repr__(self) -> str:  # never the token
        return f"DigitalOceanCloud(endpoint={self._endpoint!r}, timeout={self._timeout!r})"

    # --- CloudProvider -----------------------------------------------------------------------------

    def offers(self) -> list[Offer]:
        """Every size in every region it is offered in, with its price and whether it can be placed now."""
        manager = self._sdk(_Manager)
        with self._calling(manager):
            sizes = manager.get_all_sizes()
            regions = manager.get_all_regions()
        by_slug = {region.slug: region for region in regions}
        return [_offer(size, by_slug[slug]) for size in sizes for slug in size.regions if slug in by_slug]

    def check_availability(self, server_type: str, location: str) -> Availability:
        """Availability with alternatives, from `offers()` by the domain rules."""
        return availability(self.offers(), server_type, location)

    def prices(self) -> list[CostPrice]:
        """Every size's monthly price in USD cents, once per region it is sold in (one price for all)."""
        manager = self._sdk(_Manager)
        with self._calling(manager):
            sizes = manager.get_all_sizes()
        return [CostPrice(size.slug, region, usd_cents(size.price_monthly), "USD", int(size.vcpus),
                          Decimal(int(size.memory)) / 1024, int(size.disk))
                for size in sizes for region in size.regions]

    def create_server(self, spec: ServerSpec) -> ServerInfo:
        """Adopt the droplet made for `spec` if there is one, else create it (see the module docstring)."""
        return create_or_adopt(spec, find=self.find_server, create=self._create)

    def find_server(self, spec: ServerSpec) -> ServerInfo | None:
        """The oldest droplet with `spec.name` that carries every tag of `spec.labels`, if any."""
        tags = label_tags(spec.labels)
        manager = self._sdk(_Manager)
        with self._calling(manager):
            droplets = manager.get_all_droplets(tag_name=_lookup_tag(spec.labels))
        matches = [vars(d) for d in droplets if d.name == spec.name and set(tags) <= set(d.tags or ())]
        if not matches:
            return None
        return _server_info(min(matches, key=lambda d: (str(d.get("created_at") or ""), int(d["id"]))))

    def managed_servers(self, label: str, value: str) -> list[ServerInfo]:
        """Droplets carrying the label's tag."""
        manager = self._sdk(_Manager)
        with self._calling(manager):
            droplets = manager.get_all_droplets(tag_name=label_tags({label: value})[0])
        return [_server_info(vars(droplet)) for droplet in droplets]

    def server_info(self, server_id: str) -> ServerInfo:
        """Live state; NOT_FOUND when the droplet is gone. Shows a power action this process started while
        it runs (one more request, only then)."""
        droplet = self._sdk(_Droplet, id=_droplet_id(server_id))
        with self._calling(droplet, missing=_gone(server_id)):
            droplet.load()
        info = _server_info(vars(droplet))
        action = self._pending_action(info.server_id)
        if action is None:
            return info
        return replace(info, action=action, power=_DURING.get(action.command, info.power))

    def power_on(self, server_id: str) -> ActionInfo:
        """Start the droplet (BUSY while another action runs)."""
        return self._act(server_id, "power_on")

    def power_off(self, server_id: str) -> ActionInfo:
        """Cut the power (DigitalOcean's `power_off`; `shutdown` is the graceful one)."""
        return self._act(server_id, "power_off")

    def shutdown(self, server_id: str) -> ActionInfo:
        """A graceful (ACPI) shutdown; the action errors when the guest does not react (BUSY while another runs)."""
        return self._act(server_id, "shutdown")

    def reboot(self, server_id: str) -> ActionInfo:
        """Reboot the droplet gracefully."""
        return self._act(server_id, "reboot")

    def rebuild(self, server_id: str, *, image: str, user_data: str = "") -> PasswordAction:
        """Reinstall from the image `image` (a slug); the droplet's own user data runs again (`user_data` is
        not sent: DigitalOcean's rebuild takes none). No password is answered."""
        return PasswordAction(self._act(server_id, "rebuild", image_id=image))

    def resize(self, server_id: str, server_type: str, *, upgrade_disk: bool) -> ActionInfo:
        """Resize the droplet to the size `server_type`; it must be off. With `upgrade_disk` the disk grows too,
        which cannot be undone (no smaller disk afterwards)."""
        return self._act(server_id, "resize", new_size_slug=server_type, disk=upgrade_disk)

    def reset_password(self, server_id: str) -> PasswordAction:
        """Not offered: DigitalOcean would email the new password to the account's owner, not answer it."""
        raise ProviderError(ErrorKind.INVALID, "DigitalOcean cannot give a new root password here; log in with "
                                               "your SSH key.")

    def delete_server(self, server_id: str) -> None:
        """Delete the droplet; one that is gone already is not an error."""
        droplet = self._sdk(_Droplet, id=_droplet_id(server_id))
        try:
            with self._calling(droplet, missing=_gone(server_id)):
                droplet.destroy()
        except ProviderError as error:
            if error.kind is not ErrorKind.NOT_FOUND:
                raise
        _recent_actions.forget(self._endpoint, str(server_id))

    # --- Internals -------------------------------------------------------------------------------

    def _sdk(self, cls: type[_SDK], **attributes: Any) -> _SDK:
        """An SDK object bound to our endpoint, token and timeout (never the environment's)."""
        return cls(token=self._token, end_point=self._endpoint, request_timeout=self._timeout, **attributes)

    @contextmanager
    def _calling(self, api: _Configured, *, missing: str = NOT_FOUND_MESSAGE) -> Iterator[None]:
        """SDK and transport errors become ProviderError (`missing` on 404); the object's session is closed."""
        try:
            yield
        except (digitalocean.Error, requests.RequestException) as error:
            raise provider_error(error, api.last_response, timeout=self._timeout, missing=missing) from error
        finally:
            api._session.close()  # type: ignore[attr-defined]

    def _create(self, spec: ServerSpec) -> ServerInfo:
        droplet = self._sdk(_Droplet, name=spec.name, size_slug=spec.server_type, region=spec.location,
                            image=spec.image, tags=label_tags(spec.labels), user_data=spec.user_data or None,
                            ipv6=True, ssh_keys=[])
        with self._calling(droplet):
            droplet.create()
        # The SDK keeps only the id from the answer, which is the whole droplet.
        assert droplet.last_response is not None  # set by the request that just succeeded
        return _server_info(droplet.last_response.json()["droplet"])

    def _act(self, server_id: str, command: str, **arguments: Any) -> ActionInfo:
        droplet = self._sdk(_Droplet, id=_droplet_id(server_id))
        with self._calling(droplet, missing=_gone(server_id)):
            answer = getattr(droplet, command)(**arguments)  # return_dict=True: a dict, not an Action bound elsewhere
        action = _action_info(answer["action"])
        if action.status is ActionStatus.RUNNING:
            _recent_actions.remember(self._endpoint, str(server_id), action.id)
        return action

    def _pending_action(self, server_id: str) -> ActionInfo | None:
        action_id = _recent_actions.get(self._endpoint, server_id)
        if action_id is None:
            return None
        action = self._sdk(_Action, id=action_id, droplet_id=server_id)
        try:
            with self._calling(action):
                action.load()  # GET droplets/{id}/actions/{action_id}
        except ProviderError as error:
            if error.kind is not ErrorKind.NOT_FOUND:
                raise
            _recent_actions.forget(self._endpoint, server_id)
            return None
        info = _action_info(vars(action))
        if info.status is not ActionStatus.RUNNING:
            _recent_actions.forget(self._endpoint, server_id)
            return None
        return info


# --- Conversions -------------------------------------------------------------------------------------


def usd_cents(amount: float | str) -> int:
    """A USD amount from the API (a float) in cents: through its decimal text, rounded half up, once."""
    return int((Decimal(str(amount)) * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def network_zone(region: str) -> str:
    """The continent of a region slug (`fra1` -> `eu`); an unknown region is a zone of its own."""
    return NETWORK_ZONES.get(region.rstrip("0123456789"), region)


def label_tags(labels: Mapping[str, str]) -> list[str]:
    """Labels as DigitalOcean tags `key:value`, in a stable order."""
    return [_NOT_TAG.sub("_", f"{key}:{value}")[:255] for key, value in sorted(labels.items())]


def _lookup_tag(labels: Mapping[str, str]) -> str | None:
    """The tag to list droplets by: the item's label if there is one (the narrowest), else any label's."""
    if not labels:
        return None  # no labels: every droplet is listed and the name alone decides
    key = next((k for k in sorted(labels) if k.endswith(ITEM_LABEL_SUFFIX)), min(labels))
    return label_tags({key: labels[key]})[0]


def _labels(tags: list[str] | None) -> dict[str, str]:
    return dict(tag.split(":", 1) for tag in tags or () if ":" in tag)


def _droplet_id(server_id: str) -> int:
    """Droplet ids are integers; anything else cannot exist (and must not reach a URL path)."""
    text = str(server_id)
    if not text.isdigit():
        raise ProviderError(ErrorKind.NOT_FOUND, _gone(text))
    return int(text)


def _gone(server_id: str) -> str:
    return f"The server {server_id} no longer exists at DigitalOcean."


def _offer(size: digitalocean.Size, region: digitalocean.Region) -> Offer:
    available = bool(region.available) and bool(getattr(size, "available", True)) and size.slug in region.sizes
    return Offer(server_type=size.slug, location=region.slug, network_zone=network_zone(region.slug),
                 price_minor=usd_cents(size.price_monthly), currency="USD", available=available,
                 cores=int(size.vcpus), memory_mb=int(size.memory), disk_gb=int(size.disk))


def _address(entries: list[dict[str, Any]] | None, kind: str) -> str | None:
    return next((e["ip_address"] for e in entries or () if e.get("type") == kind), None)


def _server_info(droplet: Mapping[str, Any]) -> ServerInfo:
    """A droplet's JSON (or an SDK Droplet's attributes) as our ServerInfo."""
    networks = droplet.get("networks")
    networks = networks if isinstance(networks, dict) else {}
    region = droplet.get("region")
    created = droplet.get("created_at")
    return ServerInfo(
        server_id=str(droplet["id"]),
        name=droplet.get("name") or "",
        power=_POWER.get(droplet.get("status") or "", PowerState.UNKNOWN),
        server_type=droplet.get("size_slug") or "",
        location=region.get("slug", "") if isinstance(region, dict) else "",
        ipv4=_address(networks.get("v4"), "public"),
        ipv6=_address(networks.get("v6"), "public"),
        private_ip=_address(networks.get("v4"), "private"),
        labels=_labels(droplet.get("tags")),
        created_at=datetime.fromisoformat(created) if created else None,
    )


def _action_info(action: Mapping[str, Any]) -> ActionInfo:
    status = _ACTION_STATUS.get(action.get("status") or "", ActionStatus.RUNNING)
    return ActionInfo(id=str(action["id"]), command=str(action.get("type") or ""), status=status,
                      progress=100 if status is ActionStatus.SUCCESS else 0,
                      error="DigitalOcean reported the action as errored." if status is ActionStatus.ERROR
                      else None)


# --- Errors ------------------------------------------------------------------------------------------


def provider_error(error: Exception, response: requests.Response | None, *, timeout: float,
                   missing: str = NOT_FOUND_MESSAGE) -> ProviderError:
    """An SDK or transport error as ProviderError, by HTTP status when known, else by DigitalOcean's message."""
    if isinstance(error, digitalocean.NotFoundError):
        return ProviderError(ErrorKind.NOT_FOUND, missing)
    if isinstance(error, requests.Timeout):
        return ProviderError(ErrorKind.TRANSIENT, f"DigitalOcean did not answer within {timeout:g} seconds.")
    if isinstance(error, requests.RequestException):
        return ProviderError(ErrorKind.TRANSIENT, "DigitalOcean could not be reached or dropped the connection.")
    if isinstance(error, digitalocean.TokenError):
        return ProviderError(ErrorKind.AUTH, "No DigitalOcean API token is configured.")
    status = response.status_code if response is not None else None
    message = str(error).strip() or "no message"
    if isinstance(error, digitalocean.baseapi.JSONReadError):
        kind = _classify(status, "") if status is not None and not 200 <= status < 300 else ErrorKind.TRANSIENT
        return ProviderError(kind, _explain(kind, f"an unreadable answer (HTTP {status})", status),
                             retry_after=_retry_after(response) if kind is ErrorKind.RATE_LIMITED else None)
    kind = _classify(status, message)
    return ProviderError(kind, _explain(kind, message, status),
                         retry_after=_retry_after(response) if kind is ErrorKind.RATE_LIMITED else None)


def _classify(status: int | None, message: str) -> ErrorKind:
    text = message.lower()
    if status in (401, 403) or "unable to authenticate" in text:
        return ErrorKind.AUTH
    if status == 429 or "rate limit" in text:
        return ErrorKind.RATE_LIMITED
    if status is not None and status >= 500:
        return ErrorKind.TRANSIENT
    if "pending event" in text:
        return ErrorKind.BUSY
    if _QUOTA.search(text):
        return ErrorKind.AUTH  # an account limit: only the account owner can lift it, retrying does not help
    if "not available" in text:
        return ErrorKind.UNAVAILABLE
    return ErrorKind.INVALID


def _explain(kind: ErrorKind, message: str, status: int | None) -> str:
    said = f"DigitalOcean said: {message}" if message else "DigitalOcean refused the request."
    if kind is ErrorKind.AUTH and status in (401, 403):
        return f"DigitalOcean rejected the API token; check the account's credentials. ({said})"
    if kind is ErrorKind.AUTH:
        return f"The DigitalOcean account has reached a limit; ask its owner to raise it. ({said})"
    if kind is ErrorKind.RATE_LIMITED:
        return f"Too many requests to DigitalOcean; try again later. ({said})"
    if kind is ErrorKind.BUSY:
        return "Another action is running on this server; try again in a moment."
    if kind is ErrorKind.TRANSIENT:
        return f"DigitalOcean had a temporary problem (HTTP {status}). ({said})"
    return said


def _retry_after(response: requests.Response | None) -> float | None:
    value = response.headers.get("Retry-After") if response is not None else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: let the caller's backoff decide
