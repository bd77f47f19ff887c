"""ID tokens at sign-in: the bearer rules with the client as audience, then the relying party's."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.authenticate.errors import SignInFailed
from chalicelib.authenticate.id_tokens import verify_id_token
from chalicelib.config import TrustedIssuer
from chalicelib.identity import JwksCache, TokenVerifier
from tests.helpers import ISSUER, FakeIdp, claims, jwk, make_token

CLIENT = "gatehouse-web"
OTHER_ISSUER = "https://other.test.example"


@pytest.fixture
def verifier(rsa_key: Any) -> TokenVerifier:
    keys = [jwk(rsa_key.public_key(), "rsa-1", "RS256")]
    fetchers = {ISSUER: FakeIdp(keys), OTHER_ISSUER: FakeIdp(keys, issuer=OTHER_ISSUER)}

    def fetch(url: str) -> Any:
        issuer = ISSUER if url.startswith(ISSUER) else OTHER_ISSUER
        return fetchers[issuer](url)

    return TokenVerifier(
        (TrustedIssuer(ISSUER, (CLIENT,)), TrustedIssuer(OTHER_ISSUER, (CLIENT,))),
        JwksCache(fetch, cooldown_seconds=30, max_age_seconds=3600),
    )


def id_token(key: Any, **overrides: Any) -> str:
    return make_token(key, "RS256", "rsa-1", claims(**{"aud": CLIENT, "nonce": "n", **overrides}))


def test_a_valid_id_token_is_the_persons_identity(rsa_key: Any, verifier: TokenVerifier) -> None:
    identity = verify_id_token(id_token(rsa_key), verifier, ISSUER, CLIENT)
    assert (identity.issuer, identity.subject, identity.audience) == (ISSUER, "alice", CLIENT)
    assert identity.claims["nonce"] == "n"


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"aud": "another-client"}, "wrong_audience"),
        ({"exp": 1}, "token_expired"),
        ({"iss": "https://stranger.example"}, "unknown_issuer"),
        # Several audiences: only with us as the authorized party.
        ({"aud": [CLIENT, "another-client"]}, "invalid_claim"),
        ({"aud": [CLIENT, "another-client"], "azp": "another-client"}, "invalid_claim"),
    ],
)
def test_a_token_not_for_this_sign_in_fails_with_its_reason(
    rsa_key: Any, verifier: TokenVerifier, overrides: dict[str, Any], reason: str
) -> None:
    with pytest.raises(SignInFailed) as failed:
        verify_id_token(id_token(rsa_key, **overrides), verifier, ISSUER, CLIENT)
    assert failed.value.reason.value == reason


def test_several_audiences_with_us_as_azp_are_accepted(
    rsa_key: Any, verifier: TokenVerifier
) -> None:
    token = id_token(rsa_key, aud=[CLIENT, "another-client"], azp=CLIENT)
    assert verify_id_token(token, verifier, ISSUER, CLIENT).subject == "alice"


def test_a_token_of_another_trusted_provider_is_refused(
    rsa_key: Any, verifier: TokenVerifier
) -> None:
    token = id_token(rsa_key, iss=OTHER_ISSUER)
    with pytest.raises(SignInFailed) as failed:
        verify_id_token(token, verifier, ISSUER, CLIENT)
    assert failed.value.reason.value == "unknown_issuer"


def test_a_forged_signature_is_bad_signature(other_rsa_key: Any, verifier: TokenVerifier) -> None:
    with pytest.raises(SignInFailed) as failed:
        verify_id_token(id_token(other_rsa_key), verifier, ISSUER, CLIENT)
    assert failed.value.reason.value == "bad_signature"
