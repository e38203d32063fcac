"""Small helpers for web tests: CSRF tokens, form posts, logging in."""

from __future__ import annotations

import re

from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests.factories import PASSWORD

_TOKEN = re.compile(r'"X-CSRFToken": "([^"]+)"')
_TOKENS = re.compile(r'(csrf_token"[^>]*? value="|"X-CSRFToken": ")[^"]+')


def csrf_token(client: FlaskClient, path: str = "/", **kwargs: object) -> str:
    """The token the page at `path` gives this client's session (as htmx would send it)."""
    page = client.get(path, **kwargs).get_data(as_text=True)
    match = _TOKEN.search(page)
    assert match, f"no CSRF token on {path}"
    return match.group(1)


def without_csrf(page: str) -> str:
    """`page` with its CSRF tokens blanked: two answers that differ only in those are the same answer."""
    return _TOKENS.sub(r"\1", page)


def post_form(client: FlaskClient, path: str, data: dict[str, object] | None = None, **kwargs: object
              ) -> TestResponse:
    """POST like a browser would: with the session's CSRF token."""
    base = {k: v for k, v in kwargs.items() if k == "base_url"}
    payload = {"csrf_token": csrf_token(client, **base), **(data or {})}
    return client.post(path, data=payload, **kwargs)


def complete_profile(user, *, card: bool = True) -> None:  # type: ignore[no-untyped-def]
    """Give `user` what ordering asks for: a complete billing profile and (unless `card=False`) a saved card."""
    from app.extensions import db
    from app.models import CustomerProfile
    from tests import factories

    db.session.add(CustomerProfile(user_id=user.id, full_name=user.name, billing_email=user.email,
                                   address="Hauptstrasse 1", city="Berlin", country="DE"))
    db.session.commit()
    if card:
        factories.payment_method(user.tenant, user)


_LINK = re.compile(r"https?://[^/\s]+(/(?:reset-password|confirm-email)/[^\s<>\"]+)")


def outbox(app) -> list:  # type: ignore[no-untyped-def, type-arg]
    """The emails sent so far in this test (flask-mailman's locmem backend)."""
    return app.extensions["mailman"].outbox


def emails_to(app, address: str) -> list:  # type: ignore[no-untyped-def, type-arg]
    return [message for message in outbox(app) if address in message.to]


def emailed_link(app, address: str) -> str:  # type: ignore[no-untyped-def]
    """The path of the latest account link (password reset, confirmation) emailed to `address`."""
    for message in reversed(emails_to(app, address)):
        if match := _LINK.search(message.body):
            return match.group(1)
    raise AssertionError(f"no link was emailed to {address}")


def follow_emailed_link(client: FlaskClient, app, address: str, data: dict[str, object] | None = None,  # type: ignore[no-untyped-def]
                        **kwargs: object) -> TestResponse:
    """Send the form behind the latest link emailed to `address` (the confirm button, or `data`)."""
    return post_form(client, emailed_link(app, address), data, **kwargs)


class AuthActions:
    def __init__(self, client: FlaskClient) -> None:
        self.client = client

    def login(self, email: str, password: str = PASSWORD, **kwargs: object) -> TestResponse:
        return post_form(self.client, "/login", {"email": email, "password": password}, **kwargs)

    def logout(self, **kwargs: object) -> TestResponse:
        return post_form(self.client, "/logout", **kwargs)


def run_scheduled_tasks(rounds: int = 10) -> int:
    """Run the tasks immediate-mode Huey put aside for later, as a consumer would once they are due.

    Tasks that schedule follow-ups are run again, up to `rounds` times. Returns how many ran.
    """
    from app.tasks import huey

    ran = 0
    for _ in range(rounds):
        due = huey.scheduled()
        if not due:
            break
        huey.storage.flush_schedule()
        for task in due:
            huey.execute(task, timestamp=task.eta)
            ran += 1
    return ran
