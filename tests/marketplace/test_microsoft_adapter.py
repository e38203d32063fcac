"""The Microsoft adapter against the fake marketplace over HTTP, and the fake's own behaviour: the token endpoint and
its cache, paging, Microsoft's errors as MarketplaceError kinds, the signed webhooks, the 10-second rule, the
customer's pages and the controls."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
import requests
from werkzeug.wrappers import Request, Response

from app.providers.marketplaces.base import MarketplaceError, MarketplaceErrorKind
from app.providers.marketplaces.microsoft import MicrosoftMarketplace
from app.sandbox import FakeServer, serve
from app.sandbox.microsoft_api import MARKETPLACE_APP_ID, MicrosoftFake, sandbox_publisher
from tests.marketplace.microsoft_helpers import OFFER, OFFERS

SLUG = "acme"


class Receiver:
    """The publisher's webhook endpoint: records each call, answers `status`."""

    def __init__(self) -> None:
        self.calls: list[tuple[dict[str, str], dict]] = []
        self.status = 200

    def __call__(self, environ, start_response):  # type: ignore[no-untyped-def]
        request = Request(environ)
        self.calls.append((dict(request.headers), json.loads(request.get_data())))
        return Response(status=self.status)(environ, start_response)


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, FakeServer]]:
    found = Receiver()
    server = serve(found)
    yield found, server
    server.shutdown()


@pytest.fixture
def fake(receiver) -> Iterator[tuple[MicrosoftFake, FakeServer]]:  # type: ignore[no-untyped-def]
    _, hook = receiver
    found = MicrosoftFake(offers=OFFERS, accept_seconds=60, webhook_url=f"{hook.url}/hooks/{{publisher}}",
                          landing_url=f"{hook.url}/landing")
    server = serve(found)
    yield found, server
    server.shutdown()


def adapter(server: FakeServer, slug: str = SLUG) -> MicrosoftMarketplace:
    tenant_id, client_id = sandbox_publisher(slug)
    return MicrosoftMarketplace(api_url=f"{server.url}/api", login_url=server.url, entra_tenant_id=tenant_id,
                                client_id=client_id, client_secret="sandbox-secret", timeout=5)


def subscribed(fake: MicrosoftFake, plan_id: str = "standard", offer_id: str = OFFER, **kwargs) -> str:  # type: ignore[no-untyped-def]
    bought, _ = fake.purchase(SLUG, offer_id=offer_id, plan_id=plan_id, email="buyer@example.com", **kwargs)
    fake.subscriptions[bought["id"]]["saasSubscriptionStatus"] = "Subscribed"
    return str(bought["id"])


def test_the_token_is_fetched_once_and_reused(fake):  # type: ignore[no-untyped-def]
    market, server = fake
    market.publisher(SLUG)
    client = adapter(server)
    for _ in range(3):
        client.list_subscriptions()
    adapter(server).list_subscriptions()  # another adapter of the same app: the same token
    assert len(market.access_tokens) == 1
    assert "sandbox-secret" not in repr(client)
    market.access_tokens.clear()  # revoked before its time: fetched again, once
    client.list_subscriptions()
    assert len(market.access_tokens) == 1


def test_listing_follows_the_next_links_to_the_end(fake):  # type: ignore[no-untyped-def]
    market, server = fake
    market.page_size = 2
    ids = {subscribed(market) for _ in range(5)}
    client, seen, cursor, pages = adapter(server), set(), None, 0
    while True:
        page = client.list_subscriptions(cursor)
        seen |= {item.external_id for item in page.items}
        pages += 1
        if page.cursor is None:
            break
        cursor = page.cursor
    assert seen == ids and pages == 3


def test_every_call_needs_the_api_version_and_a_token(fake):  # type: ignore[no-untyped-def]
    _, server = fake
    assert requests.get(f"{server.url}/api/saas/subscriptions/", timeout=5).status_code == 400
    assert requests.get(f"{server.url}/api/saas/subscriptions/?api-version=2018-08-31", timeout=5).status_code == 403


def test_microsofts_errors_become_kinds(fake):  # type: ignore[no-untyped-def]
    market, server = fake
    client = adapter(server)
    external_id = subscribed(market)
    with pytest.raises(MarketplaceError) as missing:
        client.get_subscription("00000000-0000-0000-0000-000000000000")
    assert missing.value.kind is MarketplaceErrorKind.NOT_FOUND

    operation_id = client.change_plan(external_id, "pro")
    client.report_operation(external_id, operation_id, success=True)
    with pytest.raises(MarketplaceError) as twice:
        client.report_operation(external_id, operation_id, success=False)
    assert twice.value.kind is MarketplaceErrorKind.CONFLICT and twice.value.status == 409

    with pytest.raises(MarketplaceError) as invalid:
        client.change_plan(external_id, "pro")  # the plan it has now
    assert invalid.value.kind is MarketplaceErrorKind.INVALID

    market.publisher(SLUG).secret_expired = True
    market.access_tokens.clear()  # the token the adapter holds has run out too
    with pytest.raises(MarketplaceError) as auth:
        adapter(server).list_subscriptions()
    assert auth.value.kind is MarketplaceErrorKind.AUTH and "client secret" in auth.value.message


def test_an_unreachable_marketplace_is_transient() -> None:
    client = MicrosoftMarketplace(api_url="http://127.0.0.1:9/api", login_url="http://127.0.0.1:9",
                                  entra_tenant_id="t", client_id="c", client_secret="s", timeout=1)
    with pytest.raises(MarketplaceError) as raised:
        client.list_subscriptions()
    assert raised.value.kind is MarketplaceErrorKind.TRANSIENT and raised.value.retryable


def test_quantity_changes_and_cancellations_answer_an_operation(fake):  # type: ignore[no-untyped-def]
    market, server = fake
    client = adapter(server)
    external_id = subscribed(market, "team", "seats", quantity=2)
    operation_id = client.change_quantity(external_id, 4)
    assert client.get_operation(external_id, operation_id).quantity == 4
    assert [o.id for o in client.list_operations(external_id)] == [operation_id]
    assert [p["planId"] for p in client.list_available_plans(external_id)] == ["team"]
    deleted = client.unsubscribe(external_id)
    assert client.get_operation(external_id, deleted).action == "Unsubscribe"
    assert client.get_subscription(external_id).raw_state == "Unsubscribed"


def test_webhooks_carry_a_token_signed_by_the_published_key(fake, receiver):  # type: ignore[no-untyped-def]
    market, server = fake
    hook, _ = receiver
    external_id = subscribed(market)
    tenant_id, client_id = sandbox_publisher(SLUG)

    answer = requests.post(f"{server.url}/_control/webhook", json={"subscription": external_id, "action": "Suspend"},
                           timeout=10).json()

    assert answer["delivered"] == 200
    [(headers, body)] = hook.calls
    assert (body["action"], body["status"], body["subscription"]["saasSubscriptionStatus"]) == (
        "Suspend", "Succeeded", "Suspended")
    token = headers["Authorization"].removeprefix("Bearer ")
    for keys in (f"{server.url}/common/discovery/v2.0/keys", f"{server.url}/{tenant_id}/discovery/v2.0/keys"):
        key = jwt.PyJWKClient(keys).get_signing_key_from_jwt(token)
        claims = jwt.decode(token, key.key, algorithms=["RS256"], audience=client_id)
        assert (claims["tid"], claims["appid"], claims["azp"]) == (tenant_id, MARKETPLACE_APP_ID, MARKETPLACE_APP_ID)


def test_a_change_nobody_answers_is_applied_after_the_window_and_a_4xx_refuses_it(fake, receiver):  # type: ignore[no-untyped-def]
    market, _ = fake
    hook, _ = receiver
    market.accept_seconds = 0.3
    accepted, refused = subscribed(market), subscribed(market)

    market.send(accepted, "ChangePlan", plan_id="pro")
    hook.status = 400
    assert market.send(refused, "ChangePlan", plan_id="pro")["operation"]["status"] == "Failed"
    time.sleep(0.6)

    assert market.subscriptions[accepted]["planId"] == "pro"
    assert market.subscriptions[refused]["planId"] == "standard"


def test_the_purchase_page_sends_the_customer_to_the_landing_page_with_a_token(fake):  # type: ignore[no-untyped-def]
    _, server = fake
    page = requests.get(f"{server.url}/purchase?publisher={SLUG}", timeout=5)
    assert page.status_code == 200 and "Subscribe and configure account" in page.text
    bought = requests.post(f"{server.url}/purchase", data={"publisher": SLUG, "plan": f"{OFFER}/pro",
                                                           "email": "buyer@example.com"},
                           allow_redirects=False, timeout=5)
    assert bought.status_code == 303
    target = urlsplit(bought.headers["Location"])
    assert target.path == "/landing"
    [token] = parse_qs(target.query)["token"]  # decoded once, as the portal's query parsing does
    resolved = adapter(server).resolve(token)
    assert (resolved.plan_id, resolved.purchaser_email, resolved.raw_state) == ("pro", "buyer@example.com",
                                                                              "PendingFulfillmentStart")
    assert adapter(server).resolve(token).external_id == resolved.external_id  # as often as asked

    mine = requests.get(f"{server.url}/subscriptions?publisher={SLUG}", timeout=5).text
    assert "Configure account" in mine
    manage = requests.get(f"{server.url}/subscriptions/{resolved.external_id}/manage", allow_redirects=False,
                          timeout=5)
    assert manage.status_code == 303 and "token=" in manage.headers["Location"]

    refused = requests.post(f"{server.url}/purchase", data={"publisher": SLUG, "plan": f"{OFFER}/pro", "email": "x"},
                            timeout=5)
    assert refused.status_code == 400 and "email" in refused.text


def test_another_publisher_cannot_see_a_subscription(fake):  # type: ignore[no-untyped-def]
    market, server = fake
    external_id = subscribed(market)
    market.publisher("other")
    with pytest.raises(MarketplaceError) as raised:
        adapter(server, "other").get_subscription(external_id)
    assert raised.value.kind is MarketplaceErrorKind.NOT_FOUND


def test_controls(fake):  # type: ignore[no-untyped-def]
    market, server = fake
    external_id = subscribed(market)
    control = f"{server.url}/_control"
    set_up = requests.post(f"{control}/publisher", json={"publisher": SLUG, "landing_url": "http://127.0.0.1:1/x"},
                           timeout=5)
    assert set_up.status_code == 200 and set_up.json()["landing_url"] == "http://127.0.0.1:1/x"
    assert requests.post(f"{control}/publisher", json={"publisher": SLUG, "webhook_url": "https://example.com/"},
                         timeout=5).status_code == 400
    first = requests.post(f"{control}/webhook", json={"subscription": external_id, "action": "Renew"}, timeout=5)
    replay = requests.post(f"{control}/replay", json={"operation": first.json()["operation"]["id"]}, timeout=5)
    assert replay.status_code == 200 and len(market.webhooks) == 2 and market.webhooks[1]["replay"]
    assert requests.post(f"{control}/webhook", json={"subscription": external_id, "action": "Nope"},
                         timeout=5).status_code == 400
    assert requests.post(f"{control}/clock", json={"advance": 90000}, timeout=5).status_code == 200
    offers = {"o": {"plans": [{"planId": "p", "price": 100, "isPricePerSeat": True, "maxQuantity": 3}]}}
    assert requests.post(f"{control}/offers", json={"offers": offers}, timeout=5).status_code == 200
    assert market.plan("o", "p")["maxQuantity"] == 3 and "o/p" in requests.get(f"{server.url}/purchase", timeout=5).text
    assert requests.post(f"{control}/offers", json={"offers": {"o": {}}}, timeout=5).status_code == 400
    state = requests.get(f"{control}/state", timeout=5).json()
    assert len(state["subscriptions"]) == 1 and len(state["webhooks"]) == 2
    assert requests.post(f"{control}/reset", timeout=5).status_code == 200
    assert market.subscriptions == {} and market.offset == 0


def test_the_customer_changes_the_plan_on_the_subscriptions_page(fake, receiver):  # type: ignore[no-untyped-def]
    market, server = fake
    hook, _ = receiver
    external_id = subscribed(market)
    page = requests.post(f"{server.url}/subscriptions/{external_id}/action",
                         data={"publisher": SLUG, "action": "ChangePlan", "plan": "pro"}, timeout=10)
    assert page.status_code == 200 and "the publisher answered 200" in page.text
    [(_, body)] = hook.calls
    assert (body["action"], body["planId"], body["status"]) == ("ChangePlan", "pro", "InProgress")
    cancelled = requests.post(f"{server.url}/subscriptions/{external_id}/action",
                              data={"publisher": SLUG, "action": "Unsubscribe"}, timeout=10)
    assert "Unsubscribed" in cancelled.text
