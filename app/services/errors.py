"""Errors a service raises; views map them to a form error, a message or a status code."""

from __future__ import annotations


class ServiceError(Exception):
    """A request the rules refuse. `message` is safe and meant for the person who asked."""

    status_code = 400

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidInput(ServiceError):
    status_code = 400


class AuthenticationFailed(ServiceError):
    status_code = 401


class NotFound(ServiceError):
    status_code = 404


class Forbidden(ServiceError):
    status_code = 403


class Conflict(ServiceError):
    """Someone else changed the thing first; reload and try again."""

    status_code = 409


class NotConfirmed(ServiceError):
    """The right password, but the account's address is not confirmed yet: it cannot log in until it is."""

    status_code = 403

    def __init__(self, *, user_id: int, email: str) -> None:
        super().__init__(f"Confirm your email address first: open the link we sent to {email}.")
        self.user_id = user_id
        self.email = email
