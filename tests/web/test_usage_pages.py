"""The customer's usage page and the tenant admin's usage upload."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from app.domain.billing import UsageSource
from app.extensions import db
from app.models import UsageRecord
from app.services import usage
from app.services.actors import Actor
from tests import factories
from tests.helpers import csrf_token, post_form

START = datetime(2026, 3, 1, 12, tzinfo=UTC)
PRICES = [{"metric": "traffic_gb", "label": "Outgoing traffic", "unit": "GB", "unit_price_minor": 2,
           "included": 100}]
HEADER = "subscription_id,metric,quantity,timestamp,idempotency_key\n"


@pytest.fixture
def metered(tenant, customer, clock):  # type: ignore[no-untyped-def]
    plan = factories.plan(tenant, price_minor=300, usage_prices=PRICES)
    return factories.subscription(tenant, customer, plan, price_minor=300, activated_at=START,
                                  current_period_start=START, current_period_end=datetime(2026, 4, 1, 12, tzinfo=UTC))


def records() -> int:
    return db.session.scalar(select(func.count()).select_from(UsageRecord)) or 0


def put(tenant, admin, subscription, quantity, at, key):  # type: ignore[no-untyped-def]
    usage.record(tenant=tenant, actor=Actor(admin), subscription_id=subscription.id, metric="traffic_gb",
                 quantity=quantity, recorded_at=at, idempotency_key=key, source=UsageSource.API)


def test_the_customer_sees_this_period_past_periods_and_a_chart(client, auth, tenant, customer, admin, metered,
                                                                 clock):  # type: ignore[no-untyped-def]
    put(tenant, admin, metered, 400, datetime(2026, 3, 10, tzinfo=UTC), "march")
    clock.set(datetime(2026, 4, 2, tzinfo=UTC))
    usage.bill_closed_periods(clock.now())
    put(tenant, admin, metered, 250, datetime(2026, 4, 1, 13, tzinfo=UTC), "april")
    auth.login(customer.email)
    page = client.get(f"/subscriptions/{metered.id}/usage")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Running cost so far: <strong>€3.00</strong>" in html  # (250 - 100) x €0.02
    assert "€6.00" in html  # March billed: (400 - 100) x €0.02
    assert "<svg" in html and "400 GB" in html and "250 GB" in html
    detail = client.get(f"/subscriptions/{metered.id}").get_data(as_text=True)
    assert f"/subscriptions/{metered.id}/usage" in detail


def test_other_peoples_and_unmetered_subscriptions_are_not_found(client, auth, tenant, customer, metered):  # type: ignore[no-untyped-def]
    other = factories.user(tenant, email="someone@example.com")
    theirs = factories.subscription(tenant, other, metered.plan, activated_at=START, current_period_start=START)
    unmetered = factories.subscription(tenant, customer, factories.plan(tenant), activated_at=START,
                                       current_period_start=START)
    auth.login(customer.email)
    assert client.get(f"/subscriptions/{theirs.id}/usage").status_code == 404
    assert client.get(f"/subscriptions/{unmetered.id}/usage").status_code == 404
    assert client.get("/subscriptions/99999999/usage").status_code == 404


def upload(client, data: bytes, **extra):  # type: ignore[no-untyped-def]
    return post_form(client, "/admin/usage", {"file": (io.BytesIO(data), "usage.csv"), **extra},
                     content_type="multipart/form-data")


def test_the_admin_uploads_a_csv_and_sees_what_it_did(client, auth, tenant, admin, metered):  # type: ignore[no-untyped-def]
    auth.login(admin.email)
    page = client.get("/admin/usage")
    assert page.status_code == 200 and "Download an example file" in page.get_data(as_text=True)
    assert "<code>traffic_gb</code>" in page.get_data(as_text=True)
    assert client.get("/admin/usage/example.csv").get_data(as_text=True).startswith(HEADER)
    text = HEADER + f"{metered.id},traffic_gb,5,2026-03-10T00:00:00Z,a\n"
    answer = upload(client, text.encode())
    assert "1 record recorded, 0 already recorded." in answer.get_data(as_text=True)
    answer = upload(client, (text + f"{metered.id},traffic_gb,6,2026-03-11T00:00:00Z,b\n").encode())
    assert "1 record recorded, 1 already recorded." in answer.get_data(as_text=True)
    assert records() == 2


def test_a_bad_upload_records_nothing_and_names_each_line(client, auth, tenant, other_tenant, admin, metered):  # type: ignore[no-untyped-def]
    foreign = factories.subscription(other_tenant, factories.user(other_tenant),
                                     factories.plan(other_tenant, usage_prices=PRICES),
                                     activated_at=START, current_period_start=START)
    auth.login(admin.email)
    text = HEADER + (f"{metered.id},traffic_gb,5,2026-03-10T00:00:00Z,a\n"
                     f"{foreign.id},traffic_gb,5,2026-03-10T00:00:00Z,b\n"
                     f"{metered.id},traffic_gb,5,2026-03-10,c\n")
    answer = upload(client, text.encode())
    html = answer.get_data(as_text=True)
    assert answer.status_code == 400
    assert f"Line 3: there is no subscription {foreign.id}." in html and "Line 4:" in html
    assert records() == 0


@pytest.mark.parametrize("data", [b"\x00\x01\x02\xff" * 100, "id;metric\n".encode("utf-16"), b"",
                                  b"subscription_id,metric\n", b"\xef\xbb\xbf" + HEADER.encode() + b"1,x,1,t,k\n",
                                  b"\xff" * 400_000, b"1,x,1,t,k\n" * 20_000])
def test_no_upload_answers_500(client, auth, admin, metered, data):  # type: ignore[no-untyped-def]
    auth.login(admin.email)
    assert upload(client, data).status_code in (400, 413)
    assert records() == 0


def test_a_huge_upload_is_too_large(client, auth, admin, metered):  # type: ignore[no-untyped-def]
    auth.login(admin.email)
    answer = client.post("/admin/usage", data={"file": "x" * 2 * 1024 * 1024})
    assert answer.status_code == 413


def test_the_upload_needs_a_csrf_token_and_an_admin(client, auth, customer, admin, metered):  # type: ignore[no-untyped-def]
    auth.login(admin.email)
    csrf_token(client)
    answer = client.post("/admin/usage", data={"file": (io.BytesIO(HEADER.encode()), "u.csv")},
                         content_type="multipart/form-data")
    assert answer.status_code == 400
    auth.logout()
    auth.login(customer.email)
    assert client.get("/admin/usage").status_code in (403, 404)
