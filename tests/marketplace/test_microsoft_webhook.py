"""Microsoft's webhook: its bearer token is checked before anything happens, each operation is applied once, and a
change is answered well within Microsoft's 10 seconds; the landing page's refused tokens get a clear page."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from app.domain.marketplaces import ExternalState, Marketplace
from app.domain.subscriptions import SubscriptionStatus
from app.extensions import db
from app.models import MarketplaceOperation, MarketplaceSubscription, Subscription, SubscriptionEvent
from app.providers.marketplaces.base import MarketplaceError, MarketplaceErrorKind
from app.services import marketplace_microsoft
from app.services.errors import AuthenticationFailed
from app.services.marketplace_connections import adapter_for
from tests import factories
from tests.marketplace.microsoft_helpers import buy_and_set_up, landing_path, microsoft  # noqa: F401  (a fixture)
from tests.services.conftest import boot, count


def fresh(subscription: Subscription) -> Subscription:
    db.session.expire_all()
    return db.session.get(Subscription, subscription.id)


def plan_changes(subscription: Subscription) -> int:
    return count(SubscriptionEvent, SubscriptionEvent.subscription_id == subscription.id,
                 SubscriptionEvent.kind == "plan_changed")


@pytest.fixture
def delivered(client, auth, customer, microsoft, clock):  # noqa: F811
    external_id, subscription = buy_and_set_up(client, auth, microsoft, customer)
    boot(clock)
    assert fresh(subscription).status is SubscriptionStatus.ACTIVE
    return external_id, subscription


@pytest.mark.parametrize("signing", ["wrong_key", "wrong_audience", "wrong_tenant", "wrong_appid", "expired"])
def test_a_webhook_whose_token_fails_a_check_is_refused_with_401_and_changes_nothing(
        microsoft, delivered, signing):  # noqa: F811
    external_id, subscription = delivered
    version = fresh(subscription).version

    answer = microsoft.fake.send(external_id, "ChangePlan", plan_id="pro", signing=signing)

    assert answer["delivered"] == 401
    assert answer["operation"]["status"] == "InProgress" and microsoft.fake.patches == []
    subscription = fresh(subscription)
    assert (subscription.plan_id, subscription.version) == (microsoft.standard.id, version)
    [logged] = db.session.scalars(select(MarketplaceOperation).where(MarketplaceOperation.source == "webhook")).all()
    assert (logged.ok, logged.http_status, logged.operation_key) == (False, 401, None)
    # The same operation with a good token is then handled: the refused delivery took nothing.
    assert microsoft.fake.replay(answer["operation"]["id"])["delivered"] == 200
    assert fresh(subscription).plan_id == microsoft.pro.id


def test_a_suspend_with_a_forged_token_suspends_nothing(microsoft, delivered):  # noqa: F811
    external_id, subscription = delivered
    assert microsoft.fake.send(external_id, "Suspend", signing="wrong_key")["delivered"] == 401
    assert fresh(subscription).status is SubscriptionStatus.ACTIVE


@pytest.mark.parametrize("header", ["", "Bearer", "Basic abc", "Bearer not-a-jwt", "Bearer a.b.c"])
def test_a_missing_or_malformed_token_is_refused(client, microsoft, tenant, header):  # noqa: F811
    answer = client.post(f"/webhooks/microsoft/{tenant.slug}", data=json.dumps({"id": "x"}),
                         headers={"Authorization": header, "Content-Type": "application/json"})
    assert answer.status_code == 401
    with pytest.raises(AuthenticationFailed):
        marketplace_microsoft.verify_webhook_token(tenant, header)


def test_an_unknown_tenant_is_404_and_a_bad_body_400(client, microsoft, tenant, delivered):  # noqa: F811
    assert client.post("/webhooks/microsoft/nobody", data="{}").status_code == 404
    token = microsoft.fake._webhook_jwt(microsoft.fake.publisher(tenant.slug), "valid")
    for body in (b"[1]", b"not json", b'{"id": "x"}'):
        answer = client.post(f"/webhooks/microsoft/{tenant.slug}", data=body,
                             headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 400, body


def test_the_same_operation_delivered_twice_is_applied_once(microsoft, delivered):  # noqa: F811
    external_id, subscription = delivered
    first = microsoft.fake.send(external_id, "ChangePlan", plan_id="pro")
    again = microsoft.fake.replay(first["operation"]["id"])

    assert (first["delivered"], again["delivered"]) == (200, 200)
    assert plan_changes(subscription) == 1 and len(microsoft.fake.patches) == 1
    outcomes = [o.outcome for o in db.session.scalars(select(MarketplaceOperation).where(
        MarketplaceOperation.source == "webhook").order_by(MarketplaceOperation.id))]
    assert outcomes[0].startswith("accepted") and outcomes[1].startswith("duplicate")


def test_a_payload_that_lies_is_read_again_from_microsoft(client, microsoft, tenant, delivered):  # noqa: F811
    external_id, subscription = delivered
    operation_id = microsoft.fake.start(external_id, "ChangePlan", plan_id="legacy")  # a plan the portal refuses
    operation = microsoft.fake.operations[operation_id]
    lying = {**{k: v for k, v in operation.items() if not k.startswith("_")}, "planId": "pro"}
    token = microsoft.fake._webhook_jwt(microsoft.fake.publisher(tenant.slug), "valid")

    answer = client.post(f"/webhooks/microsoft/{tenant.slug}", data=json.dumps(lying),
                         headers={"Authorization": f"Bearer {token}"})

    assert answer.status_code == 400  # refused: Microsoft says "legacy"
    assert fresh(subscription).plan_id == microsoft.standard.id
    assert microsoft.fake.operations[operation_id]["status"] == "Failed"


def test_an_operation_microsoft_does_not_know_is_refused_and_can_come_again(client, microsoft, tenant, delivered):  # noqa: F811
    external_id, subscription = delivered
    token = microsoft.fake._webhook_jwt(microsoft.fake.publisher(tenant.slug), "valid")
    made_up = {"id": "11111111-1111-1111-1111-111111111111", "subscriptionId": external_id, "action": "Unsubscribe"}
    answer = client.post(f"/webhooks/microsoft/{tenant.slug}", data=json.dumps(made_up),
                         headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 400 and fresh(subscription).status is SubscriptionStatus.ACTIVE
    assert count(MarketplaceOperation, MarketplaceOperation.operation_key.is_not(None)) == 0


def test_an_unknown_action_is_logged_and_answered_200(client, microsoft, tenant, delivered):  # noqa: F811
    external_id, _ = delivered
    operation_id = microsoft.fake.start(external_id, "Renew")
    microsoft.fake.operations[operation_id]["action"] = "Transmogrify"
    answer = microsoft.fake.deliver(operation_id)
    assert answer["delivered"] == 200
    [logged] = db.session.scalars(select(MarketplaceOperation).where(MarketplaceOperation.source == "webhook")).all()
    assert "unknown action" in logged.outcome


def test_a_change_microsoft_accepted_by_itself_is_applied_when_its_webhook_comes_late(microsoft, delivered):  # noqa: F811
    external_id, subscription = delivered
    operation_id = microsoft.fake.start(external_id, "ChangePlan", plan_id="pro")
    microsoft.fake._auto_accept(operation_id)  # 10 seconds passed without an answer

    row = db.session.scalar(select(MarketplaceSubscription).where(MarketplaceSubscription.external_id == external_id))
    row.external_plan_id = "pro"  # a poll saw the new plan first
    db.session.commit()

    assert microsoft.fake.deliver(operation_id)["delivered"] == 200
    assert fresh(subscription).plan_id == microsoft.pro.id and microsoft.fake.patches == []


def test_a_change_of_quantity_within_the_plan_is_accepted(microsoft, tenant, customer, clock):  # noqa: F811
    bought, _ = microsoft.fake.purchase("default", offer_id="seats", plan_id="team", email=customer.email, quantity=2)
    microsoft.fake.subscriptions[bought["id"]]["saasSubscriptionStatus"] = "Subscribed"
    start = clock.now()
    subscription = factories.subscription(tenant, customer, microsoft.team, quantity=2, price_minor=1000,
                                          marketplace=Marketplace.MICROSOFT, current_period_start=start,
                                          activated_at=start)
    db.session.add(MarketplaceSubscription(
        tenant_id=tenant.id, marketplace=Marketplace.MICROSOFT, external_id=bought["id"], offer_id="seats",
        external_plan_id="team", quantity=2, raw_state="Subscribed", state=ExternalState.ACTIVE,
        subscription_id=subscription.id))
    db.session.commit()

    assert microsoft.fake.send(bought["id"], "ChangeQuantity", quantity=5)["operation"]["status"] == "Succeeded"
    assert (fresh(subscription).quantity, fresh(subscription).price_minor) == (5, 2500)

    too_many = microsoft.fake.send(bought["id"], "ChangeQuantity", quantity=11)  # the plan sells at most 10
    assert too_many["delivered"] == 400 and too_many["operation"]["status"] == "Failed"
    assert fresh(subscription).quantity == 5 and microsoft.fake.subscriptions[bought["id"]]["quantity"] == 5


def test_a_change_is_answered_within_ten_seconds(microsoft, delivered):  # noqa: F811
    external_id, _ = delivered
    answer = microsoft.fake.send(external_id, "ChangePlan", plan_id="pro")
    [webhook] = microsoft.fake.webhooks
    [patch] = microsoft.fake.patches
    assert webhook["status"] == 200 and webhook["seconds"] < 10
    assert patch["seconds_after_webhook"] < 10 and answer["operation"]["status"] == "Succeeded"


# --- the landing page ---------------------------------------------------------------------------------------------

def test_a_token_with_plus_and_slash_resolves_encoded_or_not(client, microsoft, customer):  # noqa: F811
    _, token = microsoft.fake.purchase("default", offer_id="cloudportal-servers", plan_id="standard",
                                       email=customer.email)
    assert "+" in token and "/" in token
    assert client.get(landing_path(token)).status_code == 303
    # Sent without encoding, its "+" arrives as a space: still the same purchase.
    assert client.get(f"/marketplace/microsoft/landing?token={token}").status_code == 303
    assert count(MarketplaceSubscription) == 1


@pytest.mark.parametrize("token", ["forged+token/x", "a" * 5000, " "])
def test_a_forged_token_gets_a_clear_page_not_an_error(client, microsoft, token):  # noqa: F811
    page = client.get(landing_path(token))
    assert page.status_code == 400
    assert "Configure account" in page.get_data(as_text=True)
    assert count(MarketplaceSubscription) == 0


def test_an_expired_token_gets_a_clear_page(client, microsoft, customer):  # noqa: F811
    _, token = microsoft.fake.purchase("default", offer_id="cloudportal-servers", plan_id="standard",
                                       email=customer.email)
    microsoft.fake.offset += 24 * 3600 + 60  # a day and a minute later
    page = client.get(landing_path(token))
    assert page.status_code == 400
    text = page.get_data(as_text=True)
    assert "expired" in text and "Configure account" in text and "Azure portal" in text


def test_a_token_used_again_after_set_up_lands_on_the_subscription(client, auth, customer, microsoft):  # noqa: F811
    external_id, subscription = buy_and_set_up(client, auth, microsoft, customer)
    token = next(t for t, (s, _) in microsoft.fake.landing_tokens.items() if s == external_id)
    again = client.get(landing_path(token))
    assert again.status_code == 303 and again.headers["Location"].endswith(f"/subscriptions/{subscription.id}")
    manage = microsoft.fake.landing_token(external_id)  # "Manage SaaS experience": a new token
    assert client.get(landing_path(manage)).headers["Location"].endswith(f"/subscriptions/{subscription.id}")


def test_microsoft_unreachable_gets_a_try_again_page(client, app, microsoft):  # noqa: F811
    app.config["SANDBOX_MICROSOFT_URL"] = "http://127.0.0.1:9"  # nothing listens there
    page = client.get(landing_path("some+token/x"))
    assert page.status_code == 503 and "try again" in page.get_data(as_text=True)


def test_an_expired_client_secret_is_an_auth_error_naming_the_secret(app, microsoft, tenant):  # noqa: F811
    microsoft.fake.publisher(tenant.slug).secret_expired = True
    with pytest.raises(MarketplaceError) as raised:
        adapter_for(tenant, Marketplace.MICROSOFT).list_subscriptions()
    assert raised.value.kind is MarketplaceErrorKind.AUTH and "client secret" in raised.value.message
