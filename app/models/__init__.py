"""All models, importable from one place (Alembic and the shell need them registered)."""

from app.models.access import SshKey
from app.models.api import ApiToken, IdempotencyKey
from app.models.billing import (
    BalanceEntry,
    BillingSettings,
    Charge,
    CreditNote,
    Invoice,
    InvoiceSequence,
    Payment,
    PaymentCustomer,
    PaymentMethod,
    PaymentSetup,
    UsageRecord,
    WebhookEvent,
)
from app.models.catalogue import (
    CatalogueChange,
    Plan,
    PlanLocation,
    PlanPrice,
    PlanPriceChange,
    Product,
    ServiceType,
)
from app.models.catalogue_operations import CatalogueOperation, OperationOutcome, OperationStatus, Outcome
from app.models.credentials import CloudCredential
from app.models.email import EmailMessage
from app.models.impersonation import EndReason, Impersonation, ImpersonationAction
from app.models.jobs import JobClaim, JobRun, JobTrigger
from app.models.marketplace import (
    MarketplaceConnection,
    MarketplaceOperation,
    MarketplacePlanMapping,
    MarketplaceSubscription,
)
from app.models.subscription import (
    Backorder,
    ScheduledPlanChange,
    Subscription,
    SubscriptionEvent,
    SubscriptionItem,
)
from app.models.tenant import Tenant, TenantHost, TenantLike, TenantRef
from app.models.user import AccountToken, CustomerProfile, User, UserSession

__all__ = [
    "AccountToken",
    "ApiToken",
    "Backorder",
    "BalanceEntry",
    "BillingSettings",
    "CatalogueChange",
    "CatalogueOperation",
    "Charge",
    "CloudCredential",
    "CreditNote",
    "CustomerProfile",
    "EmailMessage",
    "EndReason",
    "IdempotencyKey",
    "Impersonation",
    "ImpersonationAction",
    "Invoice",
    "InvoiceSequence",
    "JobClaim",
    "JobRun",
    "JobTrigger",
    "MarketplaceConnection",
    "MarketplaceOperation",
    "MarketplacePlanMapping",
    "MarketplaceSubscription",
    "OperationOutcome",
    "OperationStatus",
    "Outcome",
    "Payment",
    "PaymentCustomer",
    "PaymentMethod",
    "PaymentSetup",
    "Plan",
    "PlanLocation",
    "PlanPrice",
    "PlanPriceChange",
    "Product",
    "ScheduledPlanChange",
    "ServiceType",
    "SshKey",
    "Subscription",
    "SubscriptionEvent",
    "SubscriptionItem",
    "Tenant",
    "TenantHost",
    "TenantLike",
    "TenantRef",
    "UsageRecord",
    "User",
    "UserSession",
    "WebhookEvent",
]
