"""BrowserSession: its payload, its clocks and the identity it lends requests."""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Any

import pytest

from chalicelib.identity import Identity
from chalicelib.reasons import Reason
from chalicelib.sessions import (
    MAX_COOKIE_BYTES,
    SESSION_COOKIE,
    BrowserSession,
    Keyring,
    SessionKey,
    SessionRejected,
    new_session_id,
)

T0 = 1_796_688_000
IDLE = 3600


def session(**changes: Any) -> BrowserSession:
    base = BrowserSession(
        session_id="s" * 22,
        issuer="https://login.example.com/oauth2/default",
        idp="login.example.com",
        client_id="0oa1b2c3d4e5f6g7h8i9",
        subject="00u1a2b3c4d5e6f7g8h9",
        email="alice@example.com",
        groups=tuple(f"engineering-team-{i:02d}" for i in range(10)),
        groups_claimed=True,
        amr=("pwd", "mfa"),
        auth_time=T0 - 5,
        idp_session_id="102ABCdefGHIjkl0123",
        claims={"department": "eng", "level": 3},
        signed_in_at=T0,
        seen_at=T0,
        refresh_at=T0 + 900,
        expires_at=T0 + 43200,
    )
    return dataclasses.replace(base, **changes)


def test_the_payload_round_trips() -> None:
    original = session()
    restored = BrowserSession.from_payload(original.to_payload())
    assert restored == original
    assert restored.claims == original.claims


def test_absent_values_round_trip_as_absent() -> None:
    original = session(
        email=None, auth_time=None, idp_session_id=None, claims={}, groups=(), groups_claimed=False
    )
    payload = original.to_payload()
    assert not {"em", "at", "isd", "cl"} & set(payload)
    assert BrowserSession.from_payload(payload) == original


def test_a_session_with_ten_groups_fits_a_cookie_with_room_to_spare() -> None:
    ring = Keyring([SessionKey("k20261208T001500", os.urandom(32))])
    value = ring.seal(session().to_payload(), purpose=SESSION_COOKIE)
    size = len(SESSION_COOKIE) + 1 + len(value)
    assert size < 1000 < MAX_COOKIE_BYTES
    assert BrowserSession.from_payload(ring.open(value, purpose=SESSION_COOKIE)) == session()


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("sid", None),
        ("sid", 5),
        ("sid", ""),
        ("sub", ""),
        ("iss", ["x"]),
        ("grp", "engineering"),
        ("grp", ["a", 1]),
        ("gc", 1),
        ("gc", None),
        ("amr", None),
        ("at", "yesterday"),
        ("at", True),
        ("em", 5),
        ("isd", 5),
        ("cl", ["a"]),
        ("si", 1.5),
        ("se", "1"),
        ("ra", True),
        ("ea", None),
    ],
)
def test_any_shape_problem_is_session_invalid(key: str, value: Any) -> None:
    payload = {**session().to_payload(), key: value}
    with pytest.raises(SessionRejected) as caught:
        BrowserSession.from_payload(payload)
    assert caught.value.reason is Reason.SESSION_INVALID


def test_a_missing_key_is_session_invalid() -> None:
    for key in ("sid", "iss", "idp", "cid", "sub", "grp", "gc", "amr", "si", "se", "ra", "ea"):
        payload = session().to_payload()
        del payload[key]
        with pytest.raises(SessionRejected) as caught:
            BrowserSession.from_payload(payload)
        assert caught.value.reason is Reason.SESSION_INVALID, key


def test_unknown_keys_are_ignored() -> None:
    # A newer release may add a key while older containers still run.
    assert BrowserSession.from_payload({**session().to_payload(), "new": 1}) == session()


def test_check_at_the_boundaries() -> None:
    s = session(seen_at=T0 + 100, refresh_at=T0 + 900, expires_at=T0 + 1000)
    assert s.check(T0 + 100, idle_seconds=IDLE) is None
    assert s.check(T0 + 899.9, idle_seconds=IDLE) is None
    assert s.check(T0 + 900, idle_seconds=IDLE) is Reason.SESSION_REFRESH_REQUIRED
    assert s.check(T0 + 999.9, idle_seconds=IDLE) is Reason.SESSION_REFRESH_REQUIRED
    assert s.check(T0 + 1000, idle_seconds=IDLE) is Reason.SESSION_EXPIRED
    # Idle: strictly more than idle_seconds since seen_at.
    idle = session(seen_at=T0, refresh_at=T0 + 10_000, expires_at=T0 + 20_000)
    assert idle.check(T0 + IDLE, idle_seconds=IDLE) is None
    assert idle.check(T0 + IDLE + 0.5, idle_seconds=IDLE) is Reason.SESSION_IDLE


def test_check_order_expired_then_idle_then_refresh() -> None:
    s = session(seen_at=T0, refresh_at=T0 + 10, expires_at=T0 + 20)
    # Past all three: expired wins.
    assert s.check(T0 + 5000, idle_seconds=60) is Reason.SESSION_EXPIRED
    # Idle and due for refresh, not expired: idle wins (a refresh must not revive it).
    s = session(seen_at=T0, refresh_at=T0 + 10, expires_at=T0 + 100_000)
    assert s.check(T0 + 61, idle_seconds=60) is Reason.SESSION_IDLE
    assert s.check(T0 + 60, idle_seconds=60) is Reason.SESSION_REFRESH_REQUIRED


def test_identity_expires_with_the_claims_or_the_session() -> None:
    s = session()
    identity = s.identity()
    assert identity == Identity(
        issuer=s.issuer,
        subject=s.subject,
        audience=s.client_id,
        expires_at=T0 + 900,
        email="alice@example.com",
        groups=frozenset(s.groups),
        groups_claimed=True,
        amr=("pwd", "mfa"),
        auth_time=T0 - 5,
        session_id="102ABCdefGHIjkl0123",
        browser_session_id="s" * 22,
    )
    assert identity.claims == {"department": "eng", "level": 3}
    assert session(refresh_at=T0 + 900, expires_at=T0 + 500).identity().expires_at == T0 + 500
    assert not session(groups_claimed=False, groups=()).identity().groups_claimed


def test_seen_moves_only_seen_at() -> None:
    s = session()
    later = s.seen(T0 + 123.9)
    assert later.seen_at == T0 + 123
    assert dataclasses.replace(later, seen_at=s.seen_at) == s
    assert s.seen_at == T0  # frozen: a new session


def test_session_ids_are_fresh_128_bit_url_safe() -> None:
    ids = {new_session_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{22}", sid) for sid in ids)
    # None reads as an option on a command line (1 in 64 would without the redraw).
    assert not [sid for sid in ids if sid.startswith("-")]
