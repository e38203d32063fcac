"""Cloud prices into a plan, against the sandbox clouds: a preview that changes nothing, an apply through the
editing service (its audit, and on a published plan its notice to subscribers), a later import's differences,
and cloud errors that change nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.clock import now
from app.domain.catalogue import CatalogueState, Provider
from app.domain.cloud_prices import Change
from app.domain.plan_offers import LocationOffer, TypePrice
from app.extensions import db
from app.models import CatalogueChange, EmailMessage, PlanPriceChange
from app.providers.base import ErrorKind
from app.sandbox.cloud import sandbox_for
from app.services import catalogue_editing as editing
from app.services import cloud_prices
from app.services.actors import Actor
from app.services.errors import Conflict, Forbidden, InvalidInput
from tests import factories
from tests.services.conftest import count
from tests.services.test_catalogue_editing import plan_input

OFFERS = (TypePrice("cx22", 450, None, None, True), TypePrice("cx32", 890))


@pytest.fixture
def boss(admin) -> Actor:  # type: ignore[no-untyped-def]
    return Actor(admin)


def make_plan(tenant, boss, **changes):  # type: ignore[no-untyped-def]
    values = plan_input(**{"prices": OFFERS, "locations": (LocationOffer("nbg1", 0, True),), **changes})
    return editing.create_plan(tenant=tenant, actor=boss, product_id=factories.product(tenant).id,
                               service_type_id=factories.service_type(tenant).id, values=values)


def cloud(tenant, provider: str = "hetzner"):  # type: ignore[no-untyped-def]
    return sandbox_for(tenant.id, provider, now)


def test_markup_percent_is_read_into_basis_points():
    assert cloud_prices.markup_from_percent("25") == 2500
    assert cloud_prices.markup_from_percent(" 12.5 ") == 1250
    assert cloud_prices.markup_from_percent("0.05") == 5
    for bad in ("", "-5", "1.234", "abc", "1e3", "2000", "12,5"):
        with pytest.raises(InvalidInput) as error:
            cloud_prices.markup_from_percent(bad)
        assert error.value.field == "markup"


def test_the_preview_shows_cost_price_margin_and_changes_nothing(tenant, boss, clock):
    plan = make_plan(tenant, boss)
    preview = cloud_prices.preview_import(tenant=tenant, actor=boss, plan_id=plan.id, markup_bp=2000)
    lines = {line.server_type: line for line in preview.lines}
    assert (lines["cx22"].current_price, lines["cx22"].cost, lines["cx22"].price) == (450, 459, 551)
    assert (lines["cx32"].cost, lines["cx32"].price, lines["cx32"].margin_bp) == (799, 959, 1668)
    assert {(c.server_type, c.change) for c in preview.cost_changes} == {("cx22", Change.ADDED),
                                                                         ("cx32", Change.ADDED)}
    assert preview.pending == ()  # a draft has no subscribers
    db.session.expire_all()
    assert [(p.price_minor, p.cost_minor, p.markup_bp) for p in plan.prices] == [(450, None, None), (890, None, None)]
    assert count(CatalogueChange) == 1  # "created" only


def test_applying_writes_cost_markup_and_price_and_audits_it(tenant, boss, clock):
    plan = make_plan(tenant, boss)
    preview = cloud_prices.preview_import(tenant=tenant, actor=boss, plan_id=plan.id, markup_bp=2000,
                                          server_types=["cx32"])
    assert [line.server_type for line in preview.lines] == ["cx32"]
    cloud_prices.apply_import(tenant=tenant, actor=boss, plan_id=plan.id, markup_bp=2000, server_types=["cx32"],
                              fingerprint=preview.fingerprint)
    db.session.expire_all()
    assert [(p.server_type, p.price_minor, p.cost_minor, p.markup_bp) for p in plan.prices] == [
        ("cx22", 450, None, None), ("cx32", 959, 799, 2000)]
    change = db.session.scalars(select(CatalogueChange).order_by(CatalogueChange.id.desc())).first()
    assert change.action == "prices_imported" and change.actor_id == boss.user_id
    assert change.changes["prices"][1]["cx32"] == 959 and change.changes["markups_bp"] == [{}, {"cx32": 2000}]


def test_an_admin_adds_a_server_type_the_plan_did_not_offer(tenant, boss, clock):
    plan = make_plan(tenant, boss, prices=(TypePrice("cx22", 450, None, None, True),))
    preview = cloud_prices.preview_import(tenant=tenant, actor=boss, plan_id=plan.id, markup_bp=1000,
                                          server_types=["cx22", "cx32"])
    assert [line.offered for line in preview.lines] == [True, False]
    cloud_prices.apply_import(tenant=tenant, actor=boss, plan_id=plan.id, markup_bp=1000,
                              server_types=["cx22", "cx32"], fingerprint=preview.fingerprint)
    db.session.expire_all()
    assert [(p.server_type, p.price_minor, p.is_default) for p in plan.prices] == [("cx22", 505, True),
                                                                                  ("cx32", 879, False)]
    with pytest.raises(InvalidInput, match="Not among") as error:
        cloud_prices.preview_import(tenant=tenant, actor=boss, plan_id=plan.id, markup_bp=1000,
                                    server_types=["cx42"])
    assert error.value.field == "server_types"


def test_a_later_import_shows_what_the_cloud_changed_since_the_last(tenant, boss, clock):
    plan = make_plan(tenant, boss)
    first = cloud_prices.preview_import(tenant=tenant, actor=boss, plan_id=plan.id, markup_bp=2000)
    cloud_prices.apply_import(tenant=tenant, actor=boss, plan_id=plan.id, markup_bp=2000, server_types=(),
                              fingerprint=first.fingerprint)
    again = cloud_prices.preview_import(tenant=tenant, actor=boss, plan_id=plan.id, markup_bp=2000)
    assert again.cost_changes == () and not again.changes_anything
    sandbox = cloud(tenant)
    sandbox.set_price("cx22", "nbg1", 499)
    sandbox.set_price("cx32", "nbg1", None)  # no longer sold where the plan offers it
    later = cloud_prices.preview_import(tenant=tenant, actor=boss, plan_id=plan.id, markup_bp=2000)
    assert [(c.server_type, c.change, c.old_minor, c.new_minor) for c in later.cost_changes] == [
        ("cx22", Change.CHANGED, 459, 499), ("cx32", Change.REMOVED, 799, None)]
    with pytest.raises(Conflict, match="changed since the preview"):  # the first preview is stale now
        cloud_prices.apply_import(tenant=tenant, actor=boss, plan_id=plan.id, markup_bp=2000, server_types=(),
                                  fingerprint=first.fingerprint)
    cloud_prices.apply_import(tenant=tenant, actor=boss, plan_id=plan.id, markup_bp=2000, server_types=(),
                              fingerprint=later.fingerprint)
    db.session.expire_all()
    assert [(p.server_type, p.price_minor, p.cost_minor) for p in plan.prices] == [("cx22", 599, 499),
                                                                                  ("cx32", 959, 799)]  # kept


def test_the_dearest_location_sets_the_cost_and_the_others_are_shown(tenant, boss, clock):
    plan = make_plan(tenant, boss, locations=(LocationOffer("nbg1", 0, True), LocationOffer("hel1", 0)))
    cloud(tenant).set_price("cx22", "hel1", 529)
    preview = cloud_prices.preview_import(tenant=tenant, actor=boss, plan_id=plan.id, markup_bp=0)
    line = preview.lines[0]
    assert (line.cost, line.by_location) == (529, (("hel1", 529), ("nbg1", 459)))
    assert preview.lines[1].by_location == ()


def test_a_yearly_plan_costs_twelve_months(tenant, boss, clock):
    plan = make_plan(tenant, boss, interval=factories.Interval.YEAR)
    preview = cloud_prices.preview_import(tenant=tenant, actor=boss, plan_id=plan.id, markup_bp=0)
    assert preview.lines[0].cost == 459 * 12


def test_a_published_plan_goes_through_the_notice_and_tells_subscribers(tenant, boss, customer, clock):
    plan = make_plan(tenant, boss)
    plan.state = CatalogueState.PUBLISHED
    factories.subscription(tenant, customer, plan, requested_config={"serverType": "cx22"}, price_minor=450)
    db.session.commit()
    preview = cloud_prices.preview_import(tenant=tenant, actor=boss, plan_id=plan.id, markup_bp=2000)
    assert [(c.server_type, c.old_price_minor, c.new_price_minor) for c in preview.pending] == [
        ("cx22", 450, 551), ("cx32", 890, 959)]
    with pytest.raises(editing.ConfirmPriceChange) as error:
        cloud_prices.apply_import(tenant=tenant, actor=boss, plan_id=plan.id, markup_bp=2000, server_types=(),
                                  fingerprint=preview.fingerprint)
    assert len(error.value.changes) == 2 and count(PlanPriceChange) == 0
    cloud_prices.apply_import(tenant=tenant, actor=boss, plan_id=plan.id, markup_bp=2000, server_types=(),
                              fingerprint=preview.fingerprint, confirmed=True)
    changes = db.session.scalars(select(PlanPriceChange).order_by(PlanPriceChange.server_type)).all()
    assert [(c.server_type, c.new_price_minor, (c.effective_at - now()).days) for c in changes] == [
        ("cx22", 551, 30), ("cx32", 959, 30)]
    assert db.session.scalar(select(EmailMessage.to_address)) == customer.email


@pytest.mark.parametrize("kind", [ErrorKind.TRANSIENT, ErrorKind.AUTH])
def test_a_cloud_error_says_so_and_changes_nothing(tenant, boss, clock, kind):
    plan = make_plan(tenant, boss)
    preview = cloud_prices.preview_import(tenant=tenant, actor=boss, plan_id=plan.id, markup_bp=2000)
    cloud(tenant).fail_next("offers", kind, times=2)
    for call in (lambda: cloud_prices.preview_import(tenant=tenant, actor=boss, plan_id=plan.id, markup_bp=2000),
                 lambda: cloud_prices.apply_import(tenant=tenant, actor=boss, plan_id=plan.id, markup_bp=2000,
                                                   server_types=(), fingerprint=preview.fingerprint)):
        with pytest.raises(cloud_prices.CloudUnavailable, match="nothing changed"):
            call()
    db.session.expire_all()
    assert [p.price_minor for p in plan.prices] == [450, 890] and count(CatalogueChange) == 1


def test_no_cloud_account_is_a_clear_message(app, tenant, boss, clock, monkeypatch):
    plan = make_plan(tenant, boss)
    monkeypatch.setitem(app.config, "SANDBOX_IN_PROCESS", False)
    with pytest.raises(cloud_prices.CloudUnavailable, match="nothing changed: No Hetzner Cloud account is set up"):
        cloud_prices.preview_import(tenant=tenant, actor=boss, plan_id=plan.id, markup_bp=2000)


def test_digitalocean_has_one_price_everywhere_and_a_currency_of_its_own(tenant, boss, clock):
    schema = {"type": "object", "properties": {
        "serverType": {"type": "string", "enum": ["s-1vcpu-1gb", "s-1vcpu-2gb"]},
        "region": {"type": "string", "enum": ["fra1", "sgp1"]}}}
    service_type = factories.service_type(tenant, provider=Provider.DIGITALOCEAN, config_schema=schema)
    usd = factories.plan(tenant, service_type_=service_type, currency="USD", state=CatalogueState.DRAFT)
    preview = cloud_prices.preview_import(tenant=tenant, actor=boss, plan_id=usd.id, markup_bp=5000,
                                          server_types=["s-1vcpu-1gb"])
    assert [(line.cost, line.price, line.by_location) for line in preview.lines] == [(600, 900, ())]
    eur = factories.plan(tenant, service_type_=service_type, state=CatalogueState.DRAFT)
    with pytest.raises(InvalidInput, match="charges in USD and this plan is priced in EUR"):
        cloud_prices.preview_import(tenant=tenant, actor=boss, plan_id=eur.id, markup_bp=5000,
                                    server_types=["s-1vcpu-1gb"])


def test_only_the_tenants_admins_import(tenant, other_tenant, boss, customer, support, clock):
    plan = make_plan(tenant, boss)
    outsider = factories.user(other_tenant, role=factories.Role.TENANT_ADMIN)
    for user in (customer, support, outsider):
        with pytest.raises(Forbidden):
            cloud_prices.preview_import(tenant=tenant, actor=Actor(user), plan_id=plan.id, markup_bp=2000)
    assert cloud(tenant).calls == []
