"""The catalogue's lifecycle service: every transition audited, replace and retire as tracked operations that
touch each subscription once, even when stopped half-way."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from app.clock import now
from app.domain.billing import ChargeKind
from app.domain.catalogue import CatalogueState
from app.domain.notifications import EmailStatus
from app.domain.plan_lifecycle import CatalogueAction, move_charge
from app.domain.subscriptions import ItemStatus, SubscriptionStatus
from app.extensions import db
from app.models import (
    CatalogueOperation,
    Charge,
    EmailMessage,
    OperationStatus,
    Outcome,
    Plan,
    PlanLocation,
    PlanPrice,
    Product,
    Subscription,
    SubscriptionEvent,
    Tenant,
)
from app.selectors import catalogue_operations as selectors
from app.services import catalogue_lifecycle as service
from app.services.actors import Actor
from app.services.errors import Forbidden, InvalidInput, NotFound
from tests import factories


def only_cx32(plan: Plan) -> Plan:
    """A target that offers cx32 alone: its subscribers on another type are resized to it."""
    plan.prices = [PlanPrice(server_type="cx32", price_minor=plan.price_minor, is_default=True)]
    db.session.commit()
    return plan


@pytest.fixture
def boss(admin) -> Actor:  # type: ignore[no-untyped-def]
    return Actor(admin)


@pytest.fixture
def old(tenant) -> Product:  # type: ignore[no-untyped-def]
    return factories.product(tenant, slug="web", name="Web")


def subscribers(tenant, plan: Plan, n: int, **values) -> list[Subscription]:  # type: ignore[no-untyped-def]
    users = [factories.user(tenant) for _ in range(2)]
    start = now() - timedelta(days=15)
    return [factories.subscription(tenant, users[i % 2], plan, current_period_start=start,
                                   current_period_end=start + timedelta(days=30), **values) for i in range(n)]


def outcomes(operation_id: int) -> list[selectors.OutcomeRow]:
    """What the operation did to each subscription, as its page shows it to the admin (a replace's moves are read
    from their events and charges, a retire's from its outcome rows)."""
    operation = db.session.get(CatalogueOperation, operation_id)
    tenant = db.session.get(Tenant, operation.tenant_id)
    return selectors.outcomes_page(tenant, operation_id, per_page=1000).rows


# --- single transitions ------------------------------------------------------------------------------------------

def test_a_plan_is_published_only_with_offers_its_schema_allows(tenant, boss, old, clock):
    """The one publish path keeps the editing page's rule: offers outside the service type's choices (the schema
    may have changed since) are refused, for the plan and for the drafts a product's publish takes along."""
    draft = factories.plan(tenant, product_=old, state=CatalogueState.DRAFT)
    draft.prices = [PlanPrice(server_type="cx99", price_minor=450, is_default=True)]
    db.session.commit()
    with pytest.raises(InvalidInput, match=r"Fix the offers of .*cx99"):
        service.publish_plan(tenant=tenant, actor=boss, plan_id=draft.id)
    product = factories.product(tenant, state=CatalogueState.DRAFT)
    draft.product_id = product.id
    db.session.commit()
    with pytest.raises(InvalidInput, match="cx99"):
        service.publish_product(tenant=tenant, actor=boss, product_id=product.id)
    db.session.expire_all()
    assert (draft.state, product.state) == (CatalogueState.DRAFT, CatalogueState.DRAFT)
    assert db.session.scalar(select(func.count()).select_from(CatalogueOperation)) == 0


def test_publish_deprecate_and_targets_are_audited_with_who_and_what(tenant, boss, old, admin, clock):
    draft = factories.plan(tenant, product_=old, state=CatalogueState.DRAFT)
    target = factories.plan(tenant)
    service.publish_plan(tenant=tenant, actor=boss, plan_id=draft.id)
    assert draft.state is CatalogueState.PUBLISHED
    service.set_target(tenant=tenant, actor=boss, plan_id=draft.id, target_id=target.id)
    assert draft.state is CatalogueState.PUBLISHED and draft.migration_target_id == target.id
    service.set_target(tenant=tenant, actor=boss, plan_id=draft.id, target_id=None)
    assert draft.migration_target_id is None
    factories.subscription(tenant, factories.user(tenant), draft)
    service.set_target(tenant=tenant, actor=boss, plan_id=draft.id, target_id=target.id, deprecate=True)
    assert draft.state is CatalogueState.DEPRECATED
    assert db.session.scalar(select(func.count()).select_from(EmailMessage)
                             .where(EmailMessage.event == "plan_deprecated")) == 1
    kinds = [(o.kind, o.actor_id, o.plan_ids, o.status) for o in db.session.scalars(
        select(CatalogueOperation).order_by(CatalogueOperation.id))]
    assert kinds == [(k, admin.id, [draft.id], OperationStatus.FINISHED) for k in (
        CatalogueAction.PUBLISH, CatalogueAction.SET_TARGET, CatalogueAction.CLEAR_TARGET, CatalogueAction.DEPRECATE)]


def test_refused_transitions_change_nothing_and_write_no_audit(tenant, boss, old):
    published = factories.plan(tenant, product_=old)
    draft = factories.plan(tenant, state=CatalogueState.DRAFT)
    usd = factories.plan(tenant, currency="USD")
    cases = [
        (service.publish_plan, {"plan_id": published.id}, "published already"),
        (service.deprecate_plan, {"plan_id": draft.id}, "publish it first"),
        (service.set_target, {"plan_id": published.id, "target_id": draft.id}, "must be a published plan"),
        (service.set_target, {"plan_id": published.id, "target_id": usd.id}, "currency"),
        (service.set_target, {"plan_id": published.id, "target_id": published.id}, "its own"),
        (service.start_retire, {"plan_ids": [draft.id]}, "publish it first"),
    ]
    for call, arguments, message in cases:
        with pytest.raises(InvalidInput, match=message):
            call(tenant=tenant, actor=boss, **arguments)
    assert published.state is CatalogueState.PUBLISHED and published.migration_target_id is None
    assert db.session.scalar(select(func.count()).select_from(CatalogueOperation)) == 0


def test_only_the_tenants_admins_may_and_other_tenants_plans_are_not_found(tenant, other_tenant, customer, old):
    plan = factories.plan(tenant, product_=old)
    with pytest.raises(Forbidden):
        service.deprecate_plan(tenant=tenant, actor=Actor(customer), plan_id=plan.id)
    stranger = factories.user(other_tenant, role=factories.Role.TENANT_ADMIN)
    with pytest.raises(Forbidden):
        service.deprecate_plan(tenant=tenant, actor=Actor(stranger), plan_id=plan.id)
    with pytest.raises(NotFound):
        service.deprecate_plan(tenant=other_tenant, actor=Actor(stranger), plan_id=plan.id)
    assert plan.state is CatalogueState.PUBLISHED


def test_supersede_copies_the_product_as_a_draft_then_deprecates_the_old_one_plan_by_plan(tenant, boss, old):
    small, large = factories.plan(tenant, product_=old, slug="s"), factories.plan(tenant, product_=old, slug="l")
    copy = service.next_version(tenant=tenant, actor=boss, product_id=old.id)
    assert (copy.slug, copy.version, copy.state) == ("web", 2, CatalogueState.DRAFT)
    new_plans = {p.slug: p for p in copy.plans}
    assert set(new_plans) == {"s", "l"} and all(p.state is CatalogueState.DRAFT for p in new_plans.values())
    with pytest.raises(InvalidInput, match="must be a published plan"):  # publish the new version first
        service.supersede(tenant=tenant, actor=boss, product_id=old.id,
                          mapping={small.id: new_plans["s"].id, large.id: new_plans["l"].id})
    service.publish_product(tenant=tenant, actor=boss, product_id=copy.id)
    with pytest.raises(InvalidInput, match="every plan"):
        service.supersede(tenant=tenant, actor=boss, product_id=old.id, mapping={small.id: new_plans["s"].id})
    service.supersede(tenant=tenant, actor=boss, product_id=old.id,
                      mapping={small.id: new_plans["s"].id, large.id: new_plans["s"].id})
    assert old.state is CatalogueState.DEPRECATED
    assert [(p.state, p.migration_target_id) for p in (small, large)] == [
        (CatalogueState.DEPRECATED, new_plans["s"].id)] * 2


def test_the_next_version_copies_what_each_plan_offers(tenant, boss, old):
    plan = factories.plan(tenant, product_=old, slug="s", images=["debian-12"], free_plan_limit=2,
                          price_notice_days=14)
    plan.prices = [PlanPrice(server_type="cx22", price_minor=590, cost_minor=379, markup_bp=5000, sort=0,
                             is_default=True), PlanPrice(server_type="cx32", price_minor=990, sort=1)]
    plan.locations = [PlanLocation(location="nbg1", surcharge_minor=0, sort=0, is_default=True),
                      PlanLocation(location="hel1", surcharge_minor=100, sort=1)]
    db.session.commit()
    [copied] = service.next_version(tenant=tenant, actor=boss, product_id=old.id).plans
    assert [(p.server_type, p.price_minor, p.cost_minor, p.markup_bp, p.is_default) for p in copied.prices] == [
        ("cx22", 590, 379, 5000, True), ("cx32", 990, None, None, False)]
    assert [(where.location, where.surcharge_minor, where.is_default) for where in copied.locations] == [
        ("nbg1", 0, True), ("hel1", 100, False)]
    assert (copied.images, copied.free_plan_limit, copied.price_notice_days) == (["debian-12"], 2, 14)
    assert [p.plan_id for p in plan.prices] == [plan.id, plan.id]  # the original keeps its own


# --- replace ----------------------------------------------------------------------------------------------------

def test_replace_preview_counts_prices_proration_and_resizes_and_writes_nothing(tenant, boss, old, clock):
    source = factories.plan(tenant, product_=old, price_minor=1000)
    target = only_cx32(factories.plan(tenant, price_minor=2000, config_defaults={"serverType": "cx32"}))
    bare = factories.plan(tenant, price_minor=1000, config_defaults={})
    subscribers(tenant, source, 3, price_minor=1000)
    preview = selectors.preview_replace(tenant, {source.id: target.id}, at=now())
    assert preview.subscriptions == 3 and preview.resizes == 3 and preview.no_server_type == 0
    assert [(c.old_minor, c.new_minor, c.count) for c in preview.price_changes] == [(1000, 2000, 3)]
    assert preview.proration_minor == 3 * (-500 + 1000)
    assert selectors.preview_replace(tenant, {source.id: bare.id}, at=now()).no_server_type == 3
    assert source.state is CatalogueState.PUBLISHED
    assert db.session.scalar(select(func.count()).select_from(CatalogueOperation)) == 0


def test_replace_moves_every_subscriber_once_with_prices_proration_events_and_one_email_per_customer(
        tenant, boss, old, clock):
    a, b = factories.plan(tenant, product_=old, price_minor=1000), factories.plan(tenant, product_=old, price_minor=1000)
    target = only_cx32(factories.plan(tenant, price_minor=2000, config_defaults={"serverType": "cx32"}))
    moving = subscribers(tenant, a, 5, price_minor=1000) + subscribers(tenant, b, 2, price_minor=1000, quantity=2)
    ended = factories.subscription(tenant, factories.user(tenant), a, status=SubscriptionStatus.CANCELED)
    operation = service.start_replace(tenant=tenant, actor=boss, mapping={a.id: target.id, b.id: target.id})
    assert operation.total == 7 and a.state is CatalogueState.RETIRED and b.state is CatalogueState.RETIRED
    # the queue ran it at commit (immediate mode)
    db.session.expire_all()
    operation = db.session.get(CatalogueOperation, operation.id)
    assert operation.status is OperationStatus.FINISHED and operation.moved == 7 and operation.percent == 100
    for subscription in moving:
        db.session.refresh(subscription)
        assert subscription.plan_id == target.id
        assert subscription.price_minor == 2000 * subscription.quantity
        assert subscription.version > 1  # moved, and given the target's server type (a resize)
        assert subscription.requested_config["serverType"] == "cx32"
    assert db.session.get(Subscription, ended.id).plan_id == a.id
    rows = outcomes(operation.id)
    assert sorted(r.subscription_id for r in rows) == sorted(s.id for s in moving)
    assert all(r.outcome is Outcome.MOVED and r.resize_needed for r in rows)
    assert {(r.old_price_minor, r.new_price_minor, r.proration_minor) for r in rows if r.subscription_id == moving[0].id
            } == {(1000, 2000, -500 + 1000)}  # the admin sees the prices and the net of the charges
    assert all(r.notified for r in rows)  # every customer told
    charges = db.session.scalars(select(Charge).where(Charge.subscription_id.in_([s.id for s in moving]))).all()
    assert sorted((c.kind, c.amount_minor) for c in charges if c.subscription_id == moving[0].id) == [
        (ChargeKind.PRORATION_CREDIT, -500), (ChargeKind.PRORATION_DEBIT, 1000)]
    assert len(charges) == 14
    assert db.session.scalar(select(func.count()).select_from(SubscriptionEvent)
                             .where(SubscriptionEvent.kind == "plan_replaced")) == 7
    emails = db.session.scalars(select(EmailMessage).where(EmailMessage.event == "plan_replaced")).all()
    assert len(emails) == 4  # one email per customer, listing their subscriptions
    assert "credited" not in emails[0].text_body and "added to your next invoice" in emails[0].text_body


def test_replace_refuses_free_to_paid_and_changes_nothing(tenant, boss, old):
    free = factories.plan(tenant, product_=old, price_minor=0)
    paid = factories.plan(tenant, price_minor=500)
    subscribers(tenant, free, 2, price_minor=0)
    with pytest.raises(InvalidInput, match="Free plans cannot be moved to a paid plan"):
        service.start_replace(tenant=tenant, actor=boss, mapping={free.id: paid.id})
    db.session.expire_all()
    assert db.session.get(Plan, free.id).state is CatalogueState.PUBLISHED
    assert db.session.scalar(select(func.count()).select_from(CatalogueOperation)) == 0


def test_killed_half_way_and_resumed_each_subscription_moves_exactly_once(tenant, boss, old, clock, monkeypatch):
    source, target = factories.plan(tenant, product_=old, price_minor=1000), factories.plan(tenant, price_minor=1500)
    moving = subscribers(tenant, source, 11, price_minor=1000)
    monkeypatch.setattr(service.work, "later", lambda *args: None)  # no worker: we drive it
    operation = service.start_replace(tenant=tenant, actor=boss, mapping={source.id: target.id})
    assert service.advance(operation.id, chunk=4) and service.advance(operation.id, chunk=4)

    original = service._replace_chunk

    def crash(*args, **kwargs):  # the worker dies in the third chunk, after its writes and before its commit
        original(*args, **kwargs)
        raise SystemExit("killed")
    monkeypatch.setattr(service, "_replace_chunk", crash)
    with pytest.raises(SystemExit):
        service.advance(operation.id, chunk=4)
    db.session.rollback()  # the process is gone: its transaction never commits
    db.session.expire_all()
    assert len(outcomes(operation.id)) == 8
    assert db.session.scalar(select(func.count()).select_from(Subscription)
                             .where(Subscription.plan_id == target.id)) == 8
    monkeypatch.undo()
    clock.advance(minutes=10)
    assert service.stalled() == [operation.id]  # the periodic job takes it up again
    monkeypatch.setattr(service.work, "later", lambda *args: None)
    service.apply_now(operation.id, chunk=4)
    db.session.expire_all()
    operation = db.session.get(CatalogueOperation, operation.id)
    assert operation.status is OperationStatus.FINISHED and operation.moved == 11 == operation.total
    assert sorted(r.subscription_id for r in outcomes(operation.id)) == sorted(s.id for s in moving)
    events = db.session.scalars(select(SubscriptionEvent.subscription_id).where(
        SubscriptionEvent.kind == "plan_replaced", SubscriptionEvent.operation_id == operation.id)).all()
    assert sorted(events) == sorted(s.id for s in moving)  # one move each
    assert db.session.scalar(select(func.count()).select_from(Charge)) == 22  # credit and debit, once each
    assert service.advance(operation.id) is False and service.stalled() == []
    told = db.session.scalars(select(EmailMessage).where(EmailMessage.event == "plan_replaced")).all()
    assert sorted(m.user_id for m in told) == sorted({s.user_id for s in moving})  # each customer once


def test_the_database_refuses_a_second_move_of_a_subscription_by_one_operation(tenant, boss, old, clock, monkeypatch):
    """The move's event is its record: unique per operation and subscription, whatever the code above it does."""
    source, target = factories.plan(tenant, product_=old), factories.plan(tenant)
    [moved] = subscribers(tenant, source, 1)
    monkeypatch.setattr(service.work, "later", lambda *args: None)
    operation = service.start_replace(tenant=tenant, actor=boss, mapping={source.id: target.id})
    service.apply_now(operation.id)
    db.session.add(SubscriptionEvent(tenant_id=tenant.id, subscription_id=moved.id, kind="plan_replaced",
                                     reason="again", data={}, created_at=now(), operation_id=operation.id))
    with pytest.raises(IntegrityError):
        db.session.flush()
    db.session.rollback()
    db.session.add(SubscriptionEvent(tenant_id=tenant.id, subscription_id=moved.id, kind="note", reason="other",
                                     data={}, created_at=now()))  # events of no operation are not limited
    db.session.add(SubscriptionEvent(tenant_id=tenant.id, subscription_id=moved.id, kind="note", reason="other",
                                     data={}, created_at=now()))
    db.session.commit()


def test_a_subscription_taken_back_to_a_source_plan_is_not_moved_again(tenant, boss, old, clock, monkeypatch):
    """A change scheduled before the retirement may put a moved subscription back on its source plan: the
    operation, which moved it once already, leaves it there and finishes."""
    source, target = factories.plan(tenant, product_=old), factories.plan(tenant, price_minor=1490)
    first, second, third = subscribers(tenant, source, 3)
    monkeypatch.setattr(service.work, "later", lambda *args: None)
    operation = service.start_replace(tenant=tenant, actor=boss, mapping={source.id: target.id})
    assert service.advance_step(operation.id, chunk=2) is service.Step.CHANGED
    db.session.get(Subscription, first.id).plan_id = source.id  # as the renewal applying a scheduled change
    db.session.commit()
    service.apply_now(operation.id, chunk=2)
    db.session.expire_all()
    assert db.session.get(CatalogueOperation, operation.id).status is OperationStatus.FINISHED
    assert [db.session.get(Subscription, s.id).plan_id for s in (first, second, third)] == [source.id] + [target.id] * 2
    assert sorted(r.subscription_id for r in outcomes(operation.id)) == [first.id, second.id, third.id]


def test_killed_while_telling_customers_each_is_told_once(tenant, boss, old, clock, monkeypatch):
    source, target = factories.plan(tenant, product_=old), factories.plan(tenant)
    customers = [factories.user(tenant) for _ in range(5)]
    for i in range(10):
        factories.subscription(tenant, customers[i % 5], source)
    monkeypatch.setattr(service.work, "later", lambda *args: None)
    monkeypatch.setattr(service, "TELL_BATCH", 2)
    operation = service.start_replace(tenant=tenant, actor=boss, mapping={source.id: target.id})
    assert service.advance_step(operation.id) is service.Step.CHANGED  # all ten moved in one chunk
    assert service.advance_step(operation.id) is service.Step.TOLD  # two customers told
    original = service.notify_later

    def crash(*args, **kwargs):  # the worker dies after writing the second batch's emails, before its commit
        original(*args, **kwargs)
        raise SystemExit("killed")
    monkeypatch.setattr(service, "notify_later", crash)
    with pytest.raises(SystemExit):
        service.advance_step(operation.id)
    db.session.rollback()
    monkeypatch.setattr(service, "notify_later", original)
    service.apply_now(operation.id)
    db.session.expire_all()
    told = db.session.scalars(select(EmailMessage).where(EmailMessage.event == "plan_replaced")).all()
    assert sorted(m.user_id for m in told) == sorted(c.id for c in customers)
    # each rendered by the worker that sent it (the queue runs at commit here), listing all it moved
    assert all(m.status is EmailStatus.SENT and m.text_body.count("Subscription #") == 2 for m in told)
    assert db.session.get(CatalogueOperation, operation.id).status is OperationStatus.FINISHED


def test_replace_computes_resize_events_and_charges_in_the_database_as_the_rules_say(tenant, boss, old, clock,
                                                                                    monkeypatch):
    source = factories.plan(tenant, product_=old, price_minor=1000, config_defaults={"serverType": "cx22"})
    target = only_cx32(factories.plan(tenant, price_minor=1000, config_defaults={"serverType": "cx32"}))
    start = now() - timedelta(days=10)
    configs = [{"serverType": "cx32"}, {"serverType": ""}, {"serverType": 5}, {}, {"serverType": "cx22"}]
    moving = [factories.subscription(tenant, factories.user(tenant), source, requested_config=config, price_minor=1000,
                                     current_period_start=start, current_period_end=start + timedelta(days=30))
              for config in configs]
    pending = factories.subscription(tenant, factories.user(tenant), source, status=SubscriptionStatus.PENDING_FULFILLMENT,
                                     current_period_start=None, current_period_end=None)
    monkeypatch.setattr(service.work, "later", lambda *args: None)
    operation = service.start_replace(tenant=tenant, actor=boss, mapping={source.id: target.id})
    service.apply_now(operation.id)
    db.session.expire_all()
    resized = {r.subscription_id: r.resize_needed for r in outcomes(operation.id)}
    # the subscription's own server type if it names one (a non-empty string), else the plan's: as needs_resize
    assert [resized[s.id] for s in moving] == [False, True, True, True, True] and resized[pending.id] is True
    events = {e.subscription_id: e for e in db.session.scalars(
        select(SubscriptionEvent).where(SubscriptionEvent.kind == "plan_replaced"))}
    assert events[moving[0].id].data == {"operation_id": operation.id, "from_plan_id": source.id,
                                         "to_plan_id": target.id, "from_price_minor": 1000, "to_price_minor": 1000,
                                         "resize_needed": False}
    assert events[moving[1].id].data["resize_needed"] is True
    assert events[moving[1].id].reason == f"{source.name} replaced by {target.name}"
    assert events[pending.id].from_status == events[pending.id].to_status == SubscriptionStatus.PENDING_FULFILLMENT.value
    assert db.session.scalar(select(func.count()).select_from(Charge)) == 0  # the same price: nothing to prorate


def test_replace_prices_each_kind_of_subscription_as_the_target_offers_it(tenant, boss, old, clock, monkeypatch):
    """Subscriptions on different server types and locations land on the target's price for theirs: the prices,
    the events and the proration charges computed in the database agree with the domain's rules."""
    source = factories.plan(tenant, product_=old, price_minor=1000, config_defaults={"serverType": "cx22"})
    target = factories.plan(tenant, price_minor=1200, config_defaults={"serverType": "cx22"})
    target.prices = [PlanPrice(server_type="cx22", price_minor=1200, is_default=True, sort=0),
                     PlanPrice(server_type="cx32", price_minor=2000, sort=1)]
    target.locations = [PlanLocation(location="nbg1", surcharge_minor=0, is_default=True, sort=0),
                        PlanLocation(location="hel1", surcharge_minor=150, sort=1)]
    db.session.commit()
    start = now() - timedelta(days=12)
    configs = [{"serverType": "cx22"}, {"serverType": "cx32"}, {"serverType": "cx32", "location": "hel1"}, {}]
    moving = [factories.subscription(tenant, factories.user(tenant), source, requested_config=config, price_minor=1000,
                                     quantity=1 + n % 2, current_period_start=start,
                                     current_period_end=start + timedelta(days=30))
              for n, config in enumerate(configs)]
    monkeypatch.setattr(service.work, "later", lambda *args: None)
    operation = service.start_replace(tenant=tenant, actor=boss, mapping={source.id: target.id})
    service.apply_now(operation.id)
    db.session.expire_all()
    rows = {r.subscription_id: r for r in outcomes(operation.id)}
    for subscription, config in zip(moving, configs, strict=True):
        _, landed = selectors.landing(source, target, config)
        expected = landed.unit_price_minor * subscription.quantity
        charge = move_charge(1000, expected, "EUR", billed=True, period_start=start,
                             period_end=start + timedelta(days=30), at=now())
        assert db.session.get(Subscription, subscription.id).price_minor == expected
        assert (rows[subscription.id].new_price_minor, rows[subscription.id].proration_minor) == (expected, charge.net)
        assert sorted(c.amount_minor for c in db.session.scalars(
            select(Charge).where(Charge.subscription_id == subscription.id))) == sorted([charge.credit, charge.debit])
    assert [rows[s.id].new_price_minor for s in moving] == [1200, 4000, 2150, 2400]


def test_a_proration_charged_already_is_not_charged_twice(tenant, boss, old, clock, monkeypatch):
    source, target = factories.plan(tenant, product_=old, price_minor=1000), factories.plan(tenant, price_minor=2000)
    first, second = subscribers(tenant, source, 2, price_minor=1000)
    # a charge of the same kind for the same moment (as a rerun at the same instant would find it)
    db.session.add(Charge(tenant_id=tenant.id, subscription_id=first.id, user_id=first.user_id,
                          kind=ChargeKind.PRORATION_CREDIT, description="earlier", amount_minor=-1, currency="EUR",
                          period_start=now(), period_end=first.current_period_end, created_at=now()))
    db.session.commit()
    monkeypatch.setattr(service.work, "later", lambda *args: None)
    operation = service.start_replace(tenant=tenant, actor=boss, mapping={source.id: target.id})
    service.apply_now(operation.id)
    db.session.expire_all()
    charges = db.session.scalars(select(Charge).order_by(Charge.subscription_id, Charge.kind)).all()
    assert [(c.subscription_id, c.kind, c.amount_minor) for c in charges] == [
        (first.id, ChargeKind.PRORATION_CREDIT, -1), (first.id, ChargeKind.PRORATION_DEBIT, 1000),
        (second.id, ChargeKind.PRORATION_CREDIT, -500), (second.id, ChargeKind.PRORATION_DEBIT, 1000)]
    assert db.session.get(CatalogueOperation, operation.id).moved == 2


def test_pause_stops_after_the_chunk_and_resume_finishes(tenant, boss, old, clock, monkeypatch):
    source, target = factories.plan(tenant, product_=old), factories.plan(tenant)
    subscribers(tenant, source, 5)
    monkeypatch.setattr(service.work, "later", lambda *args: None)
    operation = service.start_replace(tenant=tenant, actor=boss, mapping={source.id: target.id})
    service.advance(operation.id, chunk=2)
    service.pause(tenant=tenant, actor=boss, operation_id=operation.id)
    assert service.advance(operation.id, chunk=2) is False and operation.moved == 2
    with pytest.raises(InvalidInput, match="Only a running"):
        service.pause(tenant=tenant, actor=boss, operation_id=operation.id)
    service.resume(tenant=tenant, actor=boss, operation_id=operation.id)
    service.apply_now(operation.id, chunk=2)
    assert operation.status is OperationStatus.FINISHED and operation.moved == 5
    assert operation.skipped == 0 and prices_unchanged(source)
    with pytest.raises(InvalidInput, match="Only a paused"):
        service.resume(tenant=tenant, actor=boss, operation_id=operation.id)


def prices_unchanged(plan: Plan) -> bool:
    return db.session.scalar(select(func.count()).select_from(Charge)) == 0  # same price: no proration


# --- retire -----------------------------------------------------------------------------------------------------

def test_retire_cancels_every_subscription_through_the_lifecycle_with_end_of_life(
        tenant, boss, old, clock, active_subscription):
    plan = active_subscription.plan
    others = subscribers(tenant, plan, 2)
    preview = selectors.preview_retire(tenant, [plan.id])
    assert preview.subscriptions == 3
    operation = service.start_retire(tenant=tenant, actor=boss, plan_ids=[plan.id])
    db.session.expire_all()
    operation = db.session.get(CatalogueOperation, operation.id)
    assert operation.status is OperationStatus.FINISHED and operation.canceled == 3
    for subscription in [active_subscription, *others]:
        subscription = db.session.get(Subscription, subscription.id)
        assert subscription.status is SubscriptionStatus.CANCELED and subscription.servers_delete_at is not None
        event = db.session.scalars(select(SubscriptionEvent).where(
            SubscriptionEvent.subscription_id == subscription.id, SubscriptionEvent.kind == "plan_retired")).one()
        assert event.reason == "plan retired" and event.actor_id == boss.user_id
    item = db.session.get(Subscription, active_subscription.id).items[0]
    assert item.status in (ItemStatus.DECOMMISSIONING, ItemStatus.DECOMMISSIONED)
    assert db.session.get(Plan, plan.id).state is CatalogueState.RETIRED
    assert {r.outcome for r in outcomes(operation.id)} == {Outcome.CANCELED}


def test_a_product_is_replaced_or_retired_with_all_its_plans(tenant, boss, old, clock):
    small, large = factories.plan(tenant, product_=old), factories.plan(tenant, product_=old)
    target = factories.plan(tenant)
    subscribers(tenant, small, 2)
    with pytest.raises(InvalidInput, match="Map every published or deprecated plan"):
        service.start_replace(tenant=tenant, actor=boss, mapping={small.id: target.id}, product_id=old.id)
    db.session.expire_all()
    assert db.session.get(Product, old.id).state is CatalogueState.PUBLISHED
    operation = service.start_replace(tenant=tenant, actor=boss, mapping={small.id: target.id, large.id: target.id},
                                      product_id=old.id)
    db.session.expire_all()
    assert db.session.get(Product, old.id).state is CatalogueState.RETIRED
    assert db.session.get(CatalogueOperation, operation.id).moved == 2
    other = factories.product(tenant)
    plan = factories.plan(tenant, product_=other)
    subscribers(tenant, plan, 3)
    retired = service.start_retire(tenant=tenant, actor=boss, plan_ids=[], product_id=other.id)
    db.session.expire_all()
    assert db.session.get(CatalogueOperation, retired.id).canceled == 3
    assert db.session.get(Product, other.id).state is CatalogueState.RETIRED
    assert db.session.get(Plan, plan.id).state is CatalogueState.RETIRED


def test_retire_killed_half_way_and_resumed_cancels_each_subscription_once(tenant, boss, old, clock, monkeypatch):
    plan = factories.plan(tenant, product_=old)
    doomed = subscribers(tenant, plan, 7)
    monkeypatch.setattr(service.work, "later", lambda *args: None)
    operation = service.start_retire(tenant=tenant, actor=boss, plan_ids=[plan.id])
    assert service.advance(operation.id, chunk=3)
    original = service._retire_chunk

    def crash(*args, **kwargs):  # killed after canceling the second chunk, before its commit
        original(*args, **kwargs)
        raise SystemExit("killed")
    monkeypatch.setattr(service, "_retire_chunk", crash)
    with pytest.raises(SystemExit):
        service.advance(operation.id, chunk=3)
    db.session.rollback()
    monkeypatch.setattr(service, "_retire_chunk", original)
    service.apply_now(operation.id, chunk=3)
    db.session.expire_all()
    assert db.session.get(CatalogueOperation, operation.id).canceled == 7
    for subscription in doomed:
        events = db.session.scalars(select(SubscriptionEvent).where(
            SubscriptionEvent.subscription_id == subscription.id, SubscriptionEvent.kind == "plan_retired")).all()
        assert len(events) == 1 and db.session.get(Subscription, subscription.id).status is SubscriptionStatus.CANCELED
    effective = db.session.scalars(select(EmailMessage).where(EmailMessage.event == "cancellation_effective")).all()
    assert sorted(m.subscription_id for m in effective) == sorted(s.id for s in doomed)  # each told once
