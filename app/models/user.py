"""Users of a tenant, their server-side login sessions and their customer profiles."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.domain.accounts import AccountStanding, Role, TokenPurpose
from app.extensions import db
from app.models.base import Timestamps, UTCDateTime, enum_type
from app.models.tenant import Tenant


class User(AccountStanding, Timestamps, db.Model):
    __tablename__ = "users"
    __table_args__ = (
        UniqueConstraint("tenant_id", "email"),
        # Staff search (app/selectors/customers.py): walks one tenant's customers in name order, and holds the
        # email too, so a contains-search filters on the index alone and reads only the rows it shows.
        Index("ix_users_tenant_role_name_id_email", "tenant_id", "role", "name", "id", "email"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    email: Mapped[str] = mapped_column(String(254))
    name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[Role] = mapped_column(enum_type(Role, "role"), default=Role.CUSTOMER)
    is_active: Mapped[bool] = mapped_column(default=True)
    # None until the address is confirmed through the link sent to it (registration).
    email_verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The optional notifications (app/domain/notifications.py) this user turned off, by event name.
    email_opt_outs: Mapped[list[str]] = mapped_column(JSON, default=list, server_default="[]")
    # Account deletion: when the customer deleted it, when its personal data is purged, and when it was.
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    purge_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    purged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    tenant: Mapped[Tenant] = relationship()
    profile: Mapped[CustomerProfile | None] = relationship(back_populates="user", uselist=False,
                                                          foreign_keys="CustomerProfile.user_id")

    # Flask-Login protocol. The id Flask-Login keeps in the cookie is the server-side session token,
    # so logging out, disabling the account or changing the password can end a session for good.
    session_token = None  # set per request; not a column

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def is_anonymous(self) -> bool:
        return False

    def get_id(self) -> str | None:
        return self.session_token

    def __repr__(self) -> str:
        return f"<User {self.id} {self.role}>"


class UserSession(db.Model):
    """One login of one user on one browser; revoked at logout."""

    __tablename__ = "user_sessions"

    token: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    remote_addr: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(String(255))
    # Set when support opened this session to act as the user (see app/services/impersonation.py).
    # CASCADE: an impersonation session never outlives its audit record as a plain login of the customer.
    impersonation_id: Mapped[int | None] = mapped_column(
        ForeignKey("impersonations.id", ondelete="CASCADE"), index=True
    )

    user: Mapped[User] = relationship()


class CustomerProfile(Timestamps, db.Model):
    """The billing identity a customer must complete before ordering."""

    __tablename__ = "customer_profiles"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), unique=True)
    full_name: Mapped[str] = mapped_column(String(200), default="")
    billing_email: Mapped[str] = mapped_column(String(254), default="")
    company: Mapped[str] = mapped_column(String(200), default="")
    address: Mapped[str] = mapped_column(String(300), default="")
    postal_code: Mapped[str] = mapped_column(String(20), default="")
    city: Mapped[str] = mapped_column(String(120), default="")
    country: Mapped[str] = mapped_column(String(2), default="")
    # A business's VAT id: with one from another EU country than the seller's, the invoice is reverse-charged.
    vat_id: Mapped[str] = mapped_column(String(20), default="", server_default="")
    # Who saved it last: the customer, or support acting for them (then both are kept).
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    updated_by_impersonator_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))

    user: Mapped[User] = relationship(back_populates="profile", foreign_keys=[user_id])

    @property
    def is_complete(self) -> bool:
        return all((self.full_name, self.billing_email, self.address, self.city, self.country))


class AccountToken(db.Model):
    """A single-use link sent by email: reset a password, or confirm an address. Only its hash is kept; it
    works for its user in its tenant, until it expires or is used."""

    __tablename__ = "account_tokens"
    __table_args__ = (Index("ix_account_tokens_user_purpose", "user_id", "purpose"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    purpose: Mapped[TokenPurpose] = mapped_column(enum_type(TokenPurpose, "token_purpose"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 hex of the secret in the link
    new_email: Mapped[str | None] = mapped_column(String(254))  # VERIFY_EMAIL for an email change
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship()
