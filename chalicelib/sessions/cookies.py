"""Sealed cookies: authenticated encryption of a small JSON payload, and cookie headers.

Pure: no AWS. The keys come from :mod:`chalicelib.sessions.keys`.

Wire format of a sealed value (base64url, no padding, of)::

    version (1 byte, 0x01) | id length (1 byte) | key id (ASCII) | nonce (12 bytes)
    | AES-256-GCM ciphertext of the JSON payload | tag (16 bytes)

The associated data is ``version | id length | key id | purpose`` (UTF-8):
the header cannot be changed without the tag failing, and a value sealed
for one purpose (the login cookie, a stored refresh token) never opens as
another (the session cookie). Each seal draws a fresh random 96-bit nonce;
at the rate one key seals (a container's sign-ins and refreshes until the
next rotation) the chance of a repeat is negligible.

The base64url text must be canonical (what encoding the bytes gives back):
no two cookie values open to the same session.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from chalicelib.reasons import Reason
from chalicelib.sessions.errors import CookieTooLarge, SessionRejected

SESSION_COOKIE: Final = "__Host-gatehouse-session"
"""The browser session (:class:`~chalicelib.sessions.model.BrowserSession`)."""
LOGIN_COOKIE: Final = "__Host-gatehouse-login"
"""A sign-in attempt in flight (state, nonce, PKCE verifier, return-to)."""
MAX_COOKIE_BYTES: Final = 4000
# A value sealed for a table item (a refresh or ID token): DynamoDB's 400 KB
# item limit is far; real tokens stay under a few KB.
MAX_STORED_BYTES: Final = 65536
"""The most ``name=value`` may take (browsers cap a cookie near 4096 bytes)."""

KEY_BYTES: Final = 32  # AES-256
FORMAT_VERSION: Final = 1
_NONCE_BYTES: Final = 12
_TAG_BYTES: Final = 16
_KEY_ID: Final = re.compile(r"[A-Za-z0-9._-]{1,64}")
_BASE64URL: Final = re.compile(r"[A-Za-z0-9_-]*")
# The smallest sealed value: header with a one-character id, nonce, tag, "{}".
_MIN_SEALED: Final = 2 + 1 + _NONCE_BYTES + _TAG_BYTES + 2
# RFC 6265 cookie-octet: printable ASCII but space, DQUOTE, comma, semicolon, backslash.
_COOKIE_VALUE: Final = re.compile(r"[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]*")
_COOKIE_NAME: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_ATTRIBUTES: Final = "Path=/; Secure; HttpOnly; SameSite=Lax"

__all__ = [
    "LOGIN_COOKIE",
    "MAX_COOKIE_BYTES",
    "SESSION_COOKIE",
    "CookieTooLarge",
    "Keyring",
    "SessionKey",
    "clear_cookie",
    "cookie_values",
    "sealed_key_id",
    "set_cookie",
    "without_cookies",
]


@dataclass(frozen=True)
class SessionKey:
    """One cookie-sealing key.

    Attributes
    ----------
    key_id:
        Names the key in every value it seals (1-64 of ``A-Za-z0-9._-``).
    secret:
        32 random bytes (AES-256). Never printed: not in ``repr``.

    Raises
    ------
    ValueError
        When the id or the secret is not of that form.
    """

    key_id: str
    secret: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.key_id, str) or not _KEY_ID.fullmatch(self.key_id):
            raise ValueError("a session key id is 1-64 characters of A-Za-z0-9._-")
        if not isinstance(self.secret, bytes) or len(self.secret) != KEY_BYTES:
            raise ValueError(f"a session key is {KEY_BYTES} bytes")


class Keyring:
    """The keys a container seals and opens cookies with.

    Parameters
    ----------
    keys:
        Newest first: the first seals; any of them opens. At least one; ids unique.

    Raises
    ------
    ValueError
        When there is no key or two keys share an id.
    """

    def __init__(self, keys: Sequence[SessionKey]) -> None:
        if not keys:
            raise ValueError("a keyring needs at least one key")
        ids = [key.key_id for key in keys]
        if len(set(ids)) != len(ids):
            raise ValueError("session key ids must be unique")
        self._newest = keys[0]
        self._ciphers = {key.key_id: AESGCM(key.secret) for key in keys}
        self.key_ids: tuple[str, ...] = tuple(ids)

    def seal(
        self, payload: Mapping[str, Any], *, purpose: str, max_bytes: int = MAX_COOKIE_BYTES
    ) -> str:
        """``payload`` as JSON, encrypted and authenticated with the newest key for ``purpose``.

        Parameters
        ----------
        payload:
            JSON-serialisable.
        purpose:
            The cookie's name (or ``refresh-token:<session id>``): the value
            opens for this purpose only.
        max_bytes:
            The most ``purpose=value`` may take: a cookie's, unless the value
            is kept elsewhere (:data:`MAX_STORED_BYTES` for a table item).

        Raises
        ------
        CookieTooLarge
            When ``purpose=value`` would exceed ``max_bytes``.
        TypeError
            When ``payload`` is not JSON-serialisable.
        """
        try:
            plaintext = orjson.dumps(dict(payload))
        except orjson.JSONEncodeError as exc:
            raise TypeError(f"a sealed payload must be JSON: {exc}") from None
        header = _header(self._newest.key_id)
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._ciphers[self._newest.key_id].encrypt(
            nonce, plaintext, header + purpose.encode("utf-8")
        )
        value = base64.urlsafe_b64encode(header + nonce + sealed).rstrip(b"=").decode("ascii")
        size = len(purpose.encode("utf-8")) + 1 + len(value)
        if size > max_bytes:
            raise CookieTooLarge(
                f"a sealed {purpose.split(':', 1)[0]} would take {size} bytes "
                f"(at most {max_bytes})",
                size=size,
            )
        return value

    def open(
        self, value: str, *, purpose: str, max_bytes: int = MAX_COOKIE_BYTES
    ) -> dict[str, Any]:
        """The payload ``value`` seals, if it was sealed by a key of this ring for ``purpose``.

        ``max_bytes`` bounds ``value`` before anything is decoded (a cookie's
        bound unless the value was sealed for a table item).

        Raises
        ------
        SessionRejected
            ``SESSION_INVALID``: too large, not canonical base64url, truncated,
            another format version, an unknown key, tampered with, sealed for
            another purpose, or not a JSON object.
        """
        if len(value) > max_bytes:  # before any decoding
            raise _invalid("the value is too large")
        raw = _decode(value)
        if len(raw) < _MIN_SEALED:
            raise _invalid("the value is truncated")
        if raw[0] != FORMAT_VERSION:
            raise _invalid("the value is of an unknown format version")
        id_end = 2 + raw[1]
        if len(raw) < id_end + _NONCE_BYTES + _TAG_BYTES:
            raise _invalid("the value is truncated")
        key_id = raw[2:id_end].decode("ascii", "replace")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise _invalid("the value was sealed by a key this ring does not hold")
        nonce = raw[id_end : id_end + _NONCE_BYTES]
        sealed = raw[id_end + _NONCE_BYTES :]
        try:
            plaintext = cipher.decrypt(nonce, sealed, raw[:id_end] + purpose.encode("utf-8"))
        except InvalidTag:
            raise _invalid(
                "the value does not authenticate (tampered, or another purpose)"
            ) from None
        try:
            payload = orjson.loads(plaintext)
        except orjson.JSONDecodeError:
            raise _invalid("the payload is not JSON") from None
        if not isinstance(payload, dict):
            raise _invalid("the payload is not a JSON object")
        return payload


def sealed_key_id(value: str) -> str | None:
    """The id of the key that sealed ``value`` as it claims (unauthenticated), or None.

    Only the header is decoded (a version byte, a length byte and at most
    255 bytes of key id: the first 344 characters), not the whole value.
    """
    head = value[:_HEADER_CHARACTERS]
    try:
        raw = base64.urlsafe_b64decode(head + "=" * (-len(head) % 4))
    except (binascii.Error, ValueError):
        return None
    if len(raw) < 2 or raw[0] != FORMAT_VERSION or len(raw) < 2 + raw[1]:
        return None
    key_id = raw[2 : 2 + raw[1]].decode("ascii", "replace")
    return key_id if _KEY_ID.fullmatch(key_id) else None


# base64url characters that hold the longest header (2 + 255 bytes), a multiple of 4.
_HEADER_CHARACTERS = 344


def _header(key_id: str) -> bytes:
    encoded = key_id.encode("ascii")
    return bytes((FORMAT_VERSION, len(encoded))) + encoded


def _decode(value: str) -> bytes:
    if not value or not _BASE64URL.fullmatch(value) or len(value) % 4 == 1:
        raise _invalid("the value is not base64url")
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        raise _invalid("the value is not base64url") from None
    # Canonical only: stray bits in the last character would name the same bytes.
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") != value:
        raise _invalid("the value is not canonical base64url")
    return raw


def _invalid(detail: str) -> SessionRejected:
    return SessionRejected(Reason.SESSION_INVALID, detail)


# --- cookie headers ---------------------------------------------------------------------------


def cookie_values(cookie_headers: Sequence[str], name: str) -> list[str]:
    """Every value of the cookie ``name`` in a request's ``Cookie`` header(s), in order.

    Parsed as RFC 6265 section 5.4 user agents send them (``name=value`` pairs
    separated by ``;``, optional whitespace around them); names are
    case-sensitive; a value in double quotes loses them; pairs without ``=``
    and other cookies' junk are skipped. A browser sends the same name more
    than once when cookies of several paths or domains match: the caller
    decides what that means (a ``__Host-`` cookie has one path and one host,
    so a second value was set by someone else).
    """
    values = []
    for header in cookie_headers:
        for pair in header.split(";"):
            key, sep, value = pair.partition("=")
            if sep and key.strip(" \t") == name:
                values.append(_unquoted(value.strip(" \t")))
    return values


def _unquoted(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def set_cookie(name: str, value: str, *, max_age: int) -> str:
    """A ``Set-Cookie`` value: ``__Host-`` rules (``Path=/``, ``Secure``, no ``Domain``).

    Raises
    ------
    ValueError
        When the name or value has characters a cookie cannot carry, or
        ``max_age`` is negative.
    """
    if not _COOKIE_NAME.fullmatch(name):
        raise ValueError("not a cookie name")
    if not _COOKIE_VALUE.fullmatch(value):
        raise ValueError("a cookie value has a character a cookie cannot carry")
    if max_age < 0:
        raise ValueError("max_age must not be negative")
    return f"{name}={value}; Max-Age={int(max_age)}; {_ATTRIBUTES}"


def clear_cookie(name: str) -> str:
    """A ``Set-Cookie`` header value that removes ``name`` (``Max-Age=0``, same attributes)."""
    return set_cookie(name, "", max_age=0)


def without_cookies(cookie_headers: Sequence[str], names: Collection[str]) -> list[str]:
    """The ``Cookie`` headers with every cookie of ``names`` removed.

    Other cookies stay byte for byte, and so does a header that loses none;
    a header left with no cookie is dropped. What the proxy forwards: the
    backend never sees Gatehouse's own cookies.
    """
    kept_headers = []
    for header in cookie_headers:
        pairs = header.split(";")
        kept = [pair for pair in pairs if pair.partition("=")[0].strip(" \t") not in names]
        if len(kept) == len(pairs):
            kept_headers.append(header)
            continue
        rebuilt = ";".join(kept).lstrip(" \t")
        if rebuilt.strip(" \t;"):
            kept_headers.append(rebuilt)
    return kept_headers
