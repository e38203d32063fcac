"""SSH keys for tests: made with `cryptography`, in OpenSSH's one-line public form (and the private form)."""

from __future__ import annotations

from functools import lru_cache

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat


def _public(private: object, comment: str) -> str:
    line = private.public_key().public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode()  # type: ignore[attr-defined]
    return f"{line} {comment}" if comment else line


def ed25519_key(comment: str = "casey@laptop") -> str:
    """A new Ed25519 public key (a different one each call)."""
    return _public(ed25519.Ed25519PrivateKey.generate(), comment)


def ecdsa_key(comment: str = "casey@work", curve: ec.EllipticCurve | None = None) -> str:
    return _public(ec.generate_private_key(curve or ec.SECP256R1()), comment)


@lru_cache(maxsize=8)
def rsa_key(bits: int = 2048, comment: str = "casey@old-laptop") -> str:
    """An RSA public key of `bits` bits (kept per size and comment: RSA keys are slow to make)."""
    return _public(rsa.generate_private_key(public_exponent=65537, key_size=bits), comment)


def private_key() -> str:
    """An OpenSSH private key, as someone might paste by mistake."""
    return ed25519.Ed25519PrivateKey.generate().private_bytes(Encoding.PEM, PrivateFormat.OpenSSH,
                                                              NoEncryption()).decode()


def added_key(tenant, user, comment: str = "casey@laptop") -> int:  # type: ignore[no-untyped-def]
    """A new Ed25519 key on `user`'s account, added through the service; its id."""
    from app.services import ssh_keys
    from app.services.actors import Actor

    return ssh_keys.add_key(tenant=tenant, actor=Actor(user), public_key=ed25519_key(comment)).id
