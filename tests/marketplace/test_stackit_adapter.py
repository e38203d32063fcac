"""The STACKIT adapter against the fake vendor API, over real HTTP on loopback."""

from __future__ import annotations

import json

import jwt
import pytest
import requests

from app.domain.marketplaces import ExternalState, Marketplace
from app.providers.marketplaces.base import MarketplaceError, MarketplaceErrorKind
from app.sandbox.stackit_api import KEYS_PATH, PENDING_TTL, TOKEN_PARAMETER, StackitFake, purchase_url
from tests.marketplace import stackit_helpers
from tests.marketplace.stackit_helpers import CUSTOMER_PROJECT, VENDOR, adapter

stackit_served, stackit_fake, stackit_url = (stackit_helpers.stackit_served, stackit_helpers.stackit_fake,
                                             stackit_helpers.stackit_url)

K = MarketplaceErrorKind


def test_a_redirect_token_resolves_once_to_the_purchase(stackit_fake: StackitFake, stackit_url: str) -> None:
    external_id, token = stackit_fake.purchase(VENDOR, "pro", project=CUSTOMER_PROJECT)
    found = adapter(stackit_url).resolve(token)
    assert (found.marketplace, found.external_id, found.offer_id, found.plan_id) == (
        Marketplace.STACKIT, external_id, "cloudportal-servers", "pro")
    assert (found.state, found.raw_state, found.customer_ref) == (
        ExternalState.PENDING, "SUBSCRIPTION_PENDING", CUSTOMER_PROJECT)
    with pytest.raises(MarketplaceError) as used:
        adapter(stackit_url).resolve(token)
    assert used.value.kind is K.INVALID and "used already" in used.value.message


def test_an_expired_or_foreign_token_is_invalid(stackit_fake: StackitFake, stackit_url: str) -> None:
    external_id, _ = stackit_fake.purchase(VENDOR, "standard")
    expired = stackit_fake.token(external_id, expires_in=60)
    stackit_fake.advance(61)
    with pytest.raises(MarketplaceError) as late:
        adapter(stackit_url).resolve(expired)
    assert late.value.kind is K.INVALID and "expired" in late.value.message
    other = "9f1b2c3d-0000-4000-8000-000000000001"
    with pytest.raises(MarketplaceError) as foreign:
        adapter(stackit_url, other).resolve(stackit_fake.token(external_id))
    assert foreign.value.kind is K.INVALID


def test_approval_within_the_ttl_starts_billing_and_a_retry_is_no_error(stackit_fake: StackitFake,
                                                                          stackit_url: str) -> None:
    external_id, _ = stackit_fake.purchase(VENDOR, "standard")
    stackit = adapter(stackit_url)
    pending = stackit.get_subscription(external_id)
    stackit_fake.advance(PENDING_TTL - 5)
    stackit.activate(pending, instance_url="https://portal.example/subscriptions/7")
    stackit.activate(pending, instance_url="https://portal.example/subscriptions/7")  # the answer was lost
    assert stackit.get_subscription(external_id).state is ExternalState.ACTIVE
    assert stackit_fake.subscription(external_id)["instanceTarget"] == "https://portal.example/subscriptions/7"


def test_approval_after_the_ttl_is_refused_the_subscription_was_rejected(stackit_fake: StackitFake,
                                                                         stackit_url: str) -> None:
    external_id, _ = stackit_fake.purchase(VENDOR, "standard")
    stackit = adapter(stackit_url)
    pending = stackit.get_subscription(external_id)
    stackit_fake.advance(PENDING_TTL)
    with pytest.raises(MarketplaceError) as refused:
        stackit.activate(pending, instance_url="https://portal.example/subscriptions/7")
    assert refused.value.kind is K.CONFLICT and "SUBSCRIPTION_REJECTED" in refused.value.message
    assert stackit.get_subscription(external_id).state is ExternalState.REJECTED


def test_listing_follows_the_cursor_over_every_page(stackit_fake: StackitFake, stackit_url: str) -> None:
    stackit_fake.set_page_size(3)
    bought = [stackit_fake.purchase(VENDOR, "standard")[0] for _ in range(7)]
    stackit_fake.purchase("another-vendor", "pro")
    stackit, cursor, pages, seen = adapter(stackit_url), None, 0, []
    while True:
        page = stackit.list_subscriptions(cursor)
        pages += 1
        seen += [item.external_id for item in page.items]
        cursor = page.cursor
        if cursor is None:
            break
    assert (pages, seen) == (3, bought)
    calls = [call for call in stackit_fake.calls() if call["path"].endswith("/subscriptions")]
    assert len(calls) == 3 and all(call["status"] == 200 for call in calls)


def test_the_service_account_key_flow_gets_a_token_and_renews_it(stackit_fake: StackitFake,
                                                                   stackit_url: str) -> None:
    external_id, _ = stackit_fake.purchase(VENDOR, "standard")
    stackit = adapter(stackit_url, key=stackit_fake.service_account_key(VENDOR))
    assert stackit.get_subscription(external_id).external_id == external_id
    stackit_fake.advance(2 * 3600)  # the access token expired at STACKIT before the adapter expected
    assert stackit.get_subscription(external_id).state is ExternalState.REJECTED
    assert [call["status"] for call in stackit_fake.calls()] == [200, 401, 200]


def test_wrong_credentials_are_auth_errors(stackit_fake: StackitFake, stackit_url: str) -> None:
    other_key = json.loads(stackit_fake.service_account_key(VENDOR))
    other_key["credentials"]["kid"] = "not-a-key-stackit-knows"
    with pytest.raises(MarketplaceError) as unknown:
        adapter(stackit_url, key=json.dumps(other_key)).list_subscriptions()
    assert unknown.value.kind is K.AUTH
    with pytest.raises(MarketplaceError) as broken:
        adapter(stackit_url, key='{"credentials": {"kid": "x"}}')
    assert broken.value.kind is K.AUTH and "privateKey" in broken.value.message
    with pytest.raises(MarketplaceError) as foreign:
        adapter(stackit_url, key=stackit_fake.service_account_key("another-project")).list_subscriptions()
    assert foreign.value.kind is K.AUTH and foreign.value.status == 403


def test_stackit_has_no_operations_and_unreachable_is_transient(stackit_url: str) -> None:
    stackit = adapter(stackit_url)
    with pytest.raises(MarketplaceError) as operation:
        stackit.get_operation("x", "y")
    assert operation.value.kind is K.NOT_FOUND
    with pytest.raises(MarketplaceError) as report:
        stackit.report_operation("x", "y", success=True)
    assert report.value.kind is K.INVALID
    with pytest.raises(MarketplaceError) as down:
        adapter("http://127.0.0.1:9").get_subscription("x")
    assert down.value.kind is K.TRANSIENT and down.value.retryable
    with pytest.raises(MarketplaceError) as missing:
        stackit.get_subscription("00000000-0000-4000-8000-000000000000")
    assert missing.value.kind is K.NOT_FOUND


def test_the_keys_and_the_purchase_page_are_as_the_portal_expects(stackit_fake: StackitFake,
                                                                    stackit_url: str) -> None:
    keys = requests.get(stackit_url + KEYS_PATH, timeout=5).json()
    assert list(keys) == [stackit_fake.kid] and keys[stackit_fake.kid].startswith("-----BEGIN PUBLIC KEY-----")
    signup = "http://127.0.0.1:9/marketplace/stackit/signup"
    page = requests.get(stackit_url + "/purchase", params={"vendor": VENDOR, "signup": signup}, timeout=5)
    assert page.status_code == 200 and "Pro" in page.text and "Standard" in page.text
    bought = requests.post(stackit_url + "/purchase", data={"vendor": VENDOR, "signup": signup, "plan": "pro",
                                                            "product": "cloudportal-servers"},
                           allow_redirects=False, timeout=5)
    assert bought.status_code == 303 and bought.headers["Location"].startswith(f"{signup}?{TOKEN_PARAMETER}=ey")
    token = bought.headers["Location"].split("=", 1)[1]
    assert adapter(stackit_url).resolve(token).plan_id == "pro"


def test_the_controls_play_the_customer_and_stackit(stackit_fake: StackitFake, stackit_url: str) -> None:
    def control(what: str, **body: object) -> dict:  # type: ignore[type-arg]
        answer = requests.post(f"{stackit_url}/_control/{what}", json=body, timeout=5)
        assert answer.status_code == 200, answer.text
        return answer.json()

    bought = control("purchase", vendor=VENDOR, vendorPlanId="standard", projectId=CUSTOMER_PROJECT)
    stackit = adapter(stackit_url)
    old = bought["subscriptionId"]
    stackit.activate(stackit.resolve(bought["token"]), instance_url="https://portal.example/subscriptions/1")
    control("deactivate", subscriptionId=old)
    assert stackit.get_subscription(old).raw_state == "SUBSCRIPTION_INACTIVE"
    control("reactivate", subscriptionId=old)
    changed = control("change-plan", subscriptionId=old, vendorPlanId="pro")
    new = stackit.resolve(changed["token"])
    assert (new.plan_id, new.customer_ref, new.state) == ("pro", CUSTOMER_PROJECT, ExternalState.PENDING)
    assert stackit.get_subscription(old).raw_state == "SUBSCRIPTION_CANCELLING"
    control("cancel", subscriptionId=old, final=True)
    assert stackit.get_subscription(old).raw_state == "SUBSCRIPTION_CANCELLED"
    control("advance", seconds=PENDING_TTL)
    assert stackit.get_subscription(new.external_id).raw_state == "SUBSCRIPTION_REJECTED"
    control("page-size", size=1)
    assert len(stackit.list_subscriptions().items) == 1
    state = requests.get(f"{stackit_url}/_control/state", timeout=5).json()
    assert [s["lifecycleState"] for s in state["subscriptions"]] == ["SUBSCRIPTION_CANCELLED", "SUBSCRIPTION_REJECTED"]
    refused = requests.post(f"{stackit_url}/_control/deactivate", json={"subscriptionId": old}, timeout=5)
    assert refused.status_code == 409
    assert requests.post(f"{stackit_url}/_control/purchase", json={"vendor": VENDOR, "vendorPlanId": "gold"},
                         timeout=5).status_code == 400
    control("reset")
    assert requests.get(f"{stackit_url}/_control/state", timeout=5).json()["subscriptions"] == []


def test_the_sandbox_serves_it_beside_the_clouds_and_its_tokens_name_its_keys_url() -> None:
    from app.sandbox import start_sandbox_stackit

    config: dict[str, object] = {}
    server = start_sandbox_stackit(config)
    try:
        url = str(config["SANDBOX_STACKIT_URL"])
        bought = requests.post(f"{url}/_control/purchase", json={"vendor": VENDOR, "vendorPlanId": "pro"},
                               timeout=5).json()
        assert jwt.decode(bought["token"], options={"verify_signature": False})["iss"] == url + KEYS_PATH
        page = requests.get(purchase_url(url, VENDOR, "http://127.0.0.1:9/marketplace/stackit/signup"), timeout=5)
        assert page.status_code == 200 and "Subscribe" in page.text
    finally:
        server.shutdown()
