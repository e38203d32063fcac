"""All models, importable from one place (Alembic and the shell need them registered)."""

from app.models.access import SshKey
from app.models.billing import Charge
from app.models.catalogue import Plan, Product, ServiceType
from app.models.credentials import CloudCredential
from app.models.email import EmailMessage
from app.models.impersonation import EndReason, Impersonation, ImpersonationAction
from app.models.jobs import JobClaim, JobRun, JobTrigger
from app.models.subscription import Backorder, Subscription, SubscriptionEvent, SubscriptionItem
from app.models.tenant import Tenant, TenantHost, TenantLike, TenantRef
from app.models.user import AccountToken, CustomerProfile, User, UserSession

__all__ = [
    "AccountToken",
    "Backorder",
    "Charge",
    "CloudCredential",
    "CustomerProfile",
    "EmailMessage",
    "EndReason",
    "Impersonation",
    "ImpersonationAction",
    "JobClaim",
    "JobRun",
    "JobTrigger",
    "Plan",
    "Product",
    "ServiceType",
    "SshKey",
    "Subscription",
    "SubscriptionEvent",
    "SubscriptionItem",
    "Tenant",
    "TenantHost",
    "TenantLike",
    "TenantRef",
    "User",
    "UserSession",
]
