"""Who may do what to a subscription: one table, keyed by the kind of actor and the action.

Finding an object (always by tenant) and permitting an action are separate steps: services find the
subscription in the tenant first, then ask `decide`. Actors bound to an owner (a customer, support acting
as a customer, an API token) see only their own subscriptions: anyone else's answers "not found", exactly
as if it did not exist. Staff and the portal's own actors act on any subscription of their tenant, each
within its row of the table.
"""

from __future__ import annotations

from enum import StrEnum
from types import MappingProxyType
from typing import Final


class ActorKind(StrEnum):
    CUSTOMER = "customer"
    SUPPORT_AS_CUSTOMER = "support_as_customer"  # support impersonating the customer
    TENANT_ADMIN = "tenant_admin"
    SUPPORT = "support"  # support staff as themselves (reads only)
    SYSTEM = "system"  # the portal's jobs: renewal, expiry, grace, retention, reconciler
    MARKETPLACE = "marketplace"  # a marketplace webhook or poll
    API_TOKEN = "api_token"  # noqa: S105  (a personal API token, acting as its user within its scopes)

    @property
    def label(self) -> str:
        return _KIND_LABELS[self]


class Do(StrEnum):
    """What an actor asks to do to a subscription (and its servers)."""

    VIEW = "view"
    CANCEL = "cancel"
    RESUME = "resume"
    POWER = "power"
    REBUILD = "rebuild"  # reinstall a server from an image
    ROOT_PASSWORD = "root_password"  # noqa: S105 (an action): see the root password once, or reset it
    SWITCH_BACKORDER = "switch_backorder"
    CHANGE_PLAN = "change_plan"  # another plan or quantity, or the plan's migration target
    SUSPEND = "suspend"
    REINSTATE = "reinstate"
    EXTEND_RETENTION = "extend_retention"
    RUN_LIFECYCLE = "run_lifecycle"  # expire, renew, grace end, retention: the clock's own work


class Verdict(StrEnum):
    ALLOW = "allow"
    NOT_FOUND = "not_found"  # an owner-bound actor and someone else's subscription
    FORBIDDEN = "forbidden"


_K, _D = ActorKind, Do
_CUSTOMER_RIGHTS: Final = frozenset({_D.VIEW, _D.CANCEL, _D.RESUME, _D.POWER, _D.REBUILD, _D.ROOT_PASSWORD,
                                     _D.SWITCH_BACKORDER, _D.CHANGE_PLAN})
# Only the customer, as themselves, sees a root password or wipes a server; support acting for them does not.
_OWNER_ONLY: Final = frozenset({_D.REBUILD, _D.ROOT_PASSWORD})

PERMISSIONS: Final = MappingProxyType({
    _K.CUSTOMER: _CUSTOMER_RIGHTS,
    _K.SUPPORT_AS_CUSTOMER: _CUSTOMER_RIGHTS - _OWNER_ONLY,
    _K.API_TOKEN: _CUSTOMER_RIGHTS,
    _K.TENANT_ADMIN: frozenset({_D.VIEW, _D.CANCEL, _D.SUSPEND, _D.REINSTATE, _D.EXTEND_RETENTION}),
    _K.SUPPORT: frozenset({_D.VIEW}),
    _K.SYSTEM: frozenset({_D.VIEW, _D.CANCEL, _D.SUSPEND, _D.REINSTATE, _D.RUN_LIFECYCLE}),
    _K.MARKETPLACE: frozenset({_D.VIEW, _D.CANCEL, _D.SUSPEND, _D.REINSTATE}),
})
"""Each kind of actor, and the actions it may take on a subscription of its tenant."""

OWNER_BOUND: Final = frozenset({_K.CUSTOMER, _K.SUPPORT_AS_CUSTOMER, _K.API_TOKEN})
"""Kinds that act only on their own (their user's) subscriptions."""

_KIND_LABELS: Final = MappingProxyType({
    _K.CUSTOMER: "customer",
    _K.SUPPORT_AS_CUSTOMER: "support for the customer",
    _K.TENANT_ADMIN: "tenant admin",
    _K.SUPPORT: "support",
    _K.SYSTEM: "the portal",
    _K.MARKETPLACE: "marketplace",
    _K.API_TOKEN: "API token",
})


def decide(kind: ActorKind, action: Do, *, owns: bool) -> Verdict:
    """May an actor of `kind` do `action` to a subscription of its tenant (`owns`: its user's own)?"""
    if kind in OWNER_BOUND and not owns:
        return Verdict.NOT_FOUND
    return Verdict.ALLOW if action in PERMISSIONS[kind] else Verdict.FORBIDDEN
