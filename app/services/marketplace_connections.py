"""Which marketplace account serves a tenant, handed to the adapter as its credentials.

- A tenant with a connection of its own (the admin's marketplace settings: ids in `settings`, the secret
  sealed) gets the real adapter on the marketplace's API (MICROSOFT_MARKETPLACE_API_URL, MICROSOFT_LOGIN_URL,
  STACKIT_MARKETPLACE_API_URL, STACKIT_TOKEN_URL), and its webhooks and sign-up tokens are checked against the
  marketplace's published keys.
- A tenant without one is served by the sandbox marketplace that `flask up` (or `flask fake-clouds`) runs on
  127.0.0.1 (SANDBOX_MICROSOFT_URL, SANDBOX_STACKIT_URL), with sandbox ids derived from the tenant's slug, so
  the demo and the tests buy through the real adapters with no credentials.
- A connection an admin switched off serves nothing: its marketplace's requests are refused.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from uuid import NAMESPACE_URL, uuid5

from flask import current_app
from sqlalchemy import select

from app.clock import now as clock_now
from app.domain.accounts import Role
from app.domain.marketplaces import Marketplace
from app.domain.notifications import Event
from app.extensions import db
from app.models import (
    MarketplaceConnection,
    TenantLike,
    User,
)
from app.providers.marketplaces.base import MarketplaceAdapter, MarketplaceError, MarketplaceErrorKind
from app.services.actors import Actor
from app.services.errors import Forbidden, InvalidInput, NotFound
from app.services.notifications import notify
from app.services.secrets import Unreadable, seal, unseal

log = logging.getLogger(__name__)

MICROSOFT_RESOURCE = "20e940b3-4c77-4b0b-9a53-9e16a1b010a7"
"""The SaaS Fulfillment API's resource id: the `appid` (v1) or `azp` (v2) of Microsoft's webhook tokens."""

SANDBOX_CLIENT_SECRET = "sandbox-secret"  # noqa: S105  (the sandbox marketplaces', on 127.0.0.1 only)
SANDBOX_SERVICE_ACCOUNT_KEY = "sandbox-service-account-key"


@dataclass(frozen=True)
class MicrosoftSettings:
    entra_tenant_id: str
    client_id: str
    client_secret: str
    sandbox: bool


@dataclass(frozen=True)
class TokenChecks:
    """What a Microsoft webhook's bearer token must satisfy: signed by a key of `jwks_url`, for `audience`
    (the publisher's app), issued in `tenant_id` (the publisher's Entra tenant), by one of `app_ids`."""

    jwks_url: str
    audience: str
    tenant_id: str
    app_ids: frozenset[str]


@dataclass(frozen=True)
class StackitSettings:
    project_id: str
    service_account_key: str
    sandbox: bool


def connection(tenant: TenantLike, marketplace: Marketplace) -> MarketplaceConnection | None:
    """The tenant's own connection to `marketplace`, if it has one."""
    return db.session.scalar(select(MarketplaceConnection).where(
        MarketplaceConnection.tenant_id == tenant.id, MarketplaceConnection.marketplace == marketplace))


def _sandbox_url(marketplace: Marketplace) -> str | None:
    key = "SANDBOX_MICROSOFT_URL" if marketplace is Marketplace.MICROSOFT else "SANDBOX_STACKIT_URL"
    return current_app.config.get(key) or None


def _own_secret(found: MarketplaceConnection) -> str:
    if not found.enabled:
        raise MarketplaceError(MarketplaceErrorKind.AUTH, f"The {found.marketplace.label} connection is switched "
                                                          "off in the marketplace settings.")
    if not found.secret_ciphertext:
        raise MarketplaceError(MarketplaceErrorKind.AUTH, f"The {found.marketplace.label} connection has no secret "
                                                          "yet: add it in the marketplace settings.")
    try:
        return unseal(found.secret_ciphertext)
    except Unreadable:
        log.error("the %s secret of tenant %s cannot be decrypted (key changed?)", found.marketplace, found.tenant_id)
        raise MarketplaceError(MarketplaceErrorKind.AUTH, f"The {found.marketplace.label} secret cannot be read: "
                                                          "enter it again in the marketplace settings.") from None


def _not_connected(marketplace: Marketplace) -> MarketplaceError:
    return MarketplaceError(MarketplaceErrorKind.AUTH, f"This portal is not connected to the {marketplace.label}.")


def sandbox_ids(slug: str, marketplace: Marketplace) -> dict[str, str]:
    """The ids the sandbox marketplace knows the tenant `slug` by: stable, derived from the slug."""
    if marketplace is Marketplace.MICROSOFT:
        return {"entra_tenant_id": str(uuid5(NAMESPACE_URL, f"sandbox-microsoft:{slug}")),
                "client_id": str(uuid5(NAMESPACE_URL, f"sandbox-microsoft-app:{slug}"))}
    return {"project_id": str(uuid5(NAMESPACE_URL, f"sandbox-stackit:{slug}"))}


def microsoft_settings(tenant: TenantLike) -> MicrosoftSettings:
    """The tenant's Microsoft publisher app, or the sandbox's; MarketplaceError(AUTH) when it has neither."""
    found = connection(tenant, Marketplace.MICROSOFT)
    if found is not None:
        secret = _own_secret(found)
        settings = found.settings or {}
        return MicrosoftSettings(str(settings.get("entra_tenant_id", "")), str(settings.get("client_id", "")), secret,
                                 sandbox=False)
    if _sandbox_url(Marketplace.MICROSOFT):
        ids = sandbox_ids(tenant.slug, Marketplace.MICROSOFT)
        return MicrosoftSettings(ids["entra_tenant_id"], ids["client_id"], SANDBOX_CLIENT_SECRET, sandbox=True)
    raise _not_connected(Marketplace.MICROSOFT)


def stackit_settings(tenant: TenantLike) -> StackitSettings:
    """The tenant's STACKIT vendor project, or the sandbox's; MarketplaceError(AUTH) when it has neither."""
    found = connection(tenant, Marketplace.STACKIT)
    if found is not None:
        secret = _own_secret(found)
        return StackitSettings(str(found.settings.get("project_id", "")), secret, sandbox=False)
    if _sandbox_url(Marketplace.STACKIT):
        return StackitSettings(sandbox_ids(tenant.slug, Marketplace.STACKIT)["project_id"], SANDBOX_SERVICE_ACCOUNT_KEY,
                               sandbox=True)
    raise _not_connected(Marketplace.STACKIT)


def adapter_for(tenant: TenantLike, marketplace: Marketplace) -> MarketplaceAdapter:
    """The marketplace account that sells for this tenant, and no other tenant's."""
    config = current_app.config
    timeout = float(config.get("CLOUD_TIMEOUT", 15.0))
    if marketplace is Marketplace.MICROSOFT:
        from app.providers.marketplaces.microsoft import MicrosoftMarketplace

        ms = microsoft_settings(tenant)
        sandbox = _sandbox_url(marketplace) if ms.sandbox else None
        return MicrosoftMarketplace(
            api_url=f"{sandbox}/api" if sandbox else str(config["MICROSOFT_MARKETPLACE_API_URL"]),
            login_url=sandbox or str(config["MICROSOFT_LOGIN_URL"]), entra_tenant_id=ms.entra_tenant_id,
            client_id=ms.client_id, client_secret=ms.client_secret, timeout=timeout)
    from app.providers.marketplaces.stackit import StackitMarketplace

    st = stackit_settings(tenant)
    sandbox = _sandbox_url(marketplace) if st.sandbox else None
    return StackitMarketplace(api_url=sandbox or str(config["STACKIT_MARKETPLACE_API_URL"]), project_id=st.project_id,
                              service_account_key=st.service_account_key,
                              token_url=f"{sandbox}/token" if sandbox else str(config["STACKIT_TOKEN_URL"]),
                              timeout=timeout)


def microsoft_token_checks(tenant: TenantLike) -> TokenChecks:
    """What the tenant's Microsoft webhook tokens must satisfy (research: the reference implementation's checks)."""
    ms = microsoft_settings(tenant)
    sandbox = _sandbox_url(Marketplace.MICROSOFT) if ms.sandbox else None
    login = sandbox or str(current_app.config["MICROSOFT_LOGIN_URL"])
    return TokenChecks(jwks_url=f"{login}/common/discovery/v2.0/keys", audience=ms.client_id,
                       tenant_id=ms.entra_tenant_id, app_ids=frozenset({MICROSOFT_RESOURCE}))


def stackit_token_checks(tenant: TenantLike) -> tuple[str, str]:
    """Where the STACKIT sign-up token's keys are published, and the issuer it must name (the same URL)."""
    st = stackit_settings(tenant)
    sandbox = _sandbox_url(Marketplace.STACKIT) if st.sandbox else None
    keys = (f"{sandbox}/v1/resolve-customer/keys.json" if sandbox
            else str(current_app.config["STACKIT_MARKETPLACE_KEYS_URL"]))
    return keys, keys


# --- The tenant admin's settings, plan mappings and the secrets' expiry ---------------------------------------------

GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
EXTERNAL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,99}")  # offer and plan ids, as both marketplaces spell them
SECRET_WARNING = timedelta(days=30)  # warn this long before a marketplace secret expires
MAX_OFFER_IDS = 20
SECRET_MAX = 500
KEY_MAX = 20_000


def require_admin(tenant: TenantLike, actor: Actor, what: str = "the marketplace settings") -> User:
    user = actor.user
    if user is None or user.role is not Role.TENANT_ADMIN or user.tenant_id != tenant.id or actor.impersonator:
        raise Forbidden(f"Only the tenant's admins can change {what}.")
    return user


def _guid(value: str | None, field: str, what: str) -> str:
    value = (value or "").strip()
    if not value:
        raise InvalidInput(f"Enter the {what}.", field=field)
    if not GUID.fullmatch(value):
        raise InvalidInput(f"The {what} is a GUID such as 72f988bf-86f1-41af-91ab-2d7cd011db47 (8-4-4-4-12 "
                           "hexadecimal digits).", field=field)
    return value.lower()


def _offer_ids(value: str | list[str] | None) -> list[str]:
    parts = value if isinstance(value, list) else re.split(r"[\s,]+", value or "")
    ids = list(dict.fromkeys(part.strip() for part in parts if part.strip()))
    for offer_id in ids:
        if not EXTERNAL_ID.fullmatch(offer_id):
            raise InvalidInput(f"{offer_id[:40]!r} is not an offer id: letters, digits, dots, dashes and underscores, "
                               "up to 100.", field="offer_ids")
    if len(ids) > MAX_OFFER_IDS:
        raise InvalidInput(f"List at most {MAX_OFFER_IDS} offer ids.", field="offer_ids")
    return ids


def _expiry(value: date | str | None, field: str) -> datetime | None:
    """The last day a secret works, as the end of that day (UTC); None when not given."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = date.fromisoformat(value.strip())
        except ValueError:
            raise InvalidInput("Enter the date as YYYY-MM-DD.", field=field) from None
    ends = datetime.combine(value, time(23, 59, 59), tzinfo=UTC)
    if ends <= clock_now():
        raise InvalidInput("This date has passed: an expired secret cannot sign in. Create a new secret and enter "
                           "its expiry date.", field=field)
    if ends > clock_now() + timedelta(days=366 * 3):
        raise InvalidInput("Microsoft Entra client secrets expire within two years: check the date.", field=field)
    return ends


def _saved(row: MarketplaceConnection, user: User, changed: list[str], tenant: TenantLike) -> MarketplaceConnection:
    """Record who changed what (the page shows it; the log keeps each change) and commit."""
    row.settings = {**(row.settings or {}), "updated_by_id": user.id, "updated_by": user.name}
    row.updated_at = clock_now()
    db.session.commit()
    log.info("tenant %s: %s marketplace settings changed by user %s: %s", tenant.slug, row.marketplace.value,
             user.id, changed, extra={"tenant_id": tenant.id, "user_id": user.id, "changed": changed})
    return row


def _row(tenant: TenantLike, marketplace: Marketplace) -> MarketplaceConnection:
    row = connection(tenant, marketplace)
    if row is None:
        row = MarketplaceConnection(tenant_id=tenant.id, marketplace=marketplace, settings={})
        db.session.add(row)
    return row


def save_microsoft(*, tenant: TenantLike, actor: Actor, entra_tenant_id: str, client_id: str, client_secret: str = "",
                   secret_expires_on: date | str | None = None, offer_ids: str | list[str] = "",
                   ) -> MarketplaceConnection:
    """Connect the tenant to Microsoft's commercial marketplace with its Entra app (tenant id, client id, client
    secret and the secret's expiry date). A blank secret keeps the stored one; a new secret needs its expiry date,
    which may also be corrected alone. `offer_ids` (optional) lists the tenant's SaaS offers. Tenant admins only;
    nothing is saved when one value is refused (InvalidInput names its field)."""
    user = require_admin(tenant, actor)
    values = {"entra_tenant_id": _guid(entra_tenant_id, "entra_tenant_id", "Entra tenant id"),
              "client_id": _guid(client_id, "client_id", "app's client id (application id)"),
              "offer_ids": _offer_ids(offer_ids)}
    secret = (client_secret or "").strip()
    if len(secret) > SECRET_MAX or any(ch.isspace() for ch in secret):
        raise InvalidInput("This does not look like a client secret: paste its value, not its id.",
                           field="client_secret")
    if secret and GUID.fullmatch(secret):
        raise InvalidInput("This is a GUID, probably the secret's id: paste the secret's value (shown once, when the "
                           "secret is created).", field="client_secret")
    expires = _expiry(secret_expires_on, "secret_expires_on")
    row = connection(tenant, Marketplace.MICROSOFT)
    if not secret and (row is None or row.secret_ciphertext is None):
        raise InvalidInput("Enter the client secret.", field="client_secret")
    if secret and expires is None:
        raise InvalidInput("Enter the date the client secret expires (Microsoft Entra shows it beside the secret).",
                           field="secret_expires_on")
    row = row or _row(tenant, Marketplace.MICROSOFT)
    before = dict(row.settings or {})
    changed = [name for name, value in values.items() if before.get(name) != value]
    row.settings = {**before, **values}
    if secret:
        row.secret_ciphertext = seal(secret)
        changed.append("client_secret")
    if expires is not None and expires != row.secret_expires_at:
        row.secret_expires_at = expires
        changed.append("secret_expires_at")
    if {"client_secret", "secret_expires_at"} & set(changed):  # a new secret or date: warn about it afresh
        row.settings = {key: value for key, value in row.settings.items() if key != "secret_warnings"}
    return _saved(row, user, changed, tenant)


def _service_account_key(value: str) -> tuple[str, datetime | None]:
    """The key file's text, checked to be a STACKIT service-account key, and when it stops working (validUntil)."""
    text = (value or "").strip()
    if len(text) > KEY_MAX:
        raise InvalidInput("This is too long for a service-account key file.", field="service_account_key")
    try:
        key = json.loads(text)
    except ValueError:
        raise InvalidInput("Paste the whole service-account key file: the JSON the STACKIT Portal downloads when the "
                           "key is created.", field="service_account_key") from None
    credentials = key.get("credentials") if isinstance(key, dict) else None
    if not isinstance(credentials, dict) or not all(isinstance(credentials.get(name), str) and credentials[name]
                                                    for name in ("kid", "iss", "sub", "privateKey")):
        raise InvalidInput("This is not a STACKIT service-account key with its private key: it needs credentials "
                           "with kid, iss, sub and privateKey.", field="service_account_key")
    valid_until = None
    if isinstance(key.get("validUntil"), str):
        try:
            valid_until = datetime.fromisoformat(key["validUntil"].replace("Z", "+00:00")).astimezone(UTC)
        except ValueError:
            valid_until = None
    if valid_until is not None and valid_until <= clock_now():
        raise InvalidInput("This key has expired (validUntil has passed): create a new key for the service account.",
                           field="service_account_key")
    return json.dumps(key, separators=(",", ":")), valid_until


def save_stackit(*, tenant: TenantLike, actor: Actor, project_id: str, service_account_key: str = "",
                 ) -> MarketplaceConnection:
    """Connect the tenant to the STACKIT Marketplace: the vendor's project id and a service-account key (the JSON
    key file, sealed; a blank one keeps the stored key). Tenant admins only; nothing is saved when a value is
    refused."""
    user = require_admin(tenant, actor)
    project = _guid(project_id, "project_id", "vendor project id")
    row = connection(tenant, Marketplace.STACKIT)
    key_text = (service_account_key or "").strip()
    if not key_text and (row is None or row.secret_ciphertext is None):
        raise InvalidInput("Paste the service-account key file.", field="service_account_key")
    key, valid_until = _service_account_key(key_text) if key_text else (None, None)
    row = row or _row(tenant, Marketplace.STACKIT)
    before = dict(row.settings or {})
    changed = ["project_id"] if before.get("project_id") != project else []
    row.settings = {**before, "project_id": project}
    if key is not None:
        row.secret_ciphertext, row.secret_expires_at = seal(key), valid_until
        row.settings = {name: value for name, value in row.settings.items() if name != "secret_warnings"}
        changed.append("service_account_key")
    return _saved(row, user, changed, tenant)


def switch(*, tenant: TenantLike, actor: Actor, marketplace: Marketplace, enabled: bool) -> MarketplaceConnection:
    """Switch the tenant's own connection off (the marketplace's landings, webhooks and polls are refused, and the
    sandbox does not stand in) or on again; its settings are kept. NotFound without settings."""
    user = require_admin(tenant, actor)
    row = db.session.scalar(select(MarketplaceConnection).where(
        MarketplaceConnection.tenant_id == tenant.id, MarketplaceConnection.marketplace == marketplace)
        .with_for_update())
    if row is None:
        raise NotFound(f"There are no {marketplace.label} settings to switch: the sandbox serves it.")
    row.enabled = enabled
    return _saved(row, user, ["enabled" if enabled else "disabled"], tenant)


def disconnect(*, tenant: TenantLike, actor: Actor, marketplace: Marketplace) -> None:
    """Forget the tenant's settings for `marketplace`: it is served by the sandbox marketplace again."""
    require_admin(tenant, actor)
    row = connection(tenant, marketplace)
    if row is not None:
        db.session.delete(row)
    db.session.commit()
    log.info("tenant %s: %s marketplace settings removed by user %s", tenant.slug, marketplace.value, actor.user_id)


def secret_expiry_warning(tenant: TenantLike, *, now: datetime | None = None) -> str | None:
    """What an admin must hear about the tenant's marketplace secrets: one that has expired (activations and
    webhooks fail with it), or one that expires within SECRET_WARNING; None when all is well."""
    moment = now or clock_now()
    rows = db.session.execute(select(MarketplaceConnection.marketplace, MarketplaceConnection.secret_expires_at)
                              .where(MarketplaceConnection.tenant_id == tenant.id,
                                     MarketplaceConnection.secret_expires_at.is_not(None))
                              .order_by(MarketplaceConnection.secret_expires_at)).all()
    messages = [_warning(marketplace, expires_at, moment) for marketplace, expires_at in rows]
    found = [message for message in messages if message]
    return " ".join(found) or None


def _what(marketplace: Marketplace) -> str:
    return "Microsoft client secret" if marketplace is Marketplace.MICROSOFT else "STACKIT service-account key"


def _threshold(expires_at: datetime, moment: datetime) -> str | None:
    if expires_at <= moment:
        return "expired"
    if expires_at - moment <= SECRET_WARNING:
        return "expiring"
    return None


def _warning(marketplace: Marketplace, expires_at: datetime, moment: datetime) -> str | None:
    threshold = _threshold(expires_at, moment)
    if threshold == "expired":
        return (f"The {_what(marketplace)} expired on {expires_at:%Y-%m-%d}: {marketplace.label} purchases cannot be "
                "activated and its calls fail until you enter a new one.")
    if threshold == "expiring":
        days = max((expires_at - moment).days, 0)
        when = "today" if days == 0 else "tomorrow" if days == 1 else f"in {days} days"
        return (f"The {_what(marketplace)} expires {when} ({expires_at:%Y-%m-%d}): create a new one and enter it "
                "before then, or purchases cannot be activated.")
    return None


def warn_of_expiring_secrets() -> int:
    """Email every tenant's admins about a marketplace secret that expires within SECRET_WARNING, and again once
    it has expired: once per threshold and secret (a new secret or date starts over), however often this runs.
    Each connection is locked while it is handled (other workers skip it). Returns how many connections were told
    about."""
    moment = clock_now()
    ids = db.session.scalars(select(MarketplaceConnection.id).where(
        MarketplaceConnection.secret_expires_at.is_not(None),
        MarketplaceConnection.secret_expires_at <= moment + SECRET_WARNING)
        .order_by(MarketplaceConnection.id)).all()
    db.session.rollback()  # end the read; each connection gets a transaction of its own
    return sum(_warn(connection_id, moment) for connection_id in ids)


def _warn(connection_id: int, moment: datetime) -> int:
    row = db.session.scalar(select(MarketplaceConnection).where(MarketplaceConnection.id == connection_id)
                            .with_for_update(skip_locked=True))
    expires_at = row.secret_expires_at if row is not None else None
    threshold = _threshold(expires_at, moment) if expires_at is not None else None
    told = dict((row.settings or {}).get("secret_warnings") or {}) if row is not None else {}
    if row is None or expires_at is None or threshold is None or told.get(threshold) == expires_at.isoformat():
        db.session.rollback()
        return 0
    admins = db.session.scalars(select(User).where(User.tenant_id == row.tenant_id, User.role == Role.TENANT_ADMIN,
                                                   User.is_active.is_(True), User.deleted_at.is_(None))
                                .order_by(User.id)).all()
    message = _warning(row.marketplace, expires_at, moment)
    for admin in admins:
        notify(Event.MARKETPLACE_SECRET_EXPIRING, user=admin, marketplace=row.marketplace, what=_what(row.marketplace),
               expires_at=expires_at, expired=threshold == "expired", warning=message)
    row.settings = {**(row.settings or {}), "secret_warnings": {**told, threshold: expires_at.isoformat()}}
    db.session.commit()
    return 1


def settings_view(row: MarketplaceConnection | None) -> dict[str, Any]:
    """What the settings page shows of a connection: never the secret, only whether one is set and its expiry."""
    if row is None:
        return {}
    return {**{key: value for key, value in (row.settings or {}).items() if key != "secret_warnings"},
            "secret_set": row.secret_ciphertext is not None, "secret_expires_at": row.secret_expires_at,
            "updated_at": row.updated_at}
