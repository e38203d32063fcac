"""The server's access box and rebuild page: the root password shown once, a new one, a rebuild after typing
the name; nothing for support impersonating the customer."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import SubscriptionItem
from app.services import ordering
from app.services.actors import Actor
from tests import factories
from tests.helpers import csrf_token, post_form, run_scheduled_tasks
from tests.sshkeys import added_key

HX = {"HX-Request": "true"}
PASSWORD = re.compile(r'<code class="root-password">([^<]+)</code>')


def order_server(tenant, customer, clock, **options):  # type: ignore[no-untyped-def]
    plan = factories.plan(tenant)
    subscription = ordering.place_order(tenant=tenant, actor=Actor(customer), plan_id=plan.id, requested_config={},
                                        quantity=1, auto_backorder=False, idempotency_key=f"k-{plan.id}", **options)
    clock.advance(seconds=30)
    run_scheduled_tasks()
    db.session.expire_all()
    return db.session.scalars(select(SubscriptionItem).where(
        SubscriptionItem.subscription_id == subscription.id)).one()


@pytest.fixture
def plain(tenant, logged_in, cloud, clock):  # type: ignore[no-untyped-def]
    """The logged-in customer's running Hetzner server, ordered without a key."""
    return order_server(tenant, logged_in, clock, hostname="plain")


def page_of(client, item) -> str:  # type: ignore[no-untyped-def]
    return client.get(f"/subscriptions/{item.subscription_id}").get_data(as_text=True)


def htmx_post(client, path: str):  # type: ignore[no-untyped-def]
    return client.post(path, headers={**HX, "X-CSRFToken": csrf_token(client)})


def base(item) -> str:  # type: ignore[no-untyped-def]
    return f"/subscriptions/{item.subscription_id}/items/{item.id}"


def test_the_root_password_is_shown_once_on_the_page_then_it_is_gone(client, plain):
    page = page_of(client, plain)
    assert "Show the root password once" in page and "No SSH key on this server" in page
    assert "Reset root password" in page and "Rebuild…" in page

    response = htmx_post(client, f"{base(plain)}/root-password")
    fragment = response.get_data(as_text=True)
    assert response.status_code == 200 and fragment.lstrip().startswith('<section class="access-box"')
    [password] = PASSWORD.findall(fragment)
    assert "shown this once and not kept" in fragment and "history-changed" in response.headers["HX-Trigger"]
    assert response.headers["Cache-Control"] == "no-store"

    again = htmx_post(client, f"{base(plain)}/root-password").get_data(as_text=True)  # another tab
    assert PASSWORD.findall(again) == [] and "There is no root password waiting" in again
    page = page_of(client, plain)
    assert password not in page and "Show the root password once" not in page
    assert "Root password shown" in page  # in the history, without the password


def test_without_javascript_the_password_shows_on_the_whole_page(client, plain):
    response = post_form(client, f"{base(plain)}/root-password")
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and "<html" in page and len(PASSWORD.findall(page)) == 1


def test_a_new_root_password_is_shown_at_once(client, plain, cloud):
    htmx_post(client, f"{base(plain)}/root-password")
    fragment = htmx_post(client, f"{base(plain)}/root-password/reset").get_data(as_text=True)
    assert len(PASSWORD.findall(fragment)) == 1
    assert ("reset_password", plain.server_id) in cloud.calls
    assert "Show the root password once" not in page_of(client, plain)


def test_a_reset_while_another_action_runs_is_explained_in_place(client, plain, cloud):
    cloud.power_off(plain.server_id)
    response = htmx_post(client, f"{base(plain)}/root-password/reset")
    assert response.status_code == 409
    assert "Another action is still running on this server" in response.get_data(as_text=True)
    assert "Show the root password once" in page_of(client, plain)  # the waiting one is still there


def test_the_keys_a_server_has_are_listed_and_no_password_offered(client, tenant, logged_in, cloud, clock):
    item = order_server(tenant, logged_in, clock, hostname="keyed", ssh_key_ids=[added_key(tenant, logged_in)])
    page = page_of(client, item)
    assert "ssh root@keyed.default.cloud.example.test" in page
    assert item.ssh_keys[0]["fingerprint"] in page and "Show the root password once" not in page


def test_rebuild_asks_for_the_name_and_a_wrong_one_changes_nothing(client, plain, cloud):
    page = client.get(f"{base(plain)}/rebuild").get_data(as_text=True)
    assert "Rebuild plain?" in page and "everything on its disk is erased" in page
    assert 'value="debian-12"' in page and "Type <strong>plain</strong> to confirm." in page

    response = post_form(client, f"{base(plain)}/rebuild", {"image": "debian-12", "confirm": "plian"})
    assert response.status_code == 400
    assert "Type the server&#39;s name, plain, to confirm. Nothing was changed." in response.get_data(as_text=True)
    assert not [call for call in cloud.calls if call[0] == "rebuild"]


def test_rebuild_with_the_name_typed_starts_and_the_page_follows_it(client, plain, cloud):
    response = post_form(client, f"{base(plain)}/rebuild", {"image": "debian-12", "confirm": "plain"})
    assert response.status_code == 303 and response.headers["Location"] == f"/subscriptions/{plain.subscription_id}"
    assert ("rebuild", plain.server_id, "debian-12") in cloud.calls
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "plain.default.cloud.example.test is being rebuilt from debian-12." in page
    assert "Server rebuilt" in page and "Show the root password once" in page  # a new one, without a key
    fragment = client.get(f"{base(plain)}/server-info", headers=HX).get_data(as_text=True)
    assert "Rebuilding…" in fragment and 'hx-trigger="every 1s"' in fragment


def test_a_rebuild_from_an_image_the_plan_does_not_offer_is_refused(client, plain, cloud):
    response = post_form(client, f"{base(plain)}/rebuild", {"image": "windows-95", "confirm": "plain"})
    assert response.status_code == 400 and "Choose one of the images offered." in response.get_data(as_text=True)


def test_support_impersonating_sees_no_password_and_changes_nothing(client, auth, tenant, customer, support, cloud,
                                                                    clock):
    from tests.helpers import complete_profile
    from tests.web.test_impersonation import impersonate

    complete_profile(customer)
    item = order_server(tenant, customer, clock, hostname="theirs")
    auth.login(support.email)
    assert impersonate(client, customer).status_code == 303
    page = page_of(client, item)
    assert "Only the customer, logged in as themselves, can see root passwords" in page
    assert "Show the root password once" not in page and "Rebuild…" not in page
    response = htmx_post(client, f"{base(item)}/root-password")
    assert response.status_code == 422 and PASSWORD.findall(response.get_data(as_text=True)) == []
    assert "Support staff cannot see a customer&#39;s root password" in response.get_data(as_text=True)
    assert htmx_post(client, f"{base(item)}/root-password/reset").status_code == 422
    response = post_form(client, f"{base(item)}/rebuild", {"image": "debian-12", "confirm": "theirs"})
    assert response.status_code == 403
    db.session.expire_all()
    assert db.session.get(SubscriptionItem, item.id).root_password_sealed is not None
    assert not [call for call in cloud.calls if call[0] in ("rebuild", "reset_password")]


def test_another_customers_server_is_not_found(client, auth, tenant, customer, cloud, clock):
    from tests.helpers import complete_profile

    complete_profile(customer)
    item = order_server(tenant, customer, clock, hostname="private")
    other = factories.user(tenant)
    auth.login(other.email)
    assert htmx_post(client, f"{base(item)}/root-password").status_code == 404
    assert client.get(f"{base(item)}/rebuild").status_code == 404
