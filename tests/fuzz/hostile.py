"""The hostile values the fuzz suite sends, each with a short name for failure messages."""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import quote


@dataclass(frozen=True)
class Value:
    """A value as text (`text`), or as bytes already percent-encoded (`raw`) when text cannot carry it."""

    name: str
    text: str = ""
    raw: str | None = None

    def encoded(self) -> str:
        """Percent-encoded, for a path segment, a query string or a URL-encoded body."""
        return self.raw if self.raw is not None else quote(self.text, safe="")


# Strings for path segments, query arguments and form fields (odd Unicode: RTL override, combining marks,
# a ZWJ emoji sequence, BOM and zero-width space).
STRINGS = (
    Value("NUL", "a\x00b"),
    Value("10,000 chars", "x" * 10_000),
    Value("odd Unicode", "\u202egnp.exe\u202c Z\u0351\u0352\u0353\u0354\u0355 "
                         "\U0001f469\u200d\U0001f469\u200d\U0001f467 \ufeff\u200b"),
    Value("lone surrogate", raw="%ED%A0%80"),
    Value("invalid UTF-8", raw="%FF%FE%C0%AF"),
)

# Numbers as they arrive in query arguments (?page=, ?quantity=) and number fields.
NUMBERS = (
    Value("20 digits", "99999999999999999999"),
    Value("-1", "-1"),
    Value("0", "0"),
    Value("abc", "abc"),
    Value("1e3", "1e3"),
    Value("2**31", str(2**31)),
    Value("2**63", str(2**63)),
)

# Ids in URLs. Negative and non-numeric ones match no `<int:...>` route: the 404 page must still be the portal's.
IDS = (
    Value("0", "0"),
    Value("-1", "-1"),
    Value("2**31-1", str(2**31 - 1)),
    Value("2**31", str(2**31)),
    Value("2**63-1", str(2**63 - 1)),
    Value("2**63", str(2**63)),
    Value("10**20", str(10**20)),
    Value("abc", "abc"),
    Value("1e3", "1e3"),
    Value("%00", raw="%00"),
)

# Where the portal redirects after login or the profile form: none of these may be followed off-site.
NEXT = (
    Value("off-site", "https://evil.example/"),
    Value("scheme-relative", "//evil.example/x"),
    Value("backslash", "/\\evil.example"),
    Value("javascript", "javascript:alert(1)"),
)


@dataclass(frozen=True)
class Body:
    """A request body: bytes and their content type; `refused` bodies must answer 400 or 413."""

    name: str
    data: bytes
    content_type: str
    refused: bool = False


def _json(name: str, payload: str) -> Body:
    return Body(f"JSON {name}", payload.encode(), "application/json")


def _multipart(parts: int) -> bytes:
    boundary = "fuzzboundary"
    chunks = [f'--{boundary}\r\nContent-Disposition: form-data; name="f{n}"\r\n\r\nx\r\n' for n in range(parts)]
    return ("".join(chunks) + f"--{boundary}--\r\n").encode()


DEEP = 100_000
JSON_BODIES = (
    _json('"str"', '"str"'),
    _json("5", "5"),
    _json("[1,2]", "[1, 2]"),
    _json('{"email": 5}', json.dumps({"email": 5})),
    _json('{"email": null}', json.dumps({"email": None})),
    _json(f"{DEEP:,}-deep list", "[" * DEEP + "]" * DEEP),
)
OTHER_BODIES = (
    Body("text/plain", b"email=x@example.com&password=x", "text/plain"),
    Body("application/xml", b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "a">]><x>&a;</x>', "application/xml"),
)
TOO_MUCH = (
    Body("multipart with 1,500 parts", _multipart(1_500), "multipart/form-data; boundary=fuzzboundary", refused=True),
    Body("URL-encoded with 1,000 fields", "&".join(f"f{n}=x" for n in range(1_000)).encode(),
         "application/x-www-form-urlencoded", refused=True),
    Body("2 MB body", b"x=" + b"y" * (2 * 1024 * 1024), "application/x-www-form-urlencoded", refused=True),
)
