"""The demo data command: complete, and safe to run twice."""

from __future__ import annotations

from sqlalchemy import func, select

from app.domain.accounts import Role
from app.domain.catalogue import Provider
from app.extensions import db
from app.models import Plan, ServiceType, Tenant, User
from app.services.demo import DEMO_PASSWORDS
from tests.helpers import post_form


def count(model) -> int:  # type: ignore[no-untyped-def]
    return db.session.scalar(select(func.count()).select_from(model))


def test_demo_data_loads_once(runner):
    first = runner.invoke(args=["demo-data"])
    assert first.exit_code == 0 and "rows created" in first.output
    counts = [count(m) for m in (Tenant, User, Plan, ServiceType)]
    second = runner.invoke(args=["demo-data"])
    assert second.exit_code == 0 and "already loaded" in second.output
    assert [count(m) for m in (Tenant, User, Plan, ServiceType)] == counts


def test_demo_data_has_what_the_readme_promises(runner, app):
    runner.invoke(args=["demo-data"])
    tenants = db.session.scalars(select(Tenant).order_by(Tenant.id)).all()
    assert [t.slug for t in tenants] == ["default", "stratus"]
    for tenant in tenants:
        roles = db.session.scalars(select(User.role).where(User.tenant_id == tenant.id)).all()
        assert sorted(roles) == sorted(Role)
    providers = set(db.session.scalars(select(ServiceType.provider)).all())
    assert {Provider.HETZNER, Provider.DIGITALOCEAN} <= providers
    plans = db.session.scalars(select(Plan).where(Plan.tenant_id == tenants[0].id)).all()
    assert any(p.is_free for p in plans) and any(not p.is_free for p in plans)
    assert {p.interval for p in plans} == {"month", "year"}
    for service_type in db.session.scalars(select(ServiceType)):
        assert service_type.config_schema["properties"]["serverType"]["enum"]


def test_demo_accounts_log_in_with_the_readme_passwords(runner, app, client):
    runner.invoke(args=["demo-data"])
    for role, home in ((Role.CUSTOMER, "/"), (Role.TENANT_ADMIN, "/admin/"), (Role.SUPPORT, "/support/")):
        email = {Role.CUSTOMER: "customer", Role.TENANT_ADMIN: "admin", Role.SUPPORT: "support"}[role]
        response = post_form(client, "/login", {"email": f"{email}@example.com", "password": DEMO_PASSWORDS[role]})
        assert response.headers["Location"] == home
        post_form(client, "/logout")


def test_the_demo_customer_has_a_metered_subscription_with_usage_once(runner, app):
    from app.domain.usage import metered_prices
    from app.models import Subscription, UsageRecord
    from app.services import usage

    runner.invoke(args=["demo-data"])
    subscription = db.session.scalar(select(Subscription).where(Subscription.idempotency_key == "demo-metered-usage"))
    assert [price.metric for price in metered_prices(subscription.plan.usage_prices)] == ["traffic_gb", "snapshot_gb"]
    assert subscription.user.email == "customer@example.com"
    records = count(UsageRecord)
    periods = set(db.session.scalars(select(UsageRecord.period_start)))
    assert records > 80 and len(periods) >= 3
    runner.invoke(args=["demo-data"])
    assert count(UsageRecord) == records
    billed = usage.bill_closed_periods(subscription.current_period_start)
    assert int(billed.split()[0]) >= 3  # snapshots each month, traffic when beyond the 1,000 GB included


def test_every_demo_plan_offers_server_types_locations_and_images_within_its_schema(runner, app):
    from app.domain.plan_offers import offer_problems

    runner.invoke(args=["demo-data"])
    plans = db.session.scalars(select(Plan)).all()
    for plan in plans:
        offers = plan.offers
        assert offers.prices and offers.locations and offers.images, plan.slug
        assert offer_problems(plan.service_type.config_schema, offers) == {}, plan.slug
        assert plan.price_minor == offers.lowest_price, plan.slug
        defaults = plan.config_defaults
        assert defaults["serverType"] == next(p.server_type for p in offers.prices if p.is_default)
        assert defaults["image"] in offers.images
    trial = next(p for p in plans if p.slug == "trial")
    assert [(p.server_type, p.price_minor) for p in trial.prices] == [("cx22", 0)]
    assert trial.free_plan_limit == 1 and trial.is_free
    basic = next(p for p in plans if p.slug == "basic-monthly")
    assert "s-4vcpu-8gb" not in {p.server_type for p in basic.prices}
    stratus = [p for p in plans if p.slug in ("vps-s", "vps-m")]
    assert all(p.images == ["debian-12"] for p in stratus)


def test_the_demo_customers_legacy_subscription_migrates_to_standard_keeping_its_server_type_and_location(
        runner, app):
    from app.domain.plan_changes import ChangeAction
    from app.models import Subscription
    from app.services import plan_changes
    from app.services.actors import Actor
    from tests import factories

    runner.invoke(args=["demo-data"])
    runner.invoke(args=["demo-data"])
    legacy = db.session.scalars(select(Subscription).join(Subscription.plan).where(Plan.slug == "legacy")).all()
    assert len(legacy) == 1 and legacy[0].user.email == "customer@example.com"
    subscription = legacy[0]
    factories.payment_method(subscription.user.tenant, subscription.user)
    proposal = plan_changes.preview(tenant=subscription.user.tenant, actor=Actor(subscription.user),
                                    subscription_id=subscription.id, action=ChangeAction.MIGRATE)
    found = proposal.preview
    assert proposal.target.slug == "standard-monthly"
    assert (found.target.server_type, proposal.location, found.resize_to) == ("cx22", "nbg1", None)
    assert (found.current_price.amount, found.new_price.amount) == (590, 990)  # Standard's price for cx22 in nbg1
    assert found.immediate and found.due_now.amount > 0
