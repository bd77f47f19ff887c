"""A browser session: who signed in, with which claims, and its clocks.

The whole session travels in its cookie (sealed by
:class:`~chalicelib.sessions.cookies.Keyring`), so the authorizer decides
without a read; the state table holds what must outlive or overrule the
cookie (the refresh token, the revocation).

Payload keys (compact: a cookie holds at most 4000 bytes)::

    sid  session id              iss  issuer            idp  issuer's short name
    cid  client id               sub  subject           em   email (absent: none)
    grp  groups                  gc   groups claimed    amr  authentication methods
    at   auth_time (absent)      isd  IdP's sid (absent) cl  other claims
    si   signed in at            se   seen at           ra   refresh at    ea  expires at

Keys a reader does not know are ignored: a newer release may add one while
older containers still run.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from chalicelib.identity import Identity
from chalicelib.reasons import Reason
from chalicelib.sessions.errors import SessionRejected


def new_session_id() -> str:
    """A fresh session id: 128 random bits, base64url (22 characters), never led by ``-``.

    An id led by ``-`` would read as an option to ``gatehouse session revoke``;
    drawing again costs 1/64 of the first character's values (0.02 bits).
    """
    while True:
        session_id = secrets.token_urlsafe(16)
        if not session_id.startswith("-"):
            return session_id


@dataclass(frozen=True, slots=True)
class BrowserSession:
    """One person's browser session.

    Attributes
    ----------
    session_id:
        Gatehouse's id of the session (:func:`new_session_id`).
    issuer, idp:
        The issuer the person signed in with, and its short name.
    client_id:
        Gatehouse's OAuth client at that issuer (the ID token's audience).
    subject, email, groups, groups_claimed, amr, auth_time:
        As :class:`~chalicelib.identity.Identity` holds them.
    idp_session_id:
        The ID token's ``sid``, if any (the IdP's own session, for logout).
    claims:
        Other claims policies may match on (JSON values).
    signed_in_at, seen_at, refresh_at, expires_at:
        Epoch seconds: sign-in; the last request; when the claims must be
        asked for again; the absolute end.
    """

    session_id: str
    issuer: str
    idp: str
    client_id: str
    subject: str
    email: str | None
    groups: tuple[str, ...]
    groups_claimed: bool
    amr: tuple[str, ...]
    auth_time: int | None
    idp_session_id: str | None
    claims: Mapping[str, object] = field(compare=False, repr=False)
    signed_in_at: int
    seen_at: int
    refresh_at: int
    expires_at: int

    def to_payload(self) -> dict[str, Any]:
        """The session as its cookie's payload (compact keys; absent values left out)."""
        payload: dict[str, Any] = {
            "sid": self.session_id,
            "iss": self.issuer,
            "idp": self.idp,
            "cid": self.client_id,
            "sub": self.subject,
            "grp": list(self.groups),
            "gc": self.groups_claimed,
            "amr": list(self.amr),
            "si": self.signed_in_at,
            "se": self.seen_at,
            "ra": self.refresh_at,
            "ea": self.expires_at,
        }
        if self.email is not None:
            payload["em"] = self.email
        if self.auth_time is not None:
            payload["at"] = self.auth_time
        if self.idp_session_id is not None:
            payload["isd"] = self.idp_session_id
        if self.claims:
            payload["cl"] = dict(self.claims)
        return payload

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> BrowserSession:
        """The session a cookie's payload holds.

        Raises
        ------
        SessionRejected
            ``SESSION_INVALID`` when a key is missing or of the wrong type.
        """
        read = _Reader(payload)
        session = cls(
            session_id=read.text("sid"),
            issuer=read.text("iss"),
            idp=read.text("idp"),
            client_id=read.text("cid"),
            subject=read.text("sub"),
            email=read.optional_text("em"),
            groups=read.texts("grp"),
            groups_claimed=read.flag("gc"),
            amr=read.texts("amr"),
            auth_time=read.optional_integer("at"),
            idp_session_id=read.optional_text("isd"),
            claims=read.claims("cl"),
            signed_in_at=read.integer("si"),
            seen_at=read.integer("se"),
            refresh_at=read.integer("ra"),
            expires_at=read.integer("ea"),
        )
        if not session.session_id or not session.issuer or not session.subject:
            raise SessionRejected(Reason.SESSION_INVALID, "the session names no id or principal")
        return session

    def check(self, now: float, *, idle_seconds: int) -> Reason | None:
        """Why the session cannot be used at ``now`` as it is, or None.

        In this order: ``SESSION_EXPIRED`` (``now >= expires_at``), then
        ``SESSION_IDLE`` (more than ``idle_seconds`` since ``seen_at``), then
        ``SESSION_REFRESH_REQUIRED`` (``now >= refresh_at``: the claims must
        be asked for again before use).
        """
        if now >= self.expires_at:
            return Reason.SESSION_EXPIRED
        if now - self.seen_at > idle_seconds:
            return Reason.SESSION_IDLE
        if now >= self.refresh_at:
            return Reason.SESSION_REFRESH_REQUIRED
        return None

    def identity(self) -> Identity:
        """The principal requests made under this session act as.

        It expires when the session's claims are due again (or the session
        ends, if sooner).
        """
        return Identity(
            issuer=self.issuer,
            subject=self.subject,
            audience=self.client_id,
            expires_at=min(self.refresh_at, self.expires_at),
            email=self.email,
            groups=frozenset(self.groups),
            groups_claimed=self.groups_claimed,
            amr=self.amr,
            auth_time=self.auth_time,
            session_id=self.idp_session_id,
            browser_session_id=self.session_id,
            claims=self.claims,
        )

    def seen(self, now: float) -> BrowserSession:
        """The session with ``seen_at`` moved to ``now``."""
        return dataclasses.replace(self, seen_at=int(now))


class _Reader:
    """Typed reads of a payload; any problem is ``SESSION_INVALID``."""

    def __init__(self, payload: Mapping[str, Any]) -> None:
        if not isinstance(payload, Mapping):
            raise _invalid("the payload is not an object")
        self._payload = payload

    def text(self, key: str) -> str:
        value = self._payload.get(key)
        if not isinstance(value, str):
            raise _invalid(f"{key!r} is not text")
        return value

    def optional_text(self, key: str) -> str | None:
        return None if self._payload.get(key) is None else self.text(key)

    def integer(self, key: str) -> int:
        value = self._payload.get(key)
        if not isinstance(value, int) or isinstance(value, bool):
            raise _invalid(f"{key!r} is not a whole number")
        return value

    def optional_integer(self, key: str) -> int | None:
        return None if self._payload.get(key) is None else self.integer(key)

    def flag(self, key: str) -> bool:
        value = self._payload.get(key)
        if not isinstance(value, bool):
            raise _invalid(f"{key!r} is not true or false")
        return value

    def texts(self, key: str) -> tuple[str, ...]:
        value = self._payload.get(key)
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise _invalid(f"{key!r} is not a list of text")
        return tuple(value)

    def claims(self, key: str) -> dict[str, object]:
        value = self._payload.get(key, {})
        if not isinstance(value, dict) or not all(isinstance(name, str) for name in value):
            raise _invalid(f"{key!r} is not an object")
        return dict(value)


def _invalid(detail: str) -> SessionRejected:
    return SessionRejected(Reason.SESSION_INVALID, f"session payload: {detail}")
