"""Secrets kept at rest: sealed with Fernet (authenticated encryption) under the portal's one key.

Cloud API tokens (app/services/credentials.py) and the root passwords a cloud gives a server made without an
SSH key (app/services/server_access.py) are stored sealed. The key is CREDENTIALS_KEY when set, else one
derived from SECRET_KEY; changing it makes what was sealed before unreadable (`Unreadable`).
"""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app


class Unreadable(ValueError):
    """Sealed with another key (the key changed) or tampered with."""


def seal(plaintext: str) -> str:
    """`plaintext` encrypted and authenticated, as text fit for a column."""
    return _fernet().encrypt(plaintext.encode()).decode()


def unseal(sealed: str) -> str:
    """The text `seal` was given. Raises Unreadable when the key changed or the text was altered."""
    try:
        return _fernet().decrypt(sealed.encode()).decode()
    except InvalidToken:
        raise Unreadable("sealed with another key, or altered") from None


def _fernet() -> Fernet:
    key = current_app.config.get("CREDENTIALS_KEY")
    if key:
        return Fernet(key)
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"portal cloud credentials").derive(
        current_app.config["SECRET_KEY"].encode())
    return Fernet(base64.urlsafe_b64encode(derived))
