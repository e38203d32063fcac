"""Demo data: two tenants with staff, a customer and a small catalogue. Safe to run any number of times.

Rows are looked up by their natural keys and created only when missing; what exists is left alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from app.clock import now
from app.domain.accounts import Role
from app.domain.api_tokens import Scope, format_scopes, new_token, token_hash
from app.domain.billing import UsageSource
from app.domain.catalogue import CatalogueState, ChangeRule, Interval, Provider
from app.domain.cloud_prices import selling_price
from app.domain.marketplaces import Marketplace
from app.domain.pricing import add_periods, current_period
from app.domain.subscriptions import SubscriptionStatus
from app.domain.usage import record_period
from app.extensions import db
from app.models import (
    ApiToken,
    BillingSettings,
    MarketplacePlanMapping,
    Plan,
    PlanLocation,
    PlanPrice,
    Product,
    ServiceType,
    Subscription,
    Tenant,
    TenantHost,
    UsageRecord,
    User,
)
from app.services import usage
from app.services.actors import Actor
from app.services.passwords import hash_password

DEMO_PASSWORDS = {
    Role.CUSTOMER: "demo-customer-pass",
    Role.TENANT_ADMIN: "demo-admin-pass",
    Role.SUPPORT: "demo-support-pass",
}

HETZNER_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Hetzner Cloud server",
    "type": "object",
    "additionalProperties": False,
    "required": ["serverType", "location", "image"],
    "properties": {
        "serverType": {"title": "Server type", "type": "string",
                       "enum": ["cx22", "cx32", "cx42", "cpx21", "cax11"]},
        "location": {"title": "Location", "type": "string",
                     "enum": ["fsn1", "nbg1", "hel1", "ash", "hil", "sin"]},
        "image": {"title": "Image", "type": "string", "enum": ["ubuntu-24.04", "debian-12", "rocky-9"]},
    },
}

DIGITALOCEAN_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "DigitalOcean droplet",
    "type": "object",
    "additionalProperties": False,
    "required": ["serverType", "region", "image"],
    "properties": {
        "serverType": {"title": "Droplet size", "type": "string",
                       "enum": ["s-1vcpu-1gb", "s-1vcpu-2gb", "s-2vcpu-4gb", "s-4vcpu-8gb"]},
        "region": {"title": "Region", "type": "string",
                   "enum": ["fra1", "ams3", "lon1", "nyc3", "sfo3", "sgp1"]},
        "image": {"title": "Image", "type": "string", "enum": ["ubuntu-24-04-x64", "debian-12-x64"]},
    },
}

# DigitalOcean-like metered prices: outgoing traffic beyond the 1,000 GB a month included, and snapshots.
METERED_PRICES: list[dict[str, Any]] = [
    {"metric": "traffic_gb", "label": "Outgoing traffic", "unit": "GB", "unit_price_minor": 1, "included": 1000},
    {"metric": "snapshot_gb", "label": "Snapshots", "unit": "GB-month", "unit_price_minor": 6},
]
METERED_KEY = "demo-metered-usage"  # the demo customer's metered subscription (its idempotency key)
METERED_MONTHS = 3  # past periods of usage history
LEGACY_KEY = "demo-legacy-plan"  # the demo customer's subscription to the deprecated Legacy plan

CLOUD_INIT = """#cloud-config
hostname: {{ hostname }}
fqdn: {{ fqdn }}
package_update: true
packages: [fail2ban, unattended-upgrades]
"""


@dataclass
class DemoSummary:
    created: list[str] = field(default_factory=list)

    def note(self, what: str) -> None:
        self.created.append(what)


def load_demo_data() -> DemoSummary:
    """Create whatever part of the demo data is missing, and commit."""
    summary = DemoSummary()
    nimbus = _tenant(summary, "default", "Nimbus Cloud", ["localhost", "127.0.0.1"])
    stratus = _tenant(summary, "stratus", "Stratus Hosting", ["stratus.localhost"])
    for tenant in (nimbus, stratus):
        _staff_and_customer(summary, tenant)
    _nimbus_catalogue(summary, nimbus)
    _stratus_catalogue(summary, stratus)
    _metered_usage(summary, nimbus)
    _legacy_subscription(summary, nimbus)
    _api_token(summary, nimbus)
    _marketplace_plans(summary, nimbus)
    _billing(summary, nimbus, "Nimbus Cloud GmbH", "Hauptstrasse 1\n10115 Berlin", "DE", "DE123456789", "NIM")
    _billing(summary, stratus, "Stratus Hosting Oy", "Mannerheimintie 1\n00100 Helsinki", "FI", "FI12345678", "STR")
    db.session.commit()
    return summary


# EU standard VAT rates in basis points, for the demo tenants (an operator sets its own, checked with its adviser);
# customers elsewhere ("*") are not charged VAT, and EU businesses abroad with a VAT id are reverse-charged.
DEMO_TAX_RATES = {
    "AT": 2000, "BE": 2100, "BG": 2000, "HR": 2500, "CY": 1900, "CZ": 2100, "DK": 2500, "EE": 2400, "FI": 2550,
    "FR": 2000, "DE": 1900, "GR": 2400, "HU": 2700, "IE": 2300, "IT": 2200, "LV": 2100, "LT": 2100, "LU": 1700,
    "MT": 1800, "NL": 2100, "PL": 2300, "PT": 2300, "RO": 2100, "SK": 2300, "SI": 2200, "ES": 2100, "SE": 2500,
    "*": 0,
}  # fmt: skip


def _billing(summary: DemoSummary, tenant: Tenant, seller: str, address: str, country: str, vat_id: str,
             prefix: str) -> None:
    """The tenant as the seller on its invoices, with its invoice prefix and VAT rates."""
    _get_or_add(summary, BillingSettings, f"{tenant.slug} billing settings", {"tenant_id": tenant.id},
                seller_name=seller, seller_address=address, seller_country=country, seller_vat_id=vat_id,
                invoice_prefix=prefix, tax_rates=DEMO_TAX_RATES, reverse_charge=True, payment_terms_days=0,
                retry_days=[3, 5, 7], suspend_after_days=14, grace_days=30)


def _api_token(summary: DemoSummary, tenant: Tenant) -> None:
    """A personal API token on the customer's account page (its secret is not kept: they create their own)."""
    customer = db.session.scalar(select(User).filter_by(tenant_id=tenant.id, email="customer@example.com"))
    if db.session.scalar(select(ApiToken.id).filter_by(user_id=customer.id, name="Deploy script")) is not None:
        return
    secret, lookup = new_token()
    db.session.add(ApiToken(tenant_id=tenant.id, user_id=customer.id, name="Deploy script", lookup=lookup,
                            secret_hash=token_hash(secret), scopes=format_scopes(frozenset({Scope.WRITE})),
                            created_at=now() - timedelta(days=3), expires_at=now() + timedelta(days=87),
                            last_used_at=now() - timedelta(hours=2)))
    summary.note(f"{tenant.slug} api token")


DEMO_MARKETPLACE_OFFER = "cloudportal-servers"
DEMO_MARKETPLACE_PLANS = {"standard": "standard-monthly", "pro": "team-monthly"}
"""The sandbox marketplaces' offer (Microsoft) and product (STACKIT), and the portal plan each of its plans buys."""


def _marketplace_plans(summary: DemoSummary, tenant: Tenant) -> None:
    """Both sandbox marketplaces sell the offer's plans as Nimbus's Standard and Team plans."""
    for marketplace in Marketplace:
        for external, slug in DEMO_MARKETPLACE_PLANS.items():
            plan = db.session.scalar(select(Plan).where(Plan.tenant_id == tenant.id, Plan.slug == slug))
            if plan is None:
                continue
            _get_or_add(summary, MarketplacePlanMapping, f"{marketplace.label} plan {external}",
                        {"tenant_id": tenant.id, "marketplace": marketplace, "offer_id": DEMO_MARKETPLACE_OFFER,
                         "external_plan_id": external}, plan_id=plan.id)


def _get_or_add(summary: DemoSummary, model: type, label: str, lookup: dict[str, Any], **values: Any) -> Any:
    row = db.session.scalar(select(model).filter_by(**lookup))
    if row is None:
        row = model(**lookup, **values)
        db.session.add(row)
        db.session.flush()
        summary.note(label)
    return row


def _tenant(summary: DemoSummary, slug: str, name: str, hostnames: list[str]) -> Tenant:
    tenant = _get_or_add(summary, Tenant, f"tenant {slug}", {"slug": slug}, name=name)
    for hostname in hostnames:
        _get_or_add(summary, TenantHost, f"host {hostname}", {"hostname": hostname}, tenant_id=tenant.id)
    return tenant


def _staff_and_customer(summary: DemoSummary, tenant: Tenant) -> None:
    people = [
        (Role.CUSTOMER, "customer@example.com", "Casey Customer"),
        (Role.TENANT_ADMIN, "admin@example.com", "Alex Admin"),
        (Role.SUPPORT, "support@example.com", "Sam Support"),
    ]
    for role, email, name in people:
        _get_or_add(summary, User, f"{tenant.slug} {role} {email}", {"tenant_id": tenant.id, "email": email},
                    name=name, role=role, password_hash=hash_password(DEMO_PASSWORDS[role]), email_verified_at=now())


def _service_type(summary: DemoSummary, tenant: Tenant, slug: str, name: str, provider: Provider,
                  schema: dict[str, Any]) -> ServiceType:
    return _get_or_add(summary, ServiceType, f"{tenant.slug} service type {slug}",
                       {"tenant_id": tenant.id, "slug": slug}, name=name, provider=provider,
                       config_schema=schema, cloud_init_template=CLOUD_INIT)


def _product(summary: DemoSummary, tenant: Tenant, slug: str, name: str, description: str,
             state: CatalogueState = CatalogueState.PUBLISHED) -> Product:
    return _get_or_add(summary, Product, f"{tenant.slug} product {slug}",
                       {"tenant_id": tenant.id, "slug": slug, "version": 1},
                       name=name, description=description, state=state)


def _plan(summary: DemoSummary, product: Product, service_type: ServiceType, slug: str, **values: Any) -> Plan:
    values.setdefault("state", CatalogueState.PUBLISHED)
    values.setdefault("currency", "EUR")
    return _get_or_add(summary, Plan, f"{product.slug} plan {slug}", {"product_id": product.id, "slug": slug},
                       tenant_id=product.tenant_id, service_type_id=service_type.id, **values)


# Hetzner's net monthly prices in EUR (what the cloud charges the operator), for the margin the admin sees.
HETZNER_COST = {"cx22": 379, "cx32": 680, "cx42": 1640, "cpx21": 755, "cax11": 379}
DEMO_MARKUP_BP = 2500
HETZNER_LOCATIONS = [("nbg1", 0), ("fsn1", 0), ("hel1", 0), ("ash", 100), ("hil", 100), ("sin", 200)]
DO_REGIONS = [("fra1", 0), ("ams3", 0), ("lon1", 0), ("nyc3", 0), ("sfo3", 0), ("sgp1", 0)]


def _offers(plan: Plan, prices: list[tuple[str, int]], locations: list[tuple[str, int]], images: list[str],
            costs: dict[str, int] | None = None, markup_bp: int | None = None) -> None:
    """The server types (with their prices), locations (with surcharges) and images `plan` offers, the first of
    each the default; added once, to a plan that has none yet."""
    if plan.prices:
        return
    plan.prices = [PlanPrice(server_type=kind, price_minor=price, cost_minor=(costs or {}).get(kind), sort=n,
                             markup_bp=markup_bp, is_default=n == 0) for n, (kind, price) in enumerate(prices)]
    plan.locations = [PlanLocation(location=where, surcharge_minor=surcharge, sort=n, is_default=n == 0)
                      for n, (where, surcharge) in enumerate(locations)]
    plan.images = images
    plan.price_minor = min(price for _, price in prices)
    geo = "region" if plan.service_type.provider is Provider.DIGITALOCEAN else "location"
    plan.config_defaults = {**plan.config_defaults, "serverType": prices[0][0], geo: locations[0][0],
                            "image": images[0]}


def _nimbus_catalogue(summary: DemoSummary, tenant: Tenant) -> None:
    hetzner = _service_type(summary, tenant, "hetzner-server", "Cloud server (Hetzner)", Provider.HETZNER,
                            HETZNER_SCHEMA)
    droplet = _service_type(summary, tenant, "do-droplet", "Droplet (DigitalOcean)", Provider.DIGITALOCEAN,
                            DIGITALOCEAN_SCHEMA)
    servers = _product(summary, tenant, "cloud-servers", "Cloud Servers",
                       "Dedicated-vCPU-class virtual servers in Germany, Finland, the US and Singapore.")
    hetzner_defaults = {"serverType": "cx22", "location": "nbg1", "image": "ubuntu-24.04"}
    images = ["ubuntu-24.04", "debian-12", "rocky-9"]
    trial = _plan(summary, servers, hetzner, "trial", name="Trial", price_minor=0, interval=Interval.MONTH,
                  sort_order=0, config_defaults=hetzner_defaults, cancellation_rule=ChangeRule.IMMEDIATE,
                  free_plan_limit=1, description="A small server to try things out, in Nuremberg.",
                  features=["2 vCPU, 4 GB RAM, 40 GB SSD", "Nuremberg only", "One per customer",
                            "Community support"])
    _offers(trial, [("cx22", 0)], [("nbg1", 0)], ["ubuntu-24.04", "debian-12"], HETZNER_COST)
    standard = [("cx22", 990), ("cax11", 990), ("cpx21", 1490), ("cx32", 1490), ("cx42", 2990)]
    plan = standard_plan = _plan(summary, servers, hetzner, "standard-monthly", name="Standard", price_minor=990,
                 interval=Interval.MONTH, sort_order=1, allow_customer_location_selection=True,
                 config_defaults=hetzner_defaults, description="Pick your location and server type.",
                 features=["Choose among 6 locations", "Daily backups", "Email support"])
    _offers(plan, standard, HETZNER_LOCATIONS, images, HETZNER_COST)
    plan = _plan(summary, servers, hetzner, "standard-yearly", name="Standard, yearly", price_minor=9900,
                 interval=Interval.YEAR, sort_order=2, allow_customer_location_selection=True,
                 config_defaults=hetzner_defaults, description="Two months free against monthly billing.",
                 features=["Choose among 6 locations", "Daily backups", "Email support", "2 months free"])
    _offers(plan, [(kind, price * 10) for kind, price in standard],
            [(where, surcharge * 10) for where, surcharge in HETZNER_LOCATIONS], images,
            {kind: cost * 12 for kind, cost in HETZNER_COST.items()})
    plan = _plan(summary, servers, hetzner, "team-monthly", name="Team", price_minor=2490, interval=Interval.MONTH,
                 sort_order=3, quantity_allowed=True, max_quantity=20, allow_customer_location_selection=True,
                 config_defaults={**hetzner_defaults, "serverType": "cx32"},
                 description="Several identical servers, priced per server.",
                 features=["Up to 20 servers", "Choose among 6 locations", "Priority support"])
    _offers(plan, [("cx32", 2490), ("cx42", 3990)], HETZNER_LOCATIONS, images, HETZNER_COST)
    # Priced by a cloud price import at cost plus 25 %: "Import cloud prices" on its page shows what Hetzner's
    # prices changed since, before it is published.
    plan = _plan(summary, servers, hetzner, "compute", name="Compute", price_minor=0, interval=Interval.MONTH,
                 sort_order=4, state=CatalogueState.DRAFT, allow_customer_location_selection=True,
                 config_defaults=hetzner_defaults, description="Hetzner's cost plus 25 %, in the EU.",
                 features=["Nuremberg, Falkenstein or Helsinki", "Email support"])
    _offers(plan, [(kind, selling_price(HETZNER_COST[kind], DEMO_MARKUP_BP)) for kind in ("cx22", "cx32", "cx42")],
            HETZNER_LOCATIONS[:3], images, HETZNER_COST, DEMO_MARKUP_BP)
    plan = _plan(summary, servers, hetzner, "legacy", name="Legacy", price_minor=590, interval=Interval.MONTH,
                 sort_order=9, state=CatalogueState.DEPRECATED, config_defaults=hetzner_defaults,
                 features=["Kept for existing customers"])
    _offers(plan, [("cx22", 590)], [("nbg1", 0)], ["ubuntu-24.04", "debian-12"], HETZNER_COST)
    # Deprecated with a migration target: its subscribers see "Migrate this subscription", and the catalogue's
    # lifecycle links offer to replace or retire it.
    if plan.migration_target_id is None:
        plan.migration_target_id = standard_plan.id
    droplets = _product(summary, tenant, "droplets", "Droplets",
                        "Simple virtual machines on DigitalOcean in Europe, America and Asia.")
    droplet_defaults = {"serverType": "s-1vcpu-1gb", "region": "fra1", "image": "ubuntu-24-04-x64"}
    droplet_images = ["ubuntu-24-04-x64", "debian-12-x64"]
    plan = _plan(summary, droplets, droplet, "basic-monthly", name="Basic droplet", price_minor=600,
                 interval=Interval.MONTH, sort_order=1, allow_customer_location_selection=True,
                 config_defaults=droplet_defaults, features=["1 vCPU, 1 or 2 GB RAM", "Choose among 6 regions"])
    _offers(plan, [("s-1vcpu-1gb", 600), ("s-1vcpu-2gb", 1200)], DO_REGIONS, droplet_images)
    plan = _plan(summary, droplets, droplet, "basic-yearly", name="Basic droplet, yearly", price_minor=6000,
                 interval=Interval.YEAR, sort_order=2, allow_customer_location_selection=True,
                 config_defaults=droplet_defaults, features=["1 vCPU, 1 or 2 GB RAM", "Choose among 6 regions",
                                                             "2 months free"])
    _offers(plan, [("s-1vcpu-1gb", 6000), ("s-1vcpu-2gb", 12000)], DO_REGIONS, droplet_images)
    plan = _plan(summary, droplets, droplet, "basic-metered", name="Basic droplet, metered", price_minor=400,
                 interval=Interval.MONTH, sort_order=3, allow_customer_location_selection=True,
                 config_defaults=droplet_defaults, usage_prices=METERED_PRICES,
                 description="A lower monthly price; traffic beyond 1,000 GB and snapshots are billed by use.",
                 features=["1 vCPU, 1 GB RAM", "1,000 GB outgoing traffic a month included", "Choose among 6 regions"])
    _offers(plan, [("s-1vcpu-1gb", 400)], DO_REGIONS, droplet_images)
    plan = _plan(summary, droplets, droplet, "general-monthly", name="General purpose droplet", price_minor=2400,
                 interval=Interval.MONTH, sort_order=4, allow_customer_location_selection=True,
                 config_defaults={**droplet_defaults, "serverType": "s-2vcpu-4gb"},
                 features=["2 vCPU, 4 GB RAM or 4 vCPU, 8 GB RAM", "Choose among 6 regions"])
    _offers(plan, [("s-2vcpu-4gb", 2400), ("s-4vcpu-8gb", 4800)], DO_REGIONS, droplet_images)
    plan = _plan(summary, droplets, droplet, "performance-draft", name="Performance (coming soon)",
                 price_minor=2400, interval=Interval.MONTH, sort_order=5, state=CatalogueState.DRAFT,
                 config_defaults={**droplet_defaults, "serverType": "s-2vcpu-4gb"},
                 features=["2 or 4 vCPU, 4 or 8 GB RAM"])
    _offers(plan, [("s-2vcpu-4gb", 2400), ("s-4vcpu-8gb", 4800)], DO_REGIONS, droplet_images)


def _stratus_catalogue(summary: DemoSummary, tenant: Tenant) -> None:
    hetzner = _service_type(summary, tenant, "vps", "VPS (Hetzner)", Provider.HETZNER, HETZNER_SCHEMA)
    vps = _product(summary, tenant, "stratus-vps", "Stratus VPS", "Virtual private servers in Helsinki.")
    defaults = {"serverType": "cx22", "location": "hel1", "image": "debian-12"}
    plan = _plan(summary, vps, hetzner, "vps-s", name="VPS S", price_minor=450, interval=Interval.MONTH,
                 config_defaults=defaults, features=["Helsinki", "Debian 12"])
    _offers(plan, [("cx22", 450)], [("hel1", 0)], ["debian-12"], HETZNER_COST)
    plan = _plan(summary, vps, hetzner, "vps-m", name="VPS M", price_minor=890, interval=Interval.MONTH,
                 sort_order=1, config_defaults={**defaults, "serverType": "cx32"}, features=["Helsinki", "Debian 12"])
    _offers(plan, [("cx32", 890)], [("hel1", 0)], ["debian-12"], HETZNER_COST)


def _metered_usage(summary: DemoSummary, tenant: Tenant) -> None:
    """The demo customer's metered droplet, running for three months and a bit, with daily traffic and monthly
    snapshots. Made once, with the subscription: loading the demo again adds nothing.

    The past periods' usage is history, stored as it would have been recorded then (the service takes usage of
    open periods only); this period's usage is recorded through the service. The next billing run bills the
    past periods' usage.
    """
    if db.session.scalar(select(Subscription.id).where(Subscription.tenant_id == tenant.id,
                                                       Subscription.idempotency_key == METERED_KEY)):
        return
    customer = db.session.scalar(select(User).where(User.tenant_id == tenant.id,
                                                    User.email == "customer@example.com"))
    plan = db.session.scalar(select(Plan).where(Plan.tenant_id == tenant.id, Plan.slug == "basic-metered"))
    moment = now()
    activated = add_periods((moment - timedelta(days=10)).replace(minute=0, second=0, microsecond=0),
                            Interval.MONTH, -METERED_MONTHS)
    start, end = current_period(activated, Interval.MONTH, moment)
    subscription = Subscription(
        tenant_id=tenant.id, user_id=customer.id, plan_id=plan.id, status=SubscriptionStatus.ACTIVE, quantity=1,
        price_minor=plan.price_minor, currency=plan.currency, interval=plan.interval,
        requested_config=dict(plan.config_defaults), idempotency_key=METERED_KEY, activated_at=activated,
        current_period_start=start, current_period_end=end,
    )
    plan.subscription_count += 1
    db.session.add(subscription)
    db.session.flush()
    summary.note(f"{tenant.slug} metered subscription with usage")
    for day in range((start - activated).days):
        _history(subscription, "traffic_gb", _traffic_gb(activated + timedelta(days=day)),
                 activated + timedelta(days=day, hours=23), f"demo-traffic-{activated + timedelta(days=day):%Y-%m-%d}")
    for month in range(METERED_MONTHS):
        period_end = add_periods(activated, Interval.MONTH, month + 1)
        _history(subscription, "snapshot_gb", 40 + 10 * month, period_end - timedelta(hours=1),
                 f"demo-snapshots-{period_end:%Y-%m}")
    db.session.commit()
    actor = Actor.system("demo")
    day = start
    while day + timedelta(days=1) <= moment:
        usage.record(tenant=tenant, actor=actor, subscription_id=subscription.id, metric="traffic_gb",
                     quantity=_traffic_gb(day), recorded_at=day + timedelta(hours=23),
                     idempotency_key=f"demo-traffic-{day:%Y-%m-%d}", source=UsageSource.DEMO)
        day += timedelta(days=1)


def _legacy_subscription(summary: DemoSummary, tenant: Tenant) -> None:
    """The demo customer's subscription to the deprecated Legacy plan, ten days into its month, so its page offers
    "Migrate this subscription" to Standard (the server type and location it has are kept, at Standard's price
    for them). Made once; it has no server at the cloud, as the sandbox clouds start empty."""
    if db.session.scalar(select(Subscription.id).where(Subscription.tenant_id == tenant.id,
                                                       Subscription.idempotency_key == LEGACY_KEY)):
        return
    customer = db.session.scalar(select(User).where(User.tenant_id == tenant.id,
                                                    User.email == "customer@example.com"))
    plan = db.session.scalar(select(Plan).where(Plan.tenant_id == tenant.id, Plan.slug == "legacy"))
    if customer is None or plan is None:
        return
    activated = (now() - timedelta(days=10)).replace(minute=0, second=0, microsecond=0)
    start, end = current_period(activated, Interval.MONTH, now())
    db.session.add(Subscription(
        tenant_id=tenant.id, user_id=customer.id, plan_id=plan.id, status=SubscriptionStatus.ACTIVE, quantity=1,
        price_minor=plan.price_minor, currency=plan.currency, interval=plan.interval,
        requested_config=dict(plan.config_defaults), idempotency_key=LEGACY_KEY, activated_at=activated,
        current_period_start=start, current_period_end=end))
    plan.subscription_count += 1
    db.session.commit()
    summary.note(f"{tenant.slug} subscription to the deprecated Legacy plan")


def _history(subscription: Subscription, metric: str, quantity: int, at: datetime, key: str) -> None:
    assert subscription.activated_at is not None
    period_start, period_end = record_period(subscription.activated_at, subscription.interval, at)
    db.session.add(UsageRecord(tenant_id=subscription.tenant_id, subscription_id=subscription.id, metric=metric,
                               quantity=quantity, recorded_at=at, idempotency_key=key, source=UsageSource.DEMO,
                               period_start=period_start, period_end=period_end, created_at=at))


def _traffic_gb(day: datetime) -> int:
    """A day's outgoing traffic: 25 to 65 GB, busier on weekdays, the same every time for the same day."""
    weekday = day.weekday() < 5
    return (25 if weekday else 15) + (day.toordinal() * 37) % 41
