"""Sealed cookies: what opens, what never does, and the cookie headers around them."""

from __future__ import annotations

import base64
import os
from typing import Any

import pytest

from chalicelib.reasons import Reason
from chalicelib.sessions import (
    LOGIN_COOKIE,
    MAX_COOKIE_BYTES,
    SESSION_COOKIE,
    CookieTooLarge,
    Keyring,
    SessionError,
    SessionKey,
    SessionRejected,
    clear_cookie,
    cookie_values,
    set_cookie,
    without_cookies,
)
from chalicelib.sessions.cookies import sealed_key_id

OLD = SessionKey("k-old", os.urandom(32))
NEW = SessionKey("k-new", os.urandom(32))
PAYLOAD: dict[str, Any] = {"sid": "abc", "grp": ["a", "b"], "n": 3, "x": None}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _raw(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def _rejected(ring: Keyring, value: str, purpose: str = SESSION_COOKIE) -> SessionRejected:
    with pytest.raises(SessionRejected) as caught:
        ring.open(value, purpose=purpose)
    assert caught.value.reason is Reason.SESSION_INVALID
    return caught.value


# --- seal and open ---------------------------------------------------------------------------


def test_a_sealed_value_opens_to_its_payload_and_hides_it() -> None:
    ring = Keyring([NEW])
    value = ring.seal(PAYLOAD, purpose=SESSION_COOKIE)
    assert ring.open(value, purpose=SESSION_COOKIE) == PAYLOAD
    assert b"grp" not in _raw(value)
    assert set(value) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert sealed_key_id(value) == "k-new"


def test_every_seal_draws_a_fresh_nonce() -> None:
    ring = Keyring([NEW])
    assert ring.seal(PAYLOAD, purpose=SESSION_COOKIE) != ring.seal(PAYLOAD, purpose=SESSION_COOKIE)


def test_a_tampered_byte_anywhere_is_refused() -> None:
    ring = Keyring([NEW])
    raw = _raw(ring.seal(PAYLOAD, purpose=SESSION_COOKIE))
    for index in range(len(raw)):
        tampered = bytearray(raw)
        tampered[index] ^= 0x01
        _rejected(ring, _b64(bytes(tampered)))


def test_a_changed_character_anywhere_is_refused() -> None:
    # Including the last one, whose low bits base64 does not use: not canonical.
    ring = Keyring([NEW])
    value = ring.seal(PAYLOAD, purpose=SESSION_COOKIE)
    for index, char in enumerate(value):
        for other in ("A", "B", "-", "_"):
            if other != char:
                _rejected(ring, value[:index] + other + value[index + 1 :])


@pytest.mark.parametrize("keep", [0, 1, 2, 10, 20, -17, -16, -1])
def test_a_truncated_value_is_refused(keep: int) -> None:
    ring = Keyring([NEW])
    value = ring.seal(PAYLOAD, purpose=SESSION_COOKIE)
    raw = _raw(value)
    _rejected(ring, _b64(raw[:keep]))
    _rejected(ring, value[:keep] if keep else "")


@pytest.mark.parametrize(
    "value", ["", "=", "a", "!!!!", "abc=", "ab cd", "é", "a.b.c", "AAAA" * 3, "\x00" * 8]
)
def test_junk_is_refused(value: str) -> None:
    _rejected(Keyring([NEW]), value)


def test_an_oversized_value_is_refused_before_it_is_decoded() -> None:
    ring = Keyring([NEW])
    detail = _rejected(ring, "A" * (MAX_COOKIE_BYTES + 1)).detail
    assert "large" in detail
    # Even a well-formed value of that size.
    assert "large" in _rejected(ring, _b64(os.urandom(3100))).detail


def test_a_value_for_another_purpose_never_opens() -> None:
    ring = Keyring([NEW])
    login = ring.seal(PAYLOAD, purpose=LOGIN_COOKIE)
    _rejected(ring, login, SESSION_COOKIE)
    token = ring.seal(PAYLOAD, purpose="refresh-token:one")
    _rejected(ring, token, "refresh-token:two")
    assert ring.open(login, purpose=LOGIN_COOKIE) == PAYLOAD


def test_an_unknown_key_id_is_refused() -> None:
    value = Keyring([OLD]).seal(PAYLOAD, purpose=SESSION_COOKIE)
    detail = _rejected(Keyring([NEW]), value).detail
    assert "key" in detail
    # The same id with another secret: the tag fails.
    _rejected(Keyring([SessionKey("k-old", os.urandom(32))]), value)


def test_a_relabelled_key_id_is_refused() -> None:
    # A value sealed by k-old, relabelled as k-new (same length): the header is authenticated.
    ring = Keyring([NEW, OLD])
    raw = _raw(Keyring([OLD]).seal(PAYLOAD, purpose=SESSION_COOKIE))
    relabelled = raw.replace(b"k-old", b"k-new", 1)
    _rejected(ring, _b64(relabelled))


def test_another_format_version_is_refused() -> None:
    ring = Keyring([NEW])
    raw = bytearray(_raw(ring.seal(PAYLOAD, purpose=SESSION_COOKIE)))
    raw[0] = 2
    assert "version" in _rejected(ring, _b64(bytes(raw))).detail


def test_rotated_keys_old_cookies_open_while_their_key_is_kept() -> None:
    old_cookie = Keyring([OLD]).seal(PAYLOAD, purpose=SESSION_COOKIE)
    rotated = Keyring([NEW, OLD])
    assert rotated.open(old_cookie, purpose=SESSION_COOKIE) == PAYLOAD
    # The newest key seals.
    assert sealed_key_id(rotated.seal(PAYLOAD, purpose=SESSION_COOKIE)) == "k-new"
    # Dropped: refused.
    _rejected(Keyring([NEW]), old_cookie)


def test_a_payload_that_is_not_an_object_is_refused() -> None:
    # Sealed properly by hand, so only the payload is wrong.
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    header = bytes((1, len(b"k-new"))) + b"k-new"
    nonce = os.urandom(12)
    for plaintext in (b"[1,2]", b"not json", b'"text"'):
        sealed = AESGCM(NEW.secret).encrypt(nonce, plaintext, header + SESSION_COOKIE.encode())
        _rejected(Keyring([NEW]), _b64(header + nonce + sealed))


def test_a_payload_too_large_for_a_cookie_is_refused_when_sealed() -> None:
    ring = Keyring([NEW])
    with pytest.raises(CookieTooLarge) as caught:
        ring.seal({"blob": "x" * MAX_COOKIE_BYTES}, purpose=SESSION_COOKIE)
    assert isinstance(caught.value, SessionError)
    assert caught.value.size > MAX_COOKIE_BYTES
    # The largest that fits: name=value within the limit, and it opens.
    size = 2900
    while True:
        try:
            value = ring.seal({"blob": "x" * size}, purpose=SESSION_COOKIE)
        except CookieTooLarge:
            break
        assert len(SESSION_COOKIE) + 1 + len(value) <= MAX_COOKIE_BYTES
        assert ring.open(value, purpose=SESSION_COOKIE)["blob"] == "x" * size
        size += 1
    assert size > 2900


def test_secret_material_is_never_in_reprs_or_errors() -> None:
    ring = Keyring([NEW])
    assert NEW.secret.hex() not in repr(NEW)
    assert repr(NEW.secret) not in repr(NEW)
    value = ring.seal(PAYLOAD, purpose=SESSION_COOKIE)
    error = _rejected(Keyring([OLD]), value)
    assert value not in str(error)


def test_keys_and_rings_are_checked() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        SessionKey("k", os.urandom(16))
    with pytest.raises(ValueError, match="id"):
        SessionKey("k 1", os.urandom(32))
    with pytest.raises(ValueError, match="id"):
        SessionKey("", os.urandom(32))
    with pytest.raises(ValueError, match="at least one"):
        Keyring([])
    with pytest.raises(ValueError, match="unique"):
        Keyring([OLD, SessionKey("k-old", os.urandom(32))])


# --- cookie headers --------------------------------------------------------------------------


def test_cookie_values_finds_every_value_across_headers() -> None:
    headers = [
        "a=1; __Host-gatehouse-session=first;b=2",
        "  __Host-gatehouse-session = second ;junk; =; ;;",
        '__Host-gatehouse-session="quoted"',
    ]
    assert cookie_values(headers, SESSION_COOKIE) == ["first", "second", "quoted"]
    assert cookie_values(headers, "a") == ["1"]
    assert cookie_values(headers, "missing") == []
    assert cookie_values([], SESSION_COOKIE) == []


def test_cookie_values_is_exact_about_names() -> None:
    headers = [
        "__host-gatehouse-session=lower; x__Host-gatehouse-session=prefixed; "
        "__Host-gatehouse-session-other=longer; __Host-gatehouse-login=login"
    ]
    assert cookie_values(headers, SESSION_COOKIE) == []
    assert cookie_values(headers, LOGIN_COOKIE) == ["login"]


def test_cookie_values_tolerates_junk_in_other_cookies() -> None:
    headers = ['x="unterminated; y=a=b=c; \x7f; =value-only; __Host-gatehouse-session=ok; z']
    assert cookie_values(headers, SESSION_COOKIE) == ["ok"]
    assert cookie_values(headers, "y") == ["a=b=c"]


def test_set_cookie_follows_the_host_prefix_rules() -> None:
    header = set_cookie(SESSION_COOKIE, "abc-_09", max_age=3600)
    assert header == (
        "__Host-gatehouse-session=abc-_09; Max-Age=3600; Path=/; Secure; HttpOnly; SameSite=Lax"
    )
    assert "domain" not in header.lower()
    assert clear_cookie(LOGIN_COOKIE) == (
        "__Host-gatehouse-login=; Max-Age=0; Path=/; Secure; HttpOnly; SameSite=Lax"
    )


@pytest.mark.parametrize("value", ["a;b", "a b", 'a"b', "a,b", "a\\b", "a\nb", "é"])
def test_set_cookie_refuses_values_that_would_inject_attributes(value: str) -> None:
    with pytest.raises(ValueError, match="character"):
        set_cookie(SESSION_COOKIE, value, max_age=1)


def test_set_cookie_refuses_bad_names_and_negative_ages() -> None:
    with pytest.raises(ValueError, match="name"):
        set_cookie("a=b", "v", max_age=1)
    with pytest.raises(ValueError, match="max_age"):
        set_cookie(SESSION_COOKIE, "v", max_age=-1)


def test_without_cookies_keeps_other_cookies_byte_for_byte() -> None:
    names = {SESSION_COOKIE, LOGIN_COOKIE}
    headers = [
        'theme=dark;  __Host-gatehouse-session=s1;\tq="x y" ;  n=',
        "__Host-gatehouse-login=l; keep=1",
        "untouched=1;junk;;  spaced = v ",
        "__Host-gatehouse-session=only",
        " __Host-gatehouse-session=a ; __Host-gatehouse-login=b ;",
    ]
    assert without_cookies(headers, names) == [
        'theme=dark;\tq="x y" ;  n=',
        "keep=1",
        "untouched=1;junk;;  spaced = v ",
    ]
    # Nothing to remove: every header exactly as it came, in order.
    assert without_cookies(headers[2:3], names) == headers[2:3]
    assert without_cookies([], names) == []


def test_without_cookies_removes_duplicates_and_only_exact_names() -> None:
    header = (
        "__Host-gatehouse-session=1; __Host-gatehouse-session-x=2; "
        "__Host-gatehouse-session=3; __host-gatehouse-session=4"
    )
    kept = without_cookies([header], {SESSION_COOKIE})
    assert kept == ["__Host-gatehouse-session-x=2; __host-gatehouse-session=4"]
    assert cookie_values(kept, SESSION_COOKIE) == []
