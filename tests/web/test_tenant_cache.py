"""The tenant of a host is kept between requests, and a change to it is seen at once (app/selectors/tenants.py)."""

from __future__ import annotations

import pytest

from app.config import ConfigError, Settings
from app.extensions import db
from app.models import TenantHost, TenantRef
from app.selectors.tenants import TenantCache
from tests.querycount import count_queries


def test_the_second_request_does_not_look_up_the_tenant(app, client, tenant):
    client.get("/")
    with count_queries(app) as log:
        page = client.get("/").get_data(as_text=True)
    assert tenant.name in page
    assert log.reading("tenants") == []


def test_renaming_the_tenant_shows_on_the_next_request(app, client, tenant):
    client.get("/")
    tenant.name = "Nimbus Renamed"
    db.session.commit()
    assert "Nimbus Renamed" in client.get("/").get_data(as_text=True)


def test_moving_a_hostname_to_another_tenant_takes_effect_at_once(app, client, tenant, other_tenant):
    assert tenant.name in client.get("/", base_url="http://shared.test").get_data(as_text=True)  # the default
    db.session.add(TenantHost(tenant_id=other_tenant.id, hostname="shared.test"))
    db.session.commit()
    page = client.get("/", base_url="http://shared.test").get_data(as_text=True)
    assert other_tenant.name in page and tenant.name not in page


def test_with_no_cache_every_request_looks_up_the_tenant(app, client, tenant, monkeypatch):
    monkeypatch.setitem(app.config, "TENANT_CACHE_SECONDS", 0)
    monkeypatch.delitem(app.extensions, "tenant_cache", raising=False)
    client.get("/")
    with count_queries(app) as log:
        client.get("/")
    assert len(log.reading("tenants")) == 1
    monkeypatch.delitem(app.extensions, "tenant_cache", raising=False)  # the next test gets the configured one


def test_many_unknown_hosts_do_not_grow_the_cache_without_bound():
    cache = TenantCache(seconds=60, size=3)
    looked_up = []
    for index in range(10):
        cache.get(f"host-{index}.example", lambda host: looked_up.append(host))  # type: ignore[func-returns-value]
    assert len(cache) <= 3 and len(looked_up) == 10


def test_an_entry_is_kept_for_its_time_only(monkeypatch):
    moment = [100.0]
    monkeypatch.setattr("app.selectors.tenants.time.monotonic", lambda: moment[0])
    cache = TenantCache(seconds=30)
    ref = TenantRef(1, "default", "Nimbus", 7)
    calls = []

    def resolve(host: str) -> TenantRef:
        calls.append(host)
        return ref

    assert cache.get("a.example", resolve) is ref and cache.get("a.example", resolve) is ref
    moment[0] += 31
    cache.get("a.example", resolve)
    assert calls == ["a.example", "a.example"]


@pytest.mark.parametrize("value", ["-1", "3601", "soon"])
def test_a_bad_cache_time_is_refused_at_start(tmp_path, value):
    with pytest.raises(ConfigError, match="TENANT_CACHE_SECONDS"):
        Settings.from_env({"TENANT_CACHE_SECONDS": value}, str(tmp_path))
