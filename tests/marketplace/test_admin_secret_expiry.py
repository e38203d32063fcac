"""The marketplace secrets' expiry: warned of on the admin's pages 30 days ahead and once expired, and emailed to
the tenant's admins once per threshold by the daily job `marketplace-secrets`."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from app.domain.accounts import Role
from app.domain.notifications import Event
from app.extensions import db
from app.models import EmailMessage
from app.services import marketplace_connections as service
from app.services.actors import Actor
from tests import factories
from tests.marketplace.admin_helpers import CLIENT_ID, ENTRA_TENANT, PROJECT_ID, STACKIT_KEY

ENDS = "2026-05-31"  # the clock starts on 2026-03-15 10:00 UTC


def connect(tenant, admin, ends: str = ENDS, secret: str = "Qx8Q~first-secret-value-000000") -> None:  # type: ignore[no-untyped-def]
    service.save_microsoft(tenant=tenant, actor=Actor(admin), entra_tenant_id=ENTRA_TENANT, client_id=CLIENT_ID,
                           client_secret=secret, secret_expires_on=ends)


def warnings_sent() -> list[tuple[str, str]]:
    db.session.expire_all()
    return [(m.to_address, m.subject) for m in db.session.scalars(
        select(EmailMessage).where(EmailMessage.event == Event.MARKETPLACE_SECRET_EXPIRING.value)
        .order_by(EmailMessage.id))]


def run(runner, as_of: str):  # type: ignore[no-untyped-def]
    db.session.commit()  # the command works in sessions of its own
    result = runner.invoke(args=["jobs", "run", "marketplace-secrets", "--as-of", as_of])
    db.session.expire_all()
    assert result.exit_code == 0, result.output
    return result.output


def test_the_warning_says_when_the_secret_expires_and_once_it_has(tenant, admin, clock):
    connect(tenant, admin)
    assert service.secret_expiry_warning(tenant) is None
    soon = service.secret_expiry_warning(tenant, now=datetime(2026, 5, 10, 12, tzinfo=UTC))
    assert soon == ("The Microsoft client secret expires in 21 days (2026-05-31): create a new one and enter it "
                    "before then, or purchases cannot be activated.")
    assert "expires tomorrow" in service.secret_expiry_warning(tenant, now=datetime(2026, 5, 30, 12, tzinfo=UTC))
    assert "expires today" in service.secret_expiry_warning(tenant, now=datetime(2026, 5, 31, 12, tzinfo=UTC))
    expired = service.secret_expiry_warning(tenant, now=datetime(2026, 6, 1, tzinfo=UTC))
    assert expired.startswith("The Microsoft client secret expired on 2026-05-31: Microsoft commercial marketplace "
                              "purchases cannot be activated")


def test_a_stackit_key_with_an_end_date_is_warned_of_too(tenant, admin, clock):
    service.save_stackit(tenant=tenant, actor=Actor(admin), project_id=PROJECT_ID, service_account_key=STACKIT_KEY)
    assert "STACKIT service-account key expires in" in service.secret_expiry_warning(
        tenant, now=datetime(2027, 6, 20, tzinfo=UTC))


def test_the_admins_pages_show_the_warning(client, auth, tenant, admin, clock):
    connect(tenant, admin, ends="2026-05-31")
    auth.login(admin.email)
    assert "marketplace-secret-warning" not in client.get("/admin/marketplaces").get_data(as_text=True)
    assert client.get("/admin/marketplaces/warning").get_data(as_text=True).strip() == ""
    connect(tenant, admin, ends="2026-04-05")
    home = client.get("/admin/").get_data(as_text=True)
    assert 'hx-get="/admin/marketplaces/warning" hx-trigger="load"' in home  # the home loads it as a region
    region = client.get("/admin/marketplaces/warning").get_data(as_text=True)
    assert "expires in 21 days (2026-04-05)" in region
    for path in ("/admin/marketplaces", "/admin/marketplaces/mappings", "/admin/marketplaces/subscriptions",
                 "/admin/marketplaces/operations"):
        assert "expires in 21 days" in client.get(path).get_data(as_text=True), path
    clock.set(datetime(2026, 4, 6, tzinfo=UTC))
    auth.login(admin.email)
    assert "expired on 2026-04-05" in client.get("/admin/marketplaces").get_data(as_text=True)


def test_the_job_emails_every_admin_once_per_threshold(app, runner, tenant, admin, customer, other_tenant, clock):
    second = factories.user(tenant, email="blake@example.com", name="Blake Admin", role=Role.TENANT_ADMIN)
    factories.user(tenant, email="gone@example.com", role=Role.TENANT_ADMIN, is_active=False)
    factories.user(other_tenant, email="theirs@example.com", role=Role.TENANT_ADMIN)
    connect(tenant, admin)

    assert run(runner, "2026-04-15T03:00:00Z") == \
        "marketplace-secrets: 0 marketplace secrets warned of (as of 2026-04-15 03:00:00 UTC)\n"
    assert warnings_sent() == []

    assert "1 marketplace secret warned of" in run(runner, "2026-05-02T03:00:00Z")
    expiring = "Expires 31 May 2026: the Microsoft client secret of Nimbus Test"
    assert warnings_sent() == [(admin.email, expiring), (second.email, expiring)]
    message = db.session.scalars(select(EmailMessage).where(EmailMessage.to_address == admin.email)).first()
    assert "expires in 29 days" in message.text_body and "/admin/marketplaces" in message.text_body
    assert "0 marketplace secrets warned of" in run(runner, "2026-05-20T03:00:00Z")  # told already

    assert "1 marketplace secret warned of" in run(runner, "2026-06-01T03:00:00Z")
    expired = "Expired: the Microsoft client secret of Nimbus Test"
    assert warnings_sent()[2:] == [(admin.email, expired), (second.email, expired)]
    assert "0 marketplace secrets warned of" in run(runner, "2026-06-05T03:00:00Z")
    assert len(warnings_sent()) == 4


def test_a_new_secret_is_warned_of_afresh(runner, tenant, admin, clock):
    connect(tenant, admin)
    run(runner, "2026-05-02T03:00:00Z")
    assert len(warnings_sent()) == 1
    clock.set(datetime(2026, 5, 3, tzinfo=UTC))
    connect(tenant, admin, ends="2026-11-30", secret="Qx8Q~second-secret-value-11111")
    assert service.secret_expiry_warning(tenant) is None
    assert "0 marketplace secrets" in run(runner, "2026-06-05T03:00:00Z")  # the old date no longer counts
    assert "1 marketplace secret warned of" in run(runner, "2026-11-05T03:00:00Z")
    assert [subject for _, subject in warnings_sent()][1] == \
        "Expires 30 Nov 2026: the Microsoft client secret of Nimbus Test"


def test_without_a_connection_or_an_end_date_nothing_is_warned_of(runner, tenant, admin, clock):
    service.save_stackit(tenant=tenant, actor=Actor(admin), project_id=PROJECT_ID,
                         service_account_key=STACKIT_KEY.replace('"validUntil": "2027-06-30T00:00:00Z", ', ""))
    assert "0 marketplace secrets" in run(runner, "2030-06-05T03:00:00Z")
    assert service.secret_expiry_warning(tenant, now=datetime(2030, 6, 5, tzinfo=UTC)) is None
    assert warnings_sent() == []
