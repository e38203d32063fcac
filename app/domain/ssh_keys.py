"""SSH public keys as customers paste them: which are accepted, and how each is named and fingerprinted.

Accepted: Ed25519, ECDSA (nistp256, nistp384, nistp521) and RSA of at least 2048 bits, one key in OpenSSH's
one-line form (`type base64 [comment]`, what `ssh-keygen` writes to the `.pub` file). A key is shown by its
SHA256 fingerprint exactly as `ssh-keygen -l` prints it (`SHA256:` and the unpadded base64 of the SHA-256 of
the key's blob). The stored form is normalized: single spaces, the comment kept only when it is plain text
(no control characters, at most 200 characters).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_ssh_public_key

MAX_KEY_LENGTH = 8192  # characters; an RSA key of 16384 bits is about 2,800
MAX_NAME_LENGTH = 100
MAX_COMMENT_LENGTH = 200
MIN_RSA_BITS = 2048
MAX_KEYS_PER_ACCOUNT = 50
MAX_KEYS_PER_SERVER = 10

KEY_TYPES = ("ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "ssh-rsa")
TYPE_LABELS = {"ssh-ed25519": "ED25519", "ecdsa-sha2-nistp256": "ECDSA", "ecdsa-sha2-nistp384": "ECDSA",
               "ecdsa-sha2-nistp521": "ECDSA", "ssh-rsa": "RSA"}
_REFUSED_TYPES = {
    "ssh-dss": "DSA keys are no longer safe and are not accepted.",
    "sk-ssh-ed25519@openssh.com": "Security-key (FIDO) keys are not supported by cloud images yet.",
    "sk-ecdsa-sha2-nistp256@openssh.com": "Security-key (FIDO) keys are not supported by cloud images yet.",
}
_MAKE_ONE = "Make one with: ssh-keygen -t ed25519"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class KeyProblem(ValueError):
    """Why a pasted text is not an acceptable public key; the message is meant for the customer."""


@dataclass(frozen=True, slots=True)
class PublicKey:
    key_type: str  # as in the key: ssh-ed25519, ecdsa-sha2-nistp256, ssh-rsa, ...
    bits: int
    public_key: str  # "type base64 [comment]", normalized
    fingerprint: str  # "SHA256:..." as `ssh-keygen -l` prints it
    comment: str

    @property
    def label(self) -> str:
        """`ssh-keygen -l`'s type in parentheses: ED25519, ECDSA, RSA."""
        return TYPE_LABELS[self.key_type]

    @property
    def suggested_name(self) -> str:
        """The comment (often user@host), else the kind of key."""
        return (self.comment or f"{self.label} key")[:MAX_NAME_LENGTH]


def parse_public_key(text: str) -> PublicKey:
    """The public key in `text`, validated. Raises KeyProblem saying what is wrong."""
    text = (text or "").strip()
    if not text:
        raise KeyProblem(f"Paste your public key: the contents of the .pub file. {_MAKE_ONE}")
    if "PRIVATE KEY" in text:
        raise KeyProblem("This is a private key: keep it secret and never paste it anywhere. "
                         "Paste the public key instead: the contents of the .pub file.")
    if len(text) > MAX_KEY_LENGTH:
        raise KeyProblem(f"This is too long for a public key (at most {MAX_KEY_LENGTH} characters).")
    if "\n" in text or "\r" in text:
        raise KeyProblem("Paste one key at a time, on one line.")
    key_type, blob_text, comment = _parts(text)
    blob = _blob(blob_text)
    key = _load(key_type, blob_text)
    bits = _bits(key)
    if key_type == "ssh-rsa" and bits < MIN_RSA_BITS:
        raise KeyProblem(f"This RSA key has {bits} bits; at least {MIN_RSA_BITS} are needed. {_MAKE_ONE}")
    normalized = f"{key_type} {blob_text}" + (f" {comment}" if comment else "")
    return PublicKey(key_type, bits, normalized, fingerprint(blob), comment)


def fingerprint(blob: bytes) -> str:
    """The SHA256 fingerprint of a key's binary blob, as `ssh-keygen -l` shows it."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def name_problem(name: str) -> str | None:
    """Why `name` (already stripped) cannot name a key, or None."""
    if not name:
        return "Give the key a name."
    if len(name) > MAX_NAME_LENGTH:
        return f"Use at most {MAX_NAME_LENGTH} characters."
    if _CONTROL.search(name):
        return "Use letters, digits, spaces and punctuation only."
    return None


def _parts(text: str) -> tuple[str, str, str]:
    fields = text.split(None, 2)
    key_type = fields[0]
    if key_type not in KEY_TYPES:
        if key_type in _REFUSED_TYPES:
            raise KeyProblem(f"{_REFUSED_TYPES[key_type]} {_MAKE_ONE}")
        if any(known in text for known in KEY_TYPES):
            raise KeyProblem("Paste the key alone, starting with its type (such as ssh-ed25519), "
                             "without options in front of it.")
        raise KeyProblem("This is not an SSH public key. It should start with ssh-ed25519, ecdsa-sha2-... or "
                         f"ssh-rsa. {_MAKE_ONE}")
    if len(fields) < 2:
        raise KeyProblem("The key is incomplete: its type is there, but not the key itself.")
    comment = fields[2].strip() if len(fields) > 2 else ""
    if _CONTROL.search(comment) or len(comment) > MAX_COMMENT_LENGTH:
        comment = ""  # a comment is only a label: one that is not plain text is dropped, not refused
    return key_type, fields[1], comment


def _blob(blob_text: str) -> bytes:
    try:
        return base64.b64decode(blob_text, validate=True)
    except (binascii.Error, ValueError):
        raise KeyProblem("The key is damaged (it is not valid base64). Copy the whole line again.") from None


def _load(key_type: str, blob_text: str) -> object:
    try:
        return load_ssh_public_key(f"{key_type} {blob_text}".encode())
    except (ValueError, UnsupportedAlgorithm):
        raise KeyProblem("The key is damaged or its type does not match its contents. Copy the whole line "
                         "again.") from None


def _bits(key: object) -> int:
    if isinstance(key, rsa.RSAPublicKey):
        return key.key_size
    if isinstance(key, ec.EllipticCurvePublicKey):
        return key.curve.key_size
    if isinstance(key, ed25519.Ed25519PublicKey):
        return 256
    raise KeyProblem("This kind of key is not accepted.")


# --- the keys a server is made with ------------------------------------------------------------------------------

CONFIG_KEY = "sshKeys"  # where an item's config keeps the keys chosen when it was ordered


def snapshot(keys: Iterable[Any]) -> list[dict[str, str]]:
    """What an item keeps of each chosen key (anything with name, fingerprint and public_key): enough to apply
    and show it again however the customer's keys change later."""
    return [{"name": key.name, "fingerprint": key.fingerprint, "public_key": key.public_key} for key in keys]


def server_keys(config: dict[str, Any]) -> list[dict[str, str]]:
    """The keys kept in an item's config (see `snapshot`); none for items ordered without."""
    kept = config.get(CONFIG_KEY)
    return [key for key in kept if isinstance(key, dict)] if isinstance(kept, list) else []


def authorized_keys(config: dict[str, Any]) -> list[str]:
    """The public keys to authorize on an item's server, one line each."""
    return [key["public_key"] for key in server_keys(config) if key.get("public_key")]


def keep_keys(new_config: dict[str, Any], old_config: dict[str, Any]) -> dict[str, Any]:
    """`new_config` (a changed server type, location, ...) with the keys `old_config` kept."""
    kept = old_config.get(CONFIG_KEY)
    return {**new_config, CONFIG_KEY: kept} if kept is not None else dict(new_config)
