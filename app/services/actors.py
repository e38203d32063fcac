"""Who is acting: every service takes one, and the subscription history records it.

An actor is a kind (`app.domain.policy.ActorKind`) and, for people, the user: a customer (with the
support user behind them while impersonating), a tenant admin, support; for the portal's own work, a job
name; for a marketplace, its name. `Actor(user)` derives the kind from the user's role.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.domain.accounts import Role
from app.domain.policy import ActorKind, Do, Verdict, decide
from app.models import Subscription, User
from app.services.errors import Forbidden, NotFound

_BY_ROLE = {Role.CUSTOMER: ActorKind.CUSTOMER, Role.TENANT_ADMIN: ActorKind.TENANT_ADMIN,
            Role.SUPPORT: ActorKind.SUPPORT}


@dataclass(frozen=True)
class Actor:
    user: User | None = None
    impersonator: User | None = None
    kind: ActorKind | None = None
    name: str = ""  # who, for actors without a user: the job ("retention"), the marketplace ("microsoft")

    def __post_init__(self) -> None:
        if self.kind is None:
            if self.user is None:
                raise ValueError("an actor without a user needs a kind")
            kind = ActorKind.SUPPORT_AS_CUSTOMER if self.impersonator else _BY_ROLE[self.user.role]
            object.__setattr__(self, "kind", kind)

    @classmethod
    def system(cls, job: str) -> Actor:
        """The portal itself, running `job`."""
        return cls(kind=ActorKind.SYSTEM, name=job)

    @classmethod
    def marketplace(cls, name: str) -> Actor:
        return cls(kind=ActorKind.MARKETPLACE, name=name)

    @property
    def user_id(self) -> int | None:
        return self.user.id if self.user else None

    @property
    def impersonator_id(self) -> int | None:
        return self.impersonator.id if self.impersonator else None

    def may(self, action: Do, subscription: Subscription) -> None:
        """Raise NotFound or Forbidden unless this actor may do `action` to `subscription` (of its tenant)."""
        verdict = decide(self.kind, action, owns=self.user_id is not None  # type: ignore[arg-type]
                         and subscription.user_id == self.user_id)
        if verdict is Verdict.NOT_FOUND:
            raise NotFound("There is no such subscription.")
        if verdict is Verdict.FORBIDDEN:
            raise Forbidden("You may not do this to this subscription.")
