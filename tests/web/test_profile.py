"""The customer's billing profile: /account/profile."""

from __future__ import annotations

import html
import re
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import CustomerProfile
from app.selectors.profiles import profile_for
from app.services import profiles
from app.services.actors import Actor
from app.services.errors import Forbidden, InvalidInput
from tests import factories
from tests.helpers import post_form

VALID = {"full_name": "Casey Customer", "billing_email": "billing@example.com", "company": "Casey GmbH",
         "address": "Bahnhofstrasse 1", "postal_code": "8001", "city": "Zürich", "country": "CH"}


def save(client, path="/account/profile", **changes):
    return post_form(client, path, {**VALID, **changes})


def count_profiles() -> int:
    return db.session.scalar(select(func.count()).select_from(CustomerProfile))


@pytest.fixture
def logged_in(client, customer, auth):
    auth.login(customer.email)
    return customer


def test_the_form_starts_from_the_account(client, logged_in):
    page = client.get("/account/profile").get_data(as_text=True)
    assert 'value="Casey Customer"' in page and 'value="casey@example.com"' in page
    assert '<option selected value="">Choose a country</option>' in page
    assert "Complete your billing profile" not in page


def test_profile_is_saved_and_shown_again(client, logged_in):
    response = save(client, full_name="  Casey C.  ", city=" Zürich ")
    assert response.status_code == 303
    assert response.headers["Location"] == "/account/profile"
    profile = profile_for(logged_in)
    assert (profile.full_name, profile.city, profile.country) == ("Casey C.", "Zürich", "CH")
    assert profile.is_complete
    page = client.get("/account/profile").get_data(as_text=True)
    assert "Your profile is saved." in page
    assert 'value="Casey C."' in page and 'value="Bahnhofstrasse 1"' in page
    assert '<option selected value="CH">Switzerland</option>' in page


def test_saving_again_updates_the_same_profile(client, logged_in):
    save(client)
    assert save(client, city="Basel", company="").status_code == 303
    assert count_profiles() == 1
    profile = profile_for(logged_in)
    assert (profile.city, profile.company) == ("Basel", "")


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"country": "XX"}, "country", "Not a valid choice"),
        ({"country": ""}, "country", "Choose a country."),
        ({"billing_email": "not-an-email"}, "billing_email", "Invalid email address."),
        ({"city": "   "}, "city", "This field is required."),
        ({"full_name": "x" * 201}, "full_name", "200 characters"),
        ({"postal_code": "1" * 21}, "postal_code", "20 characters"),
    ],
)
def test_invalid_input_is_explained_beside_the_field_and_nothing_is_saved(client, logged_in, changes, field,
                                                                          message):
    response = save(client, **changes)
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    error = page.split(f'id="{field}-error">', 1)[1].split("</p>", 1)[0]
    assert message in error
    assert re.search(f'aria-invalid="true"[^>]* id="{field}"', page)
    assert count_profiles() == 0


def test_a_missing_field_is_refused(client, logged_in):
    data = {k: v for k, v in VALID.items() if k != "city"}
    response = post_form(client, "/account/profile", data)
    assert response.status_code == 400
    assert 'id="city-error"' in response.get_data(as_text=True)
    assert count_profiles() == 0


def test_invalid_input_changes_an_existing_profile_not_at_all(client, logged_in):
    save(client)
    assert save(client, city="", full_name="Someone Else").status_code == 400
    db.session.expire_all()
    assert (profile_for(logged_in).city, profile_for(logged_in).full_name) == ("Zürich", "Casey Customer")


def test_next_brings_the_order_back_with_its_choices(client, logged_in):
    order = "/order/12?serverType=cx22&location=hel1"
    path = "/account/profile?" + urlencode({"next": order})
    page = client.get(path).get_data(as_text=True)
    assert "Complete your billing profile to continue with your order." in page
    action = html.unescape(page.split('action="/account/profile', 1)[1].split('"', 1)[0])
    assert parse_qs(urlsplit(action).query) == {"next": [order]}
    response = save(client, path)
    assert response.status_code == 303
    assert response.headers["Location"] == order


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/", "/\\evil.example",
                                    "javascript:alert(1)"])
def test_next_is_honoured_only_for_local_paths(client, logged_in, target):
    path = "/account/profile?" + urlencode({"next": target})
    assert "Complete your billing profile" not in client.get(path).get_data(as_text=True)
    response = save(client, path)
    assert response.status_code == 303
    assert response.headers["Location"] == "/account/profile"


@pytest.mark.parametrize("who", ["admin", "support"])
def test_staff_have_no_profile_page(request, client, auth, who):
    auth.login(request.getfixturevalue(who).email)
    assert client.get("/account/profile").status_code == 403
    assert save(client).status_code == 403
    assert count_profiles() == 0


def test_anonymous_visitors_are_sent_to_log_in(client, tenant):
    response = client.get("/account/profile?next=/order/1")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")


def test_the_navigation_links_customers_to_their_profile(client, logged_in):
    assert 'href="/account/profile"' in client.get("/").get_data(as_text=True)


def test_owner_and_tenant_fields_are_ignored(client, logged_in, tenant, other_tenant):
    other = factories.user(tenant, email="other@example.com")
    response = save(client, user_id=str(other.id), tenant_id=str(other_tenant.id), id="999")
    assert response.status_code == 303
    assert [p.user_id for p in db.session.scalars(select(CustomerProfile))] == [logged_in.id]


def test_another_customers_profile_is_never_touched(client, logged_in, tenant):
    other = factories.user(tenant, email="other@example.com")
    profiles.save_profile(actor=Actor(other), **{**VALID, "full_name": "Other Person", "city": "Bern"})
    save(client, user_id=str(other.id))
    db.session.expire_all()
    assert (profile_for(other).full_name, profile_for(other).city) == ("Other Person", "Bern")
    assert profile_for(logged_in).full_name == "Casey Customer"
    assert "Other Person" not in client.get("/account/profile").get_data(as_text=True)


def test_hostile_values_are_stored_as_text_and_shown_escaped(client, logged_in):
    hostile = '<script>alert("x")</script>'
    assert save(client, full_name=hostile, company=hostile).status_code == 303
    assert profile_for(logged_in).full_name == hostile
    page = client.get("/account/profile").get_data(as_text=True)
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page


# The service holds the rules on its own, whoever calls it.

def test_the_service_refuses_staff(admin):
    with pytest.raises(Forbidden):
        profiles.save_profile(actor=Actor(admin), **VALID)


@pytest.mark.parametrize(
    ("changes", "field"),
    [({"country": "XX"}, "country"), ({"country": ""}, "country"), ({"city": " "}, "city"),
     ({"billing_email": "nope"}, "billing_email"), ({"address": "a" * 301}, "address")],
)
def test_the_service_checks_its_input(customer, changes, field):
    with pytest.raises(InvalidInput) as caught:
        profiles.save_profile(actor=Actor(customer), **{**VALID, **changes})
    assert caught.value.field == field
    assert count_profiles() == 0


def test_the_service_normalizes_and_logs(customer, caplog):
    profile = profiles.save_profile(actor=Actor(customer), **{**VALID, "country": " ch ", "billing_email": " b@example.com "})
    assert (profile.country, profile.billing_email) == ("CH", "b@example.com")
    assert any(r.message == "profile saved" and r.user_id == customer.id for r in caplog.records)


def test_a_profile_saved_by_support_for_the_customer_names_both(customer, support):
    profile = profiles.save_profile(actor=Actor(customer, impersonator=support), **VALID)
    assert (profile.updated_by_id, profile.updated_by_impersonator_id) == (customer.id, support.id)
    profile = profiles.save_profile(actor=Actor(customer), **VALID)
    assert (profile.updated_by_id, profile.updated_by_impersonator_id) == (customer.id, None)


def test_only_admins_and_the_portal_enable_or_disable_accounts(tenant, customer, support, admin):
    from app.services import accounts
    from app.services.errors import Forbidden

    for who in (customer, support):
        with pytest.raises(Forbidden):
            accounts.set_active(actor=Actor(who), user=customer, active=False)
    assert customer.is_active
    accounts.set_active(actor=Actor(admin), user=customer, active=False)
    assert not customer.is_active


def test_an_eu_business_saves_its_vat_id_in_the_shape_of_its_country(client, auth, customer):
    auth.login(customer.email)
    response = save(client, country="DE", vat_id="de 123.456.789")
    assert response.status_code == 303
    assert db.session.scalar(select(CustomerProfile.vat_id)) == "DE123456789"


@pytest.mark.parametrize(("country", "vat_id", "message"), [
    ("DE", "DE12345", "Enter an EU VAT id"),
    ("DE", "FR12345678901", "This VAT id is not from DE"),
    ("CH", "DE123456789", "A VAT id is for businesses in the EU"),
])
def test_a_vat_id_of_the_wrong_shape_is_refused(client, auth, customer, country, vat_id, message):
    auth.login(customer.email)
    response = save(client, country=country, vat_id=vat_id)
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert count_profiles() == 0
