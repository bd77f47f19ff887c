"""Back-channel logout tokens: verified like ID tokens, and only a logout token passes."""

from __future__ import annotations

import os
import time
from typing import Any

import pytest

from chalicelib.authenticate.logout_tokens import (
    BACKCHANNEL_LOGOUT_EVENT,
    MAX_LOGOUT_TOKEN_AGE_SECONDS,
    LogoutTokenRejected,
    SeenLogoutTokens,
    verify_logout_token,
)
from chalicelib.authenticate.provider import Provider
from chalicelib.config import TrustedIssuer
from chalicelib.identity import JwksCache, TokenVerifier
from tests.helpers import ISSUER, FakeIdp, claims, jwk, make_token

CLIENT = "gatehouse-web"
EVENTS = {BACKCHANNEL_LOGOUT_EVENT: {}}


@pytest.fixture
def verifier(rsa_key: Any) -> TokenVerifier:
    idp = FakeIdp([jwk(rsa_key.public_key(), "rsa-1", "RS256")])
    return TokenVerifier(
        (TrustedIssuer(ISSUER, (CLIENT,), client_id=CLIENT),),
        JwksCache(idp, cooldown_seconds=30, max_age_seconds=3600),
    )


@pytest.fixture
def providers() -> dict[str, Provider]:
    issuer = TrustedIssuer(ISSUER, (CLIENT,), client_id=CLIENT)
    provider = Provider(issuer, lambda url: {}, client_secret=lambda: None, timeout_seconds=1)
    return {ISSUER: provider}


def logout_token(key: Any, **overrides: Any) -> str:
    fresh = {"aud": CLIENT, "events": EVENTS, "sid": "idp-session-7", "jti": os.urandom(8).hex()}
    payload = claims(**{**fresh, **overrides})
    for name in ("email", "email_verified", "groups"):
        payload.pop(name, None)
    return make_token(key, "RS256", "rsa-1", payload, header={"typ": "logout+jwt"})


def check(
    token: str,
    verifier: TokenVerifier,
    providers: dict[str, Provider],
    seen: SeenLogoutTokens | None = None,
) -> Any:
    return verify_logout_token(token, verifier, providers, seen or SeenLogoutTokens(), time.time())


def test_a_logout_token_names_the_person_and_the_provider_session(
    rsa_key: Any, verifier: TokenVerifier, providers: dict[str, Provider]
) -> None:
    logout = check(logout_token(rsa_key), verifier, providers)

    assert (logout.issuer, logout.subject, logout.idp_session_id) == (
        ISSUER,
        "alice",
        "idp-session-7",
    )
    without_sid = check(logout_token(rsa_key, sid=None), verifier, providers)
    assert without_sid.idp_session_id is None


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"events": None}, "no back-channel logout event"),
        ({"events": {"http://schemas.openid.net/event/other": {}}}, "no back-channel logout"),
        ({"events": {BACKCHANNEL_LOGOUT_EVENT: "yes"}}, "no back-channel logout event"),
        ({"events": [BACKCHANNEL_LOGOUT_EVENT]}, "no back-channel logout event"),
        # An ID token (it has a nonce) can never pass for a logout token.
        ({"nonce": "n-1"}, "must not carry a nonce"),
        ({"iat": None}, "must carry iat"),
        ({"aud": "another-client"}, "wrong_audience"),
        ({"iss": "https://other.example"}, "unknown_issuer"),
        ({"exp": 1}, "token_expired"),
        ({"sub": None}, "missing_claim"),
        ({"jti": None}, "must carry jti"),
        ({"iat": int(time.time()) - MAX_LOGOUT_TOKEN_AGE_SECONDS - 5}, "too old"),
    ],
)
def test_anything_but_a_valid_logout_token_is_refused(
    rsa_key: Any,
    verifier: TokenVerifier,
    providers: dict[str, Provider],
    overrides: dict[str, Any],
    message: str,
) -> None:
    with pytest.raises(LogoutTokenRejected, match=message):
        check(logout_token(rsa_key, **overrides), verifier, providers)


def test_a_token_signed_by_another_key_is_refused(
    other_rsa_key: Any, verifier: TokenVerifier, providers: dict[str, Provider]
) -> None:
    with pytest.raises(LogoutTokenRejected, match="bad_signature"):
        check(logout_token(other_rsa_key), verifier, providers)


@pytest.mark.parametrize("token", ["", "x" * 9000, "not.a.jwt"])
def test_a_missing_oversized_or_malformed_token_is_refused(
    token: str, verifier: TokenVerifier, providers: dict[str, Provider]
) -> None:
    with pytest.raises(LogoutTokenRejected):
        check(token, verifier, providers)


def test_a_token_of_an_issuer_people_do_not_sign_in_with_is_refused(
    rsa_key: Any, verifier: TokenVerifier
) -> None:
    with pytest.raises(LogoutTokenRejected, match="do not sign in with"):
        check(logout_token(rsa_key), verifier, {})


def test_a_logout_token_is_good_once(
    rsa_key: Any, verifier: TokenVerifier, providers: dict[str, Provider]
) -> None:
    seen = SeenLogoutTokens()
    token = logout_token(rsa_key)
    assert check(token, verifier, providers, seen).subject == "alice"
    with pytest.raises(LogoutTokenRejected, match="used already"):
        check(token, verifier, providers, seen)
    # Another token (another jti) of the same provider still works.
    assert check(logout_token(rsa_key), verifier, providers, seen).subject == "alice"
