"""Which SSH public keys are accepted, and how they are fingerprinted and named (no app, no database)."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from app.domain.ssh_keys import MAX_KEY_LENGTH, KeyProblem, name_problem, parse_public_key
from tests.sshkeys import ecdsa_key, ed25519_key, private_key, rsa_key


def test_an_ed25519_key_is_accepted_and_normalized() -> None:
    text = ed25519_key("casey@laptop")
    key_type, blob, _ = text.split(" ", 2)
    key = parse_public_key(f"  {key_type}   {blob}   casey@laptop \n")
    assert (key.key_type, key.bits, key.label) == ("ssh-ed25519", 256, "ED25519")
    assert key.public_key == f"{key_type} {blob} casey@laptop"
    assert key.comment == key.suggested_name == "casey@laptop"
    assert key.fingerprint.startswith("SHA256:") and not key.fingerprint.endswith("=")
    assert len(key.fingerprint) == len("SHA256:") + 43


@pytest.mark.parametrize(("curve", "bits"), [(ec.SECP256R1(), 256), (ec.SECP384R1(), 384), (ec.SECP521R1(), 521)])
def test_ecdsa_keys_are_accepted(curve: ec.EllipticCurve, bits: int) -> None:
    key = parse_public_key(ecdsa_key(curve=curve))
    assert key.key_type == f"ecdsa-sha2-nistp{bits}" and key.bits == bits and key.label == "ECDSA"


@pytest.mark.parametrize("bits", [2048, 3072])
def test_rsa_keys_of_2048_bits_and_more_are_accepted(bits: int) -> None:
    key = parse_public_key(rsa_key(bits))
    assert (key.key_type, key.bits) == ("ssh-rsa", bits)


def test_an_rsa_key_of_1024_bits_is_refused() -> None:
    with pytest.raises(KeyProblem, match="This RSA key has 1024 bits; at least 2048 are needed"):
        parse_public_key(rsa_key(1024))


def test_a_key_without_a_comment_is_named_after_its_kind() -> None:
    key = parse_public_key(ed25519_key(comment=""))
    assert key.comment == "" and key.suggested_name == "ED25519 key"
    assert key.public_key.count(" ") == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "Paste your public key"),
        ("   ", "Paste your public key"),
        ("hello world", "This is not an SSH public key"),
        ("ssh-ed25519", "The key is incomplete"),
        ("ssh-ed25519 AAAA!!!notbase64 me@host", "not valid base64"),
        ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDk= me@host", "damaged or its type does not match"),
        ("ssh-dss AAAAB3NzaC1kc3MAAACBAP me@host", "DSA keys are no longer safe"),
        ('command="ls" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5 x', "without options in front of it"),
        ("x" * (MAX_KEY_LENGTH + 1), "too long"),
    ],
)
def test_garbage_is_refused_with_a_reason(text: str, message: str) -> None:
    with pytest.raises(KeyProblem, match=message):
        parse_public_key(text)


def test_a_key_whose_type_names_another_kind_is_refused() -> None:
    blob = ed25519_key().split()[1]
    with pytest.raises(KeyProblem, match="does not match"):
        parse_public_key(f"ssh-rsa {blob}")


def test_a_private_key_is_refused_and_the_customer_warned() -> None:
    with pytest.raises(KeyProblem, match="This is a private key: keep it secret"):
        parse_public_key(private_key())


def test_two_keys_at_once_are_refused() -> None:
    with pytest.raises(KeyProblem, match="one key at a time"):
        parse_public_key(ed25519_key() + "\n" + ed25519_key())


def test_a_comment_that_is_not_plain_text_is_dropped() -> None:
    key_type, blob = ed25519_key().split()[:2]
    assert parse_public_key(f"{key_type} {blob} a\tb").comment == ""
    assert parse_public_key(f"{key_type} {blob} {'c' * 300}").comment == ""
    assert parse_public_key(f"{key_type} {blob} José@Rechner").comment == "José@Rechner"


def test_the_same_key_has_the_same_fingerprint_whatever_its_comment() -> None:
    key_type, blob = ed25519_key().split()[:2]
    assert parse_public_key(f"{key_type} {blob} a").fingerprint == parse_public_key(f"{key_type} {blob} b").fingerprint


SSH_KEYGEN = shutil.which("ssh-keygen")


@pytest.mark.skipif(SSH_KEYGEN is None, reason="needs ssh-keygen")
@pytest.mark.parametrize("make", [ed25519_key, ecdsa_key, rsa_key])
def test_the_fingerprint_is_what_ssh_keygen_prints(make, tmp_path) -> None:  # type: ignore[no-untyped-def]
    text = make()
    path = tmp_path / "key.pub"
    path.write_text(text + "\n")
    shown = subprocess.run([str(SSH_KEYGEN), "-l", "-E", "sha256", "-f", str(path)],  # noqa: S603 - our own file
                           capture_output=True, text=True, check=True).stdout.split()
    key = parse_public_key(text)
    assert shown[0] == str(key.bits) and shown[1] == key.fingerprint and shown[-1] == f"({key.label})"


@pytest.mark.parametrize(("name", "problem"), [("laptop", None), ("", "Give the key a name."),
                                                ("x" * 101, "Use at most 100 characters."),
                                                ("a\x00b", "Use letters, digits, spaces and punctuation only.")])
def test_key_names(name: str, problem: str | None) -> None:
    assert name_problem(name) == problem
