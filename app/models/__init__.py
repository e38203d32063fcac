"""All models, importable from one place (Alembic and the shell need them registered)."""

from app.models.billing import Charge
from app.models.catalogue import Plan, Product, ServiceType
from app.models.credentials import CloudCredential
from app.models.impersonation import EndReason, Impersonation, ImpersonationAction
from app.models.jobs import JobRun, JobTrigger
from app.models.subscription import Backorder, Subscription, SubscriptionEvent, SubscriptionItem
from app.models.tenant import Tenant, TenantHost, TenantLike, TenantRef
from app.models.user import CustomerProfile, User, UserSession

__all__ = [
    "Backorder",
    "Charge",
    "CloudCredential",
    "CustomerProfile",
    "EndReason",
    "Impersonation",
    "ImpersonationAction",
    "JobRun",
    "JobTrigger",
    "Plan",
    "Product",
    "ServiceType",
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
