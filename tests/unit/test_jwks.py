"""chalicelib.identity.jwks.JwksCache: discovery, cooldown, rotation, outages.

The IdP is :class:`tests.helpers.FakeIdp` (the network only); time is an
injected monotonic clock.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from chalicelib.config import TrustedIssuer
from chalicelib.identity.errors import TokenRejected
from chalicelib.identity.jwks import JwksCache
from chalicelib.reasons import Reason
from tests.helpers import AUDIENCE, ISSUER, FakeIdp, b64url, jwk, sign

if TYPE_CHECKING:
    from chalicelib.identity.keys import VerificationKey

COOLDOWN = 30.0
MAX_AGE = 3600.0
JWKS_URL = f"{ISSUER}/jwks"
DISCOVERY_URL = f"{ISSUER}/.well-known/openid-configuration"


class Clock:
    """A monotonic clock that moves only when told to."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def idp(rsa_key: rsa.RSAPrivateKey) -> FakeIdp:
    return FakeIdp([jwk(rsa_key.public_key(), "rsa")])


@pytest.fixture
def cache(idp: FakeIdp, clock: Clock) -> JwksCache:
    return _cache(idp, clock)


@pytest.fixture
def issuer() -> TrustedIssuer:
    return TrustedIssuer(issuer=ISSUER, audiences=(AUDIENCE,), jwks_uri=JWKS_URL)


@pytest.fixture(scope="module")
def rsa_1024() -> rsa.RSAPrivateKey:
    # Deliberately weak: Gatehouse must refuse it.
    return rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505


def _cache(fetch: Callable[[str], Any], clock: Clock) -> JwksCache:
    return JwksCache(fetch, cooldown_seconds=COOLDOWN, max_age_seconds=MAX_AGE, clock=clock)


def _reason(cache: JwksCache, issuer: TrustedIssuer, kid: str) -> Reason:
    with pytest.raises(TokenRejected) as caught:
        cache.get_key(issuer, kid)
    return caught.value.reason


def _verifies(key: VerificationKey, private: Any, alg: str) -> bool:
    message = b"header.payload"
    return key.verify(message, sign(private, alg, message))


def _hmac_jwk(kid: str) -> dict[str, Any]:
    return {"kty": "oct", "k": b64url(b"shared-secret-" * 3), "alg": "HS256", "kid": kid}


# --- where the keys come from ---------------------------------------------------------------


def test_configured_jwks_uri_is_fetched_without_discovery(
    cache: JwksCache, idp: FakeIdp, issuer: TrustedIssuer, rsa_key: rsa.RSAPrivateKey
) -> None:
    key = cache.get_key(issuer, "rsa")
    assert (key.kid, key.alg) == ("rsa", "RS256")
    assert _verifies(key, rsa_key, "RS256")
    assert idp.fetches == [JWKS_URL]


def test_discovery_finds_the_jwks_when_no_uri_is_configured(
    cache: JwksCache, idp: FakeIdp, clock: Clock
) -> None:
    discovered = TrustedIssuer(issuer=ISSUER, audiences=(AUDIENCE,))
    assert cache.get_key(discovered, "rsa").alg == "RS256"
    assert idp.fetches == [DISCOVERY_URL, JWKS_URL]
    cache.get_key(discovered, "rsa")
    assert idp.fetches == [DISCOVERY_URL, JWKS_URL]  # fresh: no refetch
    clock.advance(MAX_AGE)
    cache.get_key(discovered, "rsa")
    assert idp.fetches == [DISCOVERY_URL, JWKS_URL, JWKS_URL]  # discovery is remembered


def _discovery_serving(idp: FakeIdp, document: Any) -> Callable[[str], Any]:
    """The IdP, except that its discovery URL answers ``document``."""

    def fetch(url: str) -> Any:
        if url == DISCOVERY_URL:
            idp.fetches.append(url)
            return document
        return idp(url)

    return fetch


BAD_DISCOVERY = [
    {"issuer": "https://evil.example", "jwks_uri": JWKS_URL},
    {"issuer": "https://evil.example", "jwks_uri": "https://evil.example/jwks"},
    {"issuer": ISSUER + "/", "jwks_uri": JWKS_URL},
    {"jwks_uri": JWKS_URL},
    {"issuer": ISSUER},
    {"issuer": ISSUER, "jwks_uri": ["https://idp.test.example/jwks"]},
    {"issuer": ISSUER, "jwks_uri": "file:///etc/passwd"},
    {"issuer": ISSUER, "jwks_uri": "/jwks"},
    [{"issuer": ISSUER, "jwks_uri": JWKS_URL}],
    None,
]


@pytest.mark.parametrize(
    "document",
    BAD_DISCOVERY,
    ids=[
        "other-issuer",
        "other-issuer-and-jwks",
        "issuer-with-trailing-slash",
        "issuer-missing",
        "jwks-uri-missing",
        "jwks-uri-not-a-string",
        "jwks-uri-file-scheme",
        "jwks-uri-relative",
        "not-an-object",
        "null",
    ],
)
def test_unacceptable_discovery_document_leaves_the_issuer_unavailable(
    idp: FakeIdp, clock: Clock, document: Any
) -> None:
    cache = _cache(_discovery_serving(idp, document), clock)
    discovered = TrustedIssuer(issuer=ISSUER, audiences=(AUDIENCE,))
    for _ in range(50):
        assert _reason(cache, discovered, "rsa") == Reason.ISSUER_UNAVAILABLE
    assert idp.fetches == [DISCOVERY_URL]  # one attempt per cooldown, no key set fetched


def test_discovery_of_an_issuer_with_trailing_slash_is_refused(
    idp: FakeIdp, cache: JwksCache
) -> None:
    # The discovery URL resolves, but the document names "https://idp.test.example",
    # not the configured "https://idp.test.example/" (OIDC Discovery 4.3).
    slashed = TrustedIssuer(issuer=ISSUER + "/", audiences=(AUDIENCE,))
    assert _reason(cache, slashed, "rsa") == Reason.ISSUER_UNAVAILABLE
    assert idp.fetches == [DISCOVERY_URL]
    assert idp.jwks_fetches == 0


def test_failed_discovery_is_retried_after_the_cooldown(
    idp: FakeIdp, cache: JwksCache, clock: Clock
) -> None:
    discovered = TrustedIssuer(issuer=ISSUER, audiences=(AUDIENCE,))
    idp.up = False
    assert _reason(cache, discovered, "rsa") == Reason.ISSUER_UNAVAILABLE
    idp.up = True
    clock.advance(COOLDOWN - 0.001)
    assert _reason(cache, discovered, "rsa") == Reason.ISSUER_UNAVAILABLE
    assert idp.fetches == [DISCOVERY_URL]
    clock.advance(0.001)
    assert cache.get_key(discovered, "rsa").alg == "RS256"
    assert idp.fetches == [DISCOVERY_URL, DISCOVERY_URL, JWKS_URL]


def test_issuers_have_separate_key_sets(
    rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey, clock: Clock
) -> None:
    first = FakeIdp([jwk(rsa_key.public_key(), "shared-kid")])
    second = FakeIdp([jwk(ec_key.public_key(), "shared-kid")], issuer="https://other.example")

    def network(url: str) -> Any:
        return (second if url.startswith(second.issuer) else first)(url)

    cache = _cache(network, clock)
    one = TrustedIssuer(issuer=first.issuer, audiences=(AUDIENCE,))
    two = TrustedIssuer(issuer=second.issuer, audiences=(AUDIENCE,))
    assert cache.get_key(one, "shared-kid").alg == "RS256"
    assert cache.get_key(two, "shared-kid").alg == "ES256"
    assert cache.get_key(one, "shared-kid").alg == "RS256"


# --- the cooldown -----------------------------------------------------------------------------


def test_unknown_kid_flood_causes_at_most_one_fetch_per_cooldown(
    cache: JwksCache, idp: FakeIdp, issuer: TrustedIssuer, clock: Clock
) -> None:
    cache.get_key(issuer, "rsa")
    assert idp.jwks_fetches == 1
    clock.advance(COOLDOWN)
    flood_start = clock.now
    rng = random.Random(1234)
    for n in range(1000):
        clock.now = flood_start + (COOLDOWN - 1) * n / 1000  # spread over 29 s
        assert _reason(cache, issuer, f"forged-{rng.getrandbits(64):x}") == Reason.UNKNOWN_KEY
    assert idp.jwks_fetches == 2
    assert cache.get_key(issuer, "rsa").kid == "rsa"  # the real key is unaffected
    clock.now = flood_start + COOLDOWN  # the cooldown since the flood's fetch has elapsed
    assert _reason(cache, issuer, "forged-after-cooldown") == Reason.UNKNOWN_KEY
    assert idp.jwks_fetches == 3
    assert _reason(cache, issuer, "forged-again") == Reason.UNKNOWN_KEY
    assert idp.jwks_fetches == 3


def test_unknown_kid_flood_on_a_cold_cache_fetches_once(
    cache: JwksCache, idp: FakeIdp, issuer: TrustedIssuer
) -> None:
    for n in range(1000):
        assert _reason(cache, issuer, f"forged-{n}") == Reason.UNKNOWN_KEY
    assert idp.jwks_fetches == 1
    assert cache.fetch_count == 1


def test_new_kid_is_found_on_the_first_lookup_after_the_cooldown(
    cache: JwksCache,
    idp: FakeIdp,
    issuer: TrustedIssuer,
    clock: Clock,
    ec_key: ec.EllipticCurvePrivateKey,
) -> None:
    cache.get_key(issuer, "rsa")
    idp.keys = [*idp.keys, jwk(ec_key.public_key(), "rotated")]
    clock.advance(COOLDOWN - 1)
    assert _reason(cache, issuer, "rotated") == Reason.UNKNOWN_KEY
    assert idp.jwks_fetches == 1
    clock.advance(1)
    key = cache.get_key(issuer, "rotated")
    assert (key.alg, idp.jwks_fetches) == ("ES256", 2)
    assert _verifies(key, ec_key, "ES256")


def test_key_removed_at_the_idp_is_dropped_when_the_set_is_refreshed(
    cache: JwksCache,
    idp: FakeIdp,
    issuer: TrustedIssuer,
    clock: Clock,
    ec_key: ec.EllipticCurvePrivateKey,
) -> None:
    cache.get_key(issuer, "rsa")
    idp.keys = [jwk(ec_key.public_key(), "rotated")]
    clock.advance(MAX_AGE - 1)
    assert cache.get_key(issuer, "rsa").kid == "rsa"  # still fresh: no fetch
    assert idp.jwks_fetches == 1
    clock.advance(1)
    assert _reason(cache, issuer, "rsa") == Reason.UNKNOWN_KEY
    assert idp.jwks_fetches == 2


# --- outages and nonsense -----------------------------------------------------------------------


def test_last_good_keys_keep_working_while_the_idp_is_down(
    cache: JwksCache,
    idp: FakeIdp,
    issuer: TrustedIssuer,
    clock: Clock,
    rsa_key: rsa.RSAPrivateKey,
) -> None:
    cache.get_key(issuer, "rsa")
    idp.up = False
    clock.advance(MAX_AGE * 3)
    for _ in range(100):
        key = cache.get_key(issuer, "rsa")
        assert _verifies(key, rsa_key, "RS256")
    assert idp.jwks_fetches == 2  # one refresh attempt, not one per lookup
    clock.advance(COOLDOWN)
    cache.get_key(issuer, "rsa")
    assert idp.jwks_fetches == 3
    assert _reason(cache, issuer, "unknown") == Reason.UNKNOWN_KEY


def test_stale_keys_are_refreshed_once_the_idp_is_back(
    cache: JwksCache,
    idp: FakeIdp,
    issuer: TrustedIssuer,
    clock: Clock,
    ec_key: ec.EllipticCurvePrivateKey,
) -> None:
    cache.get_key(issuer, "rsa")
    idp.up = False
    clock.advance(MAX_AGE)
    cache.get_key(issuer, "rsa")
    idp.up = True
    idp.keys = [*idp.keys, jwk(ec_key.public_key(), "ec")]
    clock.advance(COOLDOWN)
    cache.get_key(issuer, "rsa")  # stale: refreshes
    assert idp.jwks_fetches == 3
    assert cache.get_key(issuer, "ec").alg == "ES256"
    assert idp.jwks_fetches == 3


def test_no_key_set_ever_fetched_means_issuer_unavailable_without_hammering(
    cache: JwksCache, idp: FakeIdp, issuer: TrustedIssuer, clock: Clock
) -> None:
    idp.up = False
    start = clock.now
    for n in range(500):
        clock.now = start + (COOLDOWN - 1) * n / 500
        assert _reason(cache, issuer, "rsa" if n % 2 else f"kid-{n}") == Reason.ISSUER_UNAVAILABLE
    assert len(idp.fetches) == 1
    clock.now = start + COOLDOWN
    assert _reason(cache, issuer, "rsa") == Reason.ISSUER_UNAVAILABLE
    assert len(idp.fetches) == 2
    idp.up = True
    assert _reason(cache, issuer, "rsa") == Reason.ISSUER_UNAVAILABLE  # still cooling down
    clock.advance(COOLDOWN)
    assert cache.get_key(issuer, "rsa").alg == "RS256"
    assert len(idp.fetches) == 3


def _unusable_sets(rsa_1024: rsa.RSAPrivateKey) -> list[list[dict[str, Any]]]:
    return [
        [_hmac_jwk("hs")],
        [jwk(rsa_1024.public_key(), "weak")],
        [_hmac_jwk("hs"), jwk(rsa_1024.public_key(), "weak")],
        [],
    ]


UNUSABLE_IDS = ["only-hs256-oct", "only-rsa-1024", "oct-and-rsa-1024", "empty"]


@pytest.mark.parametrize("which", range(4), ids=UNUSABLE_IDS)
def test_key_set_without_usable_keys_is_a_failed_fetch(
    cache: JwksCache,
    idp: FakeIdp,
    issuer: TrustedIssuer,
    clock: Clock,
    rsa_key: rsa.RSAPrivateKey,
    rsa_1024: rsa.RSAPrivateKey,
    which: int,
) -> None:
    cache.get_key(issuer, "rsa")
    idp.keys = _unusable_sets(rsa_1024)[which]
    clock.advance(MAX_AGE)
    key = cache.get_key(issuer, "rsa")  # old set kept
    assert _verifies(key, rsa_key, "RS256")
    assert idp.jwks_fetches == 2
    for kid in ("hs", "weak"):
        assert _reason(cache, issuer, kid) == Reason.UNKNOWN_KEY
    assert idp.jwks_fetches == 2


@pytest.mark.parametrize("which", range(4), ids=UNUSABLE_IDS)
def test_key_set_without_usable_keys_on_a_cold_cache_is_unavailable(
    cache: JwksCache,
    idp: FakeIdp,
    issuer: TrustedIssuer,
    rsa_1024: rsa.RSAPrivateKey,
    which: int,
) -> None:
    idp.keys = _unusable_sets(rsa_1024)[which]
    for kid in ("hs", "weak", "rsa"):
        assert _reason(cache, issuer, kid) == Reason.ISSUER_UNAVAILABLE
    assert idp.jwks_fetches == 1


def _jwks_serving(idp: FakeIdp, document: Any) -> Callable[[str], Any]:
    """The IdP, except that its JWKS URL answers ``document``."""

    def fetch(url: str) -> Any:
        if url == JWKS_URL:
            idp.fetches.append(url)
            return document
        return idp(url)

    return fetch


@pytest.mark.parametrize(
    "document",
    [{"keys": "none"}, {"keys": {"kid": "rsa"}}, {"key": []}, [], "keys", None],
    ids=["keys-a-string", "keys-an-object", "no-keys-member", "list", "string", "null"],
)
def test_document_that_is_not_a_jwk_set_is_a_failed_fetch(
    idp: FakeIdp, issuer: TrustedIssuer, clock: Clock, document: Any
) -> None:
    cache = _cache(_jwks_serving(idp, document), clock)
    assert _reason(cache, issuer, "rsa") == Reason.ISSUER_UNAVAILABLE
    assert _reason(cache, issuer, "rsa") == Reason.ISSUER_UNAVAILABLE
    assert idp.jwks_fetches == 1


@pytest.mark.parametrize(
    "junk",
    [
        "a-string",
        None,
        {"kty": "RSA"},
        {"kid": "junk", "kty": "RSA", "n": "!!", "e": "AQAB"},
        {"kid": "junk", "kty": ["RSA"]},
        {"kid": "junk", "kty": "EC", "crv": {"name": "P-256"}},
    ],
    ids=[
        "string",
        "null",
        "no-kid",
        "bad-base64",
        "kty-not-a-string",
        "crv-not-a-string",
    ],
)
def test_one_unusable_entry_does_not_spoil_the_rest_of_the_set(
    cache: JwksCache,
    idp: FakeIdp,
    issuer: TrustedIssuer,
    ed_key: ed25519.Ed25519PrivateKey,
    junk: Any,
) -> None:
    idp.keys = [junk, *idp.keys, jwk(ed_key.public_key(), "ed")]
    assert cache.get_key(issuer, "rsa").alg == "RS256"
    assert cache.get_key(issuer, "ed").alg == "EdDSA"
    assert _reason(cache, issuer, "junk") == Reason.UNKNOWN_KEY
    assert idp.jwks_fetches == 1
