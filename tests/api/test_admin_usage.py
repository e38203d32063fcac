"""POST /api/v1/admin/usage: CSV bodies and JSON rows recorded all or nothing by the usage page's import, each
problem named by its line or row; replays, scopes and other tenants' subscriptions."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from app.domain.accounts import Role
from app.domain.api_tokens import Scope
from app.extensions import db
from app.models import UsageRecord
from app.services import api_tokens
from app.services.actors import Actor
from tests import factories

URL = "/api/v1/admin/usage"
START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
PRICES = [{"metric": "traffic_gb", "label": "Outgoing traffic", "unit": "GB", "unit_price_minor": 2,
           "included": 100}]
HEADER = "subscription_id,metric,quantity,timestamp,idempotency_key\n"


def _token(tenant, user, *scopes: Scope) -> dict[str, str]:  # type: ignore[no-untyped-def]
    secret = api_tokens.create(tenant=tenant, actor=Actor(user), name="ops",
                               scopes=frozenset(scopes or (Scope.ADMIN,)), expires_in_days=30).secret
    return {"Authorization": f"Bearer {secret}", "Idempotency-Key": str(uuid.uuid4())}


@pytest.fixture
def metered(tenant, customer, clock):  # type: ignore[no-untyped-def]
    plan = factories.plan(tenant, price_minor=300, usage_prices=PRICES)
    return factories.subscription(tenant, customer, plan, price_minor=300, activated_at=START,
                                  current_period_start=START, current_period_end=datetime(2026, 4, 1, 12, tzinfo=UTC))


def _records() -> int:
    return db.session.scalar(select(func.count()).select_from(UsageRecord)) or 0


def _opaque(client, subscription_id: int) -> str:  # type: ignore[no-untyped-def]
    from app.blueprints.api.ids import encode

    with client.application.test_request_context():
        return encode("sub", subscription_id)


def test_a_csv_body_is_recorded_and_a_replay_answers_the_same(client, tenant, admin, metered) -> None:  # type: ignore[no-untyped-def]
    headers = _token(tenant, admin)
    body = HEADER + f"{metered.id},traffic_gb,5,2026-03-10T00:00:00Z,a\n{metered.id},traffic_gb,7,2026-03-11T00:00:00Z,b\n"
    done = client.post(URL, data=body, headers={**headers, "Content-Type": "text/csv"})
    assert done.status_code == 200, done.json
    assert done.json == {"recorded": 2, "already": 0}
    replay = client.post(URL, data=body, headers={**headers, "Content-Type": "text/csv"})
    assert replay.headers["Idempotent-Replayed"] == "true" and replay.json == done.json
    again = client.post(URL, data=body, headers={**_token(tenant, admin), "Content-Type": "text/csv"})
    assert again.json == {"recorded": 0, "already": 2}  # each row's key: never recorded twice
    assert _records() == 2


def test_json_rows_are_recorded(client, tenant, admin, metered) -> None:  # type: ignore[no-untyped-def]
    row = {"subscriptionId": _opaque(client, metered.id), "metric": "traffic_gb", "quantity": 3,
           "timestamp": "2026-03-10T01:00:00+01:00", "idempotencyKey": "j1", "note": "ignored"}
    done = client.post(URL, json={"rows": [row], "extra": True}, headers=_token(tenant, admin))
    assert done.status_code == 200, done.json
    assert done.json == {"recorded": 1, "already": 0} and _records() == 1


def test_one_bad_line_records_nothing_and_each_problem_names_its_line(client, tenant, admin, metered) -> None:  # type: ignore[no-untyped-def]
    body = HEADER + (f"{metered.id},traffic_gb,5,2026-03-10T00:00:00Z,a\n"
                     f"{metered.id},cpu,5,2026-03-10T00:00:00Z,b\n"
                     f"{metered.id},traffic_gb,many,2026-03-10T00:00:00Z,c\n")
    refused = client.post(URL, data=body, headers={**_token(tenant, admin), "Content-Type": "text/csv"})
    assert refused.status_code == 422 and refused.mimetype == "application/problem+json"
    assert set(refused.json["errors"]) == {"line 3", "line 4"}
    assert _records() == 0
    empty = client.post(URL, data="", headers={**_token(tenant, admin), "Content-Type": "text/csv"})
    assert empty.status_code == 422 and "body" in empty.json["errors"]
    binary = client.post(URL, data=b"\xff\xfe", headers={**_token(tenant, admin), "Content-Type": "text/csv"})
    assert binary.status_code == 422 and "body" in binary.json["errors"]


def test_bad_json_rows_name_the_row_and_record_nothing(client, tenant, admin, metered) -> None:  # type: ignore[no-untyped-def]
    sid = _opaque(client, metered.id)
    good = {"subscriptionId": sid, "metric": "traffic_gb", "quantity": 3, "timestamp": "2026-03-10T00:00:00Z",
            "idempotencyKey": "j1"}
    bad = {**good, "timestamp": "yesterday", "idempotencyKey": "j2"}
    refused = client.post(URL, json={"rows": [good, bad]}, headers=_token(tenant, admin))
    assert refused.status_code == 422 and list(refused.json["errors"]) == ["rows.1"]
    shape = client.post(URL, json={"rows": [{**good, "subscriptionId": "pln_0000000"}]}, headers=_token(tenant, admin))
    assert shape.status_code == 422 and "rows" in shape.json["errors"]
    assert client.post(URL, json={"rows": []}, headers=_token(tenant, admin)).status_code == 422
    assert _records() == 0


def test_scopes_and_other_tenants(client, tenant, other_tenant, admin, customer, metered) -> None:  # type: ignore[no-untyped-def]
    body = HEADER + f"{metered.id},traffic_gb,5,2026-03-10T00:00:00Z,a\n"
    for headers in (_token(tenant, customer, Scope.WRITE), _token(tenant, admin, Scope.WRITE)):
        assert client.post(URL, data=body, headers={**headers, "Content-Type": "text/csv"}).status_code == 403
    boss = factories.user(other_tenant, email="boss@other.test", role=Role.TENANT_ADMIN)
    theirs = client.post(URL, data=body, base_url="http://other.test",
                         headers={**_token(other_tenant, boss), "Content-Type": "text/csv"})
    assert theirs.status_code == 422 and "no subscription" in theirs.json["errors"]["line 2"][0]
    assert _records() == 0
