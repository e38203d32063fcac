"""A browser in one role (anonymous, customer, tenant admin, support, support impersonating a customer).

Hostile requests may log the browser out, log it in as someone else, end the impersonation or revoke the
session. So after each state-changing request the browser's cookie is put back, and if its session (or its
impersonation) ended meanwhile, a new one is opened: every probe runs in the role it names.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from app.extensions import db, limiter
from app.models import Impersonation, User, UserSession
from app.services import accounts
from tests.fuzz.routes import SAFE_METHODS
from tests.fuzz.world import World

ROLES = ("anonymous", "customer", "tenant_admin", "support", "impersonating")
_TOKEN = re.compile(r'"X-CSRFToken": "([^"]+)"')


class Errors(logging.Handler):
    """The exceptions the app logged while answering (the cause of a 500, for the failure message)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def first_cause(self) -> str | None:
        for record in self.records:
            if record.exc_info and record.exc_info[1] is not None:
                error = record.exc_info[1]
                return f"{type(error).__name__}: {one_line(str(error))}"
        return one_line(self.records[0].getMessage()) if self.records else None


def one_line(text: str, limit: int = 160) -> str:
    line = re.sub(r"[\x00-\x1f\x7f]", lambda match: f"\\x{ord(match[0]):02x}", " ".join(text.split()))
    return line if len(line) <= limit else line[:limit] + "…"


@dataclass
class Visitor:
    app: Flask
    client: FlaskClient
    world: World
    role: str
    csrf: str = ""
    errors: Errors = field(default_factory=Errors)
    _cookie: str | None = None
    _token: str | None = None
    _record: int | None = None

    def __post_init__(self) -> None:
        self.establish()

    @property
    def user(self) -> User | None:
        return {"customer": self.world.customer, "tenant_admin": self.world.admin, "support": self.world.support,
                "impersonating": self.world.support}.get(self.role)

    def establish(self) -> None:
        """A fresh session in this role, with its CSRF token."""
        cookie = self.app.config["SESSION_COOKIE_NAME"]
        self.client.delete_cookie(cookie)
        if self.user is not None:
            user = accounts.start_session(user=self.user, remote_addr="127.0.0.1", user_agent="fuzz")
            with self.client.session_transaction() as session:
                session["_user_id"], session["_fresh"] = user.session_token, True
            self._token = user.session_token
        if self.role == "impersonating":
            response = self.client.post(f"/support/customers/{self.world.customer.id}/impersonate",
                                        data={"csrf_token": self._page_token(), "reason": "Ticket #4711: fuzz"})
            assert response.status_code == 303, f"could not start impersonating: {response.status_code}"
            with self.client.session_transaction() as session:
                self._token, self._record = session["_user_id"], session["impersonation_id"]
        self.csrf = self._page_token()
        self._cookie = self.client.get_cookie(cookie).value

    def _page_token(self) -> str:
        page = self.client.get("/").get_data(as_text=True)
        match = _TOKEN.search(page)
        assert match, f"no CSRF token on / as {self.role}"
        return match.group(1)

    def open(self, method: str, path: str, **kwargs: object) -> TestResponse | BaseException:
        """One request as this role; an exception that escapes the app (its error page failed) is returned."""
        limiter.reset()  # each probe reaches the view, not the throttle
        self.errors.records.clear()
        try:
            return self.client.open(path, method=method, **kwargs)
        except Exception as error:  # reported as a failure of this probe
            return error
        finally:
            if method not in SAFE_METHODS:
                self._restore()

    def _restore(self) -> None:
        self.client.set_cookie(self.app.config["SESSION_COOKIE_NAME"], self._cookie or "")
        if not self._still_open():
            self.establish()

    def _still_open(self) -> bool:
        if self._token is None:
            return True
        revoked = db.session.execute(select(UserSession.revoked_at).where(UserSession.token == self._token)).first()
        if revoked is None or revoked[0] is not None:
            return False
        if self._record is None:
            return True
        return db.session.execute(select(Impersonation.ended_at).where(Impersonation.id == self._record)
                                  ).scalar_one() is None
