"""chalicelib.identity.tokens.TokenVerifier against an attack corpus.

Tokens are built by hand (tests.helpers) so that each case is exactly the
forged, mis-labelled or malformed token an attacker would send. Every
rejection asserts its Reason code. The IdP is FakeIdp; both clocks are injected.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from chalicelib.config import TrustedIssuer
from chalicelib.identity.errors import TokenRejected
from chalicelib.identity.jwks import JwksCache
from chalicelib.identity.keys import b64url_decode
from chalicelib.identity.model import Identity
from chalicelib.identity.tokens import TokenVerifier
from chalicelib.reasons import Reason
from tests.helpers import AUDIENCE, ISSUER, FakeIdp, b64url, claims, jwk, segment, sign

NOW = 1_700_000_000
SKEW = 60
MAX_BYTES = 8192
COOLDOWN = 30.0
MAX_AGE = 3600.0
JWKS_URL = f"{ISSUER}/jwks"
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


class Clock:
    """A clock that moves only when told to."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass(frozen=True)
class Keys:
    rsa: rsa.RSAPrivateKey
    other_rsa: rsa.RSAPrivateKey
    ec: ec.EllipticCurvePrivateKey
    ed: ed25519.Ed25519PrivateKey


Build = Callable[[Keys], str]


@pytest.fixture
def k(
    rsa_key: rsa.RSAPrivateKey,
    other_rsa_key: rsa.RSAPrivateKey,
    ec_key: ec.EllipticCurvePrivateKey,
    ed_key: ed25519.Ed25519PrivateKey,
) -> Keys:
    return Keys(rsa=rsa_key, other_rsa=other_rsa_key, ec=ec_key, ed=ed_key)


@pytest.fixture
def idp(k: Keys) -> FakeIdp:
    return FakeIdp(
        [
            jwk(k.rsa.public_key(), "rsa"),
            jwk(k.ec.public_key(), "ec"),
            jwk(k.ed.public_key(), "ed"),
        ]
    )


@pytest.fixture
def wall() -> Clock:
    return Clock(NOW)


@pytest.fixture
def mono() -> Clock:
    return Clock(1000.0)


def _verifier(
    idp: Callable[[str], Any], mono: Clock, wall: Clock, *issuers: TrustedIssuer, **options: Any
) -> TokenVerifier:
    cache = JwksCache(idp, cooldown_seconds=COOLDOWN, max_age_seconds=MAX_AGE, clock=mono)
    trusted = issuers or (TrustedIssuer(issuer=ISSUER, audiences=(AUDIENCE,), jwks_uri=JWKS_URL),)
    settings: dict[str, Any] = {"clock_skew_seconds": SKEW, "max_token_bytes": MAX_BYTES}
    return TokenVerifier(trusted, cache, clock=wall, **(settings | options))


@pytest.fixture
def verifier(idp: FakeIdp, mono: Clock, wall: Clock) -> TokenVerifier:
    return _verifier(idp, mono, wall)


# --- token building -------------------------------------------------------------------------


def payload(**overrides: Any) -> dict[str, Any]:
    """Valid claims at NOW (overrides as in tests.helpers.claims: None removes a claim)."""
    return claims(**{"iat": NOW, "nbf": NOW, "exp": NOW + 600, **overrides})


def payload_text(**members: str) -> str:
    """Valid claims as JSON text, with ``members`` spliced in as raw JSON (e.g. exp="1e999")."""
    body = json.dumps(payload(**dict.fromkeys(members)), separators=(",", ":"))
    return body[:-1] + "".join(f',"{name}":{text}' for name, text in members.items()) + "}"


def segment_text() -> str:
    """Valid claims as compact JSON text."""
    return json.dumps(payload(), separators=(",", ":"))


def head(alg: Any = "RS256", kid: Any = "rsa", **extra: Any) -> dict[str, Any]:
    """A JWS header (None removes a member)."""
    members = {"alg": alg, "typ": "JWT", "kid": kid, **extra}
    return {name: value for name, value in members.items() if value is not None}


def signed(key: Any, alg: str, header_segment: str, payload_segment: str) -> str:
    """Sign exactly these two segments as ``alg`` with ``key``."""
    signing_input = f"{header_segment}.{payload_segment}"
    return f"{signing_input}.{b64url(sign(key, alg, signing_input.encode()))}"


def token(
    key: Any,
    alg: str = "RS256",
    header: dict[str, Any] | None = None,
    body: dict[str, Any] | None = None,
) -> str:
    """A token over ``header`` (default: head(alg)) and ``body`` (default: payload())."""
    return signed(
        key, alg, segment(header or head(alg)), segment(body if body is not None else payload())
    )


def raw(key: Any, header: str | bytes, body: str | bytes) -> str:
    """An RS256-signed token whose header and payload are these exact JSON texts."""
    as_bytes = [part.encode() if isinstance(part, str) else part for part in (header, body)]
    return signed(key, "RS256", b64url(as_bytes[0]), b64url(as_bytes[1]))


def unsigned(header: dict[str, Any]) -> str:
    return f"{segment(header)}.{segment(payload())}."


def replace_signature(tok: str, change: Callable[[bytes], bytes]) -> str:
    header, body, sig = tok.split(".")
    return f"{header}.{body}.{b64url(change(b64url_decode(sig)))}"


def replace_payload(tok: str, body: dict[str, Any]) -> str:
    header, _, sig = tok.split(".")
    return f"{header}.{segment(body)}.{sig}"


def rsa_pem(k: Keys) -> bytes:
    return k.rsa.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def rsa_pkcs1_pem(k: Keys) -> bytes:
    return k.rsa.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.PKCS1
    )


def rejection(verifier: TokenVerifier, tok: str) -> Reason:
    with pytest.raises(TokenRejected) as caught:
        verifier.verify(tok)
    if len(tok) > 16:
        assert tok not in str(caught.value)  # the detail never echoes the token
    return caught.value.reason


def outcome(verifier: TokenVerifier, tok: str) -> Identity | Reason:
    """The identity, or the reason the token was rejected."""
    try:
        return verifier.verify(tok)
    except TokenRejected as exc:
        return exc.reason


def table(cases: list[tuple[str, Any, Reason]]) -> dict[str, Any]:
    """parametrize() keyword arguments for (id, build, reason) rows."""
    return {
        "argnames": ("build", "reason"),
        "argvalues": [(build, reason) for _, build, reason in cases],
        "ids": [name for name, _, _ in cases],
    }


# --- algorithm: refused before any key is looked up -----------------------------------------

UNSUP = Reason.UNSUPPORTED_ALGORITHM

ALG_CASES: list[tuple[str, Build, Reason]] = [
    ("none-empty-signature", lambda k: unsigned(head("none")), Reason.UNSUPPORTED_ALGORITHM),
    (
        "none-with-rs256-signature",
        lambda k: token(k.rsa, header=head("none")),
        Reason.UNSUPPORTED_ALGORITHM,
    ),
    ("none-no-kid", lambda k: unsigned(head("none", kid=None)), Reason.UNSUPPORTED_ALGORITHM),
    ("NONE", lambda k: unsigned(head("NONE")), Reason.UNSUPPORTED_ALGORITHM),
    ("None", lambda k: unsigned(head("None")), Reason.UNSUPPORTED_ALGORITHM),
    ("nOnE-signed", lambda k: token(k.rsa, header=head("nOnE")), Reason.UNSUPPORTED_ALGORITHM),
    ("alg-missing", lambda k: token(k.rsa, header=head(None)), Reason.UNSUPPORTED_ALGORITHM),
    ("alg-null", lambda k: raw(k.rsa, '{"alg":null,"kid":"rsa"}', segment_text()), UNSUP),
    ("alg-empty", lambda k: token(k.rsa, header=head("")), Reason.UNSUPPORTED_ALGORITHM),
    ("alg-list", lambda k: token(k.rsa, header=head(["RS256"])), Reason.UNSUPPORTED_ALGORITHM),
    ("alg-number", lambda k: token(k.rsa, header=head(256)), Reason.UNSUPPORTED_ALGORITHM),
    ("alg-object", lambda k: token(k.rsa, header=head({"alg": "RS256"})), UNSUP),
    ("alg-lowercase", lambda k: token(k.rsa, header=head("rs256")), UNSUP),
    ("alg-rs384", lambda k: token(k.rsa, header=head("RS384")), UNSUP),
    ("alg-ps256", lambda k: token(k.rsa, header=head("PS256")), UNSUP),
    ("alg-es384", lambda k: token(k.ec, "ES256", header=head("ES384", kid="ec")), UNSUP),
    (
        "hs256-with-rsa-spki-pem-as-secret",
        lambda k: token(rsa_pem(k), "HS256", header=head("HS256")),
        UNSUP,
    ),
    (
        "hs256-with-rsa-pkcs1-pem-as-secret",
        lambda k: token(rsa_pkcs1_pem(k), "HS256", header=head("HS256")),
        UNSUP,
    ),
    (
        "hs256-with-jwk-json-as-secret",
        lambda k: token(
            json.dumps(jwk(k.rsa.public_key(), "rsa")).encode(), "HS256", header=head("HS256")
        ),
        UNSUP,
    ),
    ("hs512", lambda k: token(rsa_pem(k), "HS256", header=head("HS512")), UNSUP),
]


@pytest.mark.parametrize(**table(ALG_CASES))
def test_unsupported_algorithms_are_refused_before_key_lookup(
    verifier: TokenVerifier, idp: FakeIdp, k: Keys, build: Build, reason: Reason
) -> None:
    assert rejection(verifier, build(k)) == reason
    assert idp.fetches == []


# --- keys and signatures ---------------------------------------------------------------------


def _der_es256(k: Keys) -> str:
    header, body = segment(head("ES256", kid="ec")), segment(payload())
    der = k.ec.sign(f"{header}.{body}".encode(), ec.ECDSA(hashes.SHA256()))
    return f"{header}.{body}.{b64url(der)}"


def _spliced_signature(k: Keys) -> str:
    victim = token(k.rsa, body=payload(sub="admin"))
    genuine = token(k.rsa)
    return ".".join(victim.split(".")[:2] + genuine.split(".")[2:])


SIGNATURE_CASES: list[tuple[str, Build, Reason]] = [
    (
        "es256-header-rsa-kid",
        lambda k: token(k.ec, "ES256", header=head("ES256", kid="rsa")),
        Reason.ALGORITHM_MISMATCH,
    ),
    (
        "rs256-header-ec-kid",
        lambda k: token(k.rsa, "RS256", header=head("RS256", kid="ec")),
        Reason.ALGORITHM_MISMATCH,
    ),
    (
        "eddsa-header-rsa-kid",
        lambda k: token(k.ed, "EdDSA", header=head("EdDSA", kid="rsa")),
        Reason.ALGORITHM_MISMATCH,
    ),
    (
        "es256-header-ed-kid",
        lambda k: token(k.ec, "ES256", header=head("ES256", kid="ed")),
        Reason.ALGORITHM_MISMATCH,
    ),
    ("signed-by-other-rsa-key", lambda k: token(k.other_rsa), Reason.BAD_SIGNATURE),
    (
        "tampered-payload",
        lambda k: replace_payload(token(k.rsa), payload(sub="admin")),
        Reason.BAD_SIGNATURE,
    ),
    (
        "tampered-header",
        lambda k: segment(head(typ="at+jwt")) + token(k.rsa)[len(segment(head())) :],
        Reason.BAD_SIGNATURE,
    ),
    ("signature-from-another-token", _spliced_signature, Reason.BAD_SIGNATURE),
    ("rs256-empty-signature", lambda k: unsigned(head()), Reason.BAD_SIGNATURE),
    (
        "rs256-truncated-signature",
        lambda k: replace_signature(token(k.rsa), lambda s: s[:-1]),
        Reason.BAD_SIGNATURE,
    ),
    (
        "rs256-half-signature",
        lambda k: replace_signature(token(k.rsa), lambda s: s[: len(s) // 2]),
        Reason.BAD_SIGNATURE,
    ),
    (
        "rs256-signature-one-bit-flipped",
        lambda k: replace_signature(token(k.rsa), lambda s: s[:-1] + bytes([s[-1] ^ 1])),
        Reason.BAD_SIGNATURE,
    ),
    (
        "es256-signature-63-bytes",
        lambda k: replace_signature(token(k.ec, "ES256", head("ES256", "ec")), lambda s: s[:-1]),
        Reason.BAD_SIGNATURE,
    ),
    (
        "es256-signature-65-bytes",
        lambda k: replace_signature(
            token(k.ec, "ES256", head("ES256", "ec")), lambda s: s + b"\x00"
        ),
        Reason.BAD_SIGNATURE,
    ),
    (
        # Same integers r and s, but not the 64-byte JWS form: a second spelling of a
        # genuine signature would be accepted if the length were not enforced.
        "es256-s-zero-padded-65-bytes",
        lambda k: replace_signature(
            token(k.ec, "ES256", head("ES256", "ec")), lambda s: s[:32] + b"\x00" + s[32:]
        ),
        Reason.BAD_SIGNATURE,
    ),
    ("es256-der-signature", _der_es256, Reason.BAD_SIGNATURE),
    (
        "es256-zero-signature",
        lambda k: replace_signature(token(k.ec, "ES256", head("ES256", "ec")), lambda s: bytes(64)),
        Reason.BAD_SIGNATURE,
    ),
    (
        "eddsa-truncated-signature",
        lambda k: replace_signature(token(k.ed, "EdDSA", head("EdDSA", "ed")), lambda s: s[:-1]),
        Reason.BAD_SIGNATURE,
    ),
    ("unknown-kid", lambda k: token(k.rsa, header=head(kid="nope")), Reason.UNKNOWN_KEY),
    (
        "kid-wrong-case",
        lambda k: token(k.rsa, header=head(kid="RSA")),
        Reason.UNKNOWN_KEY,
    ),
    ("missing-kid", lambda k: token(k.rsa, header=head(kid=None)), Reason.MALFORMED_TOKEN),
    ("empty-kid", lambda k: token(k.rsa, header=head(kid="")), Reason.MALFORMED_TOKEN),
    ("kid-number", lambda k: token(k.rsa, header=head(kid=1)), Reason.MALFORMED_TOKEN),
    ("kid-list", lambda k: token(k.rsa, header=head(kid=["rsa"])), Reason.MALFORMED_TOKEN),
]


@pytest.mark.parametrize(**table(SIGNATURE_CASES))
def test_wrong_keys_and_signatures_are_refused(
    verifier: TokenVerifier, k: Keys, build: Build, reason: Reason
) -> None:
    assert rejection(verifier, build(k)) == reason


# --- header parameters that point at keys ----------------------------------------------------


def _attacker_header(k: Keys, kid: str) -> dict[str, Any]:
    return head(
        kid=kid,
        jwk=jwk(k.other_rsa.public_key(), kid),
        jku="https://evil.example/jwks",
        x5u="https://evil.example/cert.pem",
    )


@pytest.mark.parametrize(
    ("kid", "reason"),
    [("rsa", Reason.BAD_SIGNATURE), ("attacker", Reason.UNKNOWN_KEY)],
    ids=["victim-kid", "attacker-kid"],
)
def test_embedded_attacker_key_is_not_used(
    verifier: TokenVerifier, idp: FakeIdp, k: Keys, kid: str, reason: Reason
) -> None:
    forged = token(k.other_rsa, header=_attacker_header(k, kid))
    assert rejection(verifier, forged) == reason
    assert all(url.startswith(ISSUER) for url in idp.fetches)


@pytest.mark.parametrize(
    "extra",
    [
        {"jku": "https://evil.example/jwks"},
        {"x5u": "https://evil.example/cert.pem"},
        {"jwk": {"kty": "oct", "k": "c2VjcmV0", "kid": "rsa"}},
        {"x5c": ["MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"]},
    ],
    ids=["jku", "x5u", "jwk", "x5c"],
)
def test_key_pointing_headers_are_ignored_on_genuine_tokens(
    verifier: TokenVerifier, idp: FakeIdp, k: Keys, extra: dict[str, Any]
) -> None:
    identity = verifier.verify(token(k.rsa, header=head(**extra)))
    assert identity.subject == "alice"
    assert idp.fetches == [JWKS_URL]


@pytest.mark.parametrize(
    "crit",
    [["exp"], ["b64"], [], "exp"],
    ids=["crit-exp", "crit-b64", "crit-empty", "crit-not-a-list"],
)
def test_crit_header_is_refused(verifier: TokenVerifier, k: Keys, crit: Any) -> None:
    tok = token(k.rsa, header=head(crit=crit, exp=NOW + 600, b64=True))
    assert rejection(verifier, tok) == Reason.MALFORMED_TOKEN


# --- issuer and audience ----------------------------------------------------------------------

CLAIM_CASES: list[tuple[str, dict[str, Any], Reason]] = [
    ("iss-untrusted", {"iss": "https://evil.example"}, Reason.UNKNOWN_ISSUER),
    ("iss-trailing-slash", {"iss": ISSUER + "/"}, Reason.UNKNOWN_ISSUER),
    ("iss-other-case", {"iss": ISSUER.upper()}, Reason.UNKNOWN_ISSUER),
    ("iss-missing", {"iss": None}, Reason.MISSING_CLAIM),
    ("iss-empty", {"iss": ""}, Reason.MISSING_CLAIM),
    ("aud-other", {"aud": "another-app"}, Reason.WRONG_AUDIENCE),
    ("aud-other-case", {"aud": AUDIENCE.upper()}, Reason.WRONG_AUDIENCE),
    ("aud-list-without-ours", {"aud": ["a", "b"]}, Reason.WRONG_AUDIENCE),
    ("aud-empty-list", {"aud": []}, Reason.WRONG_AUDIENCE),
    ("aud-missing", {"aud": None}, Reason.MISSING_CLAIM),
    ("aud-number", {"aud": 42}, Reason.INVALID_CLAIM),
    ("aud-object", {"aud": {"aud": AUDIENCE}}, Reason.INVALID_CLAIM),
    ("aud-list-with-non-string", {"aud": [AUDIENCE, 7]}, Reason.INVALID_CLAIM),
    ("aud-nested-list", {"aud": [[AUDIENCE]]}, Reason.INVALID_CLAIM),
    ("exp-past", {"exp": NOW - 1}, Reason.TOKEN_EXPIRED),
    ("exp-equals-now", {"exp": NOW}, Reason.TOKEN_EXPIRED),
    ("exp-long-ago", {"exp": 0}, Reason.TOKEN_EXPIRED),
    ("exp-missing", {"exp": None}, Reason.MISSING_CLAIM),
    ("exp-string", {"exp": str(NOW + 600)}, Reason.INVALID_CLAIM),
    ("exp-bool", {"exp": True}, Reason.INVALID_CLAIM),
    ("exp-list", {"exp": [NOW + 600]}, Reason.INVALID_CLAIM),
    ("exp-nan-string", {"exp": "NaN"}, Reason.INVALID_CLAIM),
    ("nbf-120s-ahead", {"nbf": NOW + 120}, Reason.TOKEN_NOT_YET_VALID),
    ("nbf-61s-ahead", {"nbf": NOW + SKEW + 1}, Reason.TOKEN_NOT_YET_VALID),
    ("nbf-string", {"nbf": str(NOW)}, Reason.INVALID_CLAIM),
    ("nbf-bool", {"nbf": False}, Reason.INVALID_CLAIM),
    ("iat-120s-ahead", {"iat": NOW + 120}, Reason.TOKEN_NOT_YET_VALID),
    ("iat-61s-ahead", {"iat": NOW + SKEW + 1}, Reason.TOKEN_NOT_YET_VALID),
    ("iat-string", {"iat": "now"}, Reason.INVALID_CLAIM),
    ("sub-missing", {"sub": None}, Reason.MISSING_CLAIM),
    ("sub-empty", {"sub": ""}, Reason.MISSING_CLAIM),
    ("groups-numbers", {"groups": [1, 2]}, Reason.INVALID_CLAIM),
    ("groups-mixed", {"groups": ["eng", None]}, Reason.INVALID_CLAIM),
    ("groups-nested", {"groups": [["eng"]]}, Reason.INVALID_CLAIM),
    ("groups-object", {"groups": {"eng": True}}, Reason.INVALID_CLAIM),
    ("groups-bool", {"groups": True}, Reason.INVALID_CLAIM),
    ("groups-too-many", {"groups": [f"g{n}" for n in range(257)]}, Reason.INVALID_CLAIM),
    ("amr-numbers", {"amr": [1]}, Reason.INVALID_CLAIM),
    ("email-not-a-string", {"email": ["alice@example.com"]}, Reason.INVALID_CLAIM),
]


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [(overrides, reason) for _, overrides, reason in CLAIM_CASES],
    ids=[name for name, _, _ in CLAIM_CASES],
)
def test_unacceptable_claims_are_refused(
    verifier: TokenVerifier, k: Keys, overrides: dict[str, Any], reason: Reason
) -> None:
    assert rejection(verifier, token(k.rsa, body=payload(**overrides))) == reason


def test_untrusted_issuer_is_refused_without_fetching_anything(
    verifier: TokenVerifier, idp: FakeIdp, k: Keys
) -> None:
    tok = token(k.rsa, body=payload(iss="https://evil.example"))
    assert rejection(verifier, tok) == Reason.UNKNOWN_ISSUER
    assert idp.fetches == []


RAW_CLAIM_CASES: list[tuple[str, dict[str, str], Reason]] = [
    ("exp-1e999-is-infinity", {"exp": "1e999"}, Reason.INVALID_CLAIM),
    ("exp-minus-1e999", {"exp": "-1e999"}, Reason.INVALID_CLAIM),
    ("exp-null", {"exp": "null"}, Reason.MISSING_CLAIM),
    ("exp-NaN-literal", {"exp": "NaN"}, Reason.MALFORMED_TOKEN),
    ("exp-Infinity-literal", {"exp": "Infinity"}, Reason.MALFORMED_TOKEN),
    ("nbf-1e999", {"nbf": "1e999"}, Reason.INVALID_CLAIM),
    ("iat-minus-1e999", {"iat": "-1e999"}, Reason.INVALID_CLAIM),
    ("nbf-NaN-literal", {"nbf": "NaN"}, Reason.MALFORMED_TOKEN),
    ("duplicate-sub", {"sub": '"admin","sub":"alice"'}, Reason.MALFORMED_TOKEN),
    (
        "duplicate-iss",
        {"iss": '"https://evil.example","iss":"' + ISSUER + '"'},
        Reason.MALFORMED_TOKEN,
    ),
    ("duplicate-in-nested-object", {"ext": '{"a":1,"a":2}'}, Reason.MALFORMED_TOKEN),
    ("huge-int-digits", {"ext": "9" * 5000}, Reason.MALFORMED_TOKEN),
]


@pytest.mark.parametrize(
    ("members", "reason"),
    [(members, reason) for _, members, reason in RAW_CLAIM_CASES],
    ids=[name for name, _, _ in RAW_CLAIM_CASES],
)
def test_unacceptable_raw_claims_are_refused(
    verifier: TokenVerifier, k: Keys, members: dict[str, str], reason: Reason
) -> None:
    tok = raw(k.rsa, json.dumps(head()), payload_text(**members))
    assert rejection(verifier, tok) == reason


@pytest.mark.parametrize("name", ["exp", "nbf", "iat", "auth_time"])
def test_numbers_too_large_for_a_float_do_not_crash(
    verifier: TokenVerifier, k: Keys, name: str
) -> None:
    # 10**400 is a legal JSON number but no float; the verifier must answer, not raise.
    tok = raw(k.rsa, json.dumps(head()), payload_text(**{name: "1" + "0" * 400}))
    result = outcome(verifier, tok)
    if name == "auth_time":
        assert isinstance(result, Identity) or result == Reason.INVALID_CLAIM
    else:
        assert result in {Reason.INVALID_CLAIM, Reason.TOKEN_NOT_YET_VALID}


# --- time windows that are accepted ----------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        {"nbf": NOW + 30},
        {"nbf": NOW + SKEW},
        {"iat": NOW + 30},
        {"iat": NOW + SKEW},
        {"nbf": None, "iat": None},
        {"exp": NOW + 1},
        {"exp": NOW + 600.5},
    ],
    ids=[
        "nbf-30s-ahead",
        "nbf-at-skew-limit",
        "iat-30s-ahead",
        "iat-at-skew-limit",
        "no-nbf-no-iat",
        "exp-1s-ahead",
        "exp-fractional",
    ],
)
def test_times_within_tolerance_are_accepted(
    verifier: TokenVerifier, k: Keys, overrides: dict[str, Any]
) -> None:
    identity = verifier.verify(token(k.rsa, body=payload(**overrides)))
    assert identity.subject == "alice"
    assert identity.expires_at == int(payload(**overrides)["exp"])


# --- where joserfc's own rules differ, Gatehouse's decide ------------------------------------
# joserfc checks the signature and the registered claims, but on its own it would refuse a
# blank aud as invalid_claim, refuse a non-string jti, compare against a whole-second now, and
# report whichever claim comes first in the token. None of that may change a decision.

JOSE_DIFFERENCE_CASES: list[tuple[str, dict[str, Any], float, Reason | None]] = [
    ("aud-empty-string", {"aud": ""}, 0, Reason.WRONG_AUDIENCE),
    ("sub-number", {"sub": 42}, 0, Reason.INVALID_CLAIM),
    ("sub-list", {"sub": ["alice"]}, 0, Reason.INVALID_CLAIM),
    ("jti-number-ignored", {"jti": 7}, 0, None),
    ("jti-empty-ignored", {"jti": ""}, 0, None),
    ("exp-before-a-wrong-aud", {"aud": "another-app", "exp": NOW - 1}, 0, Reason.TOKEN_EXPIRED),
    ("exp-before-a-bad-nbf", {"nbf": "soon", "exp": NOW - 1}, 0, Reason.TOKEN_EXPIRED),
    ("nbf-before-a-bad-sub", {"sub": 42, "nbf": NOW + 120}, 0, Reason.TOKEN_NOT_YET_VALID),
    ("exp-fraction-passed", {"exp": NOW + 0.3}, 0.5, Reason.TOKEN_EXPIRED),
    ("exp-fraction-ahead", {"exp": NOW + 0.7}, 0.5, None),
    ("nbf-fraction-over-skew", {"nbf": NOW + SKEW + 0.6}, 0.5, Reason.TOKEN_NOT_YET_VALID),
    ("nbf-fraction-within-skew", {"nbf": NOW + SKEW + 0.4}, 0.5, None),
]


@pytest.mark.parametrize(
    ("overrides", "elapsed", "reason"),
    [(overrides, elapsed, reason) for _, overrides, elapsed, reason in JOSE_DIFFERENCE_CASES],
    ids=[name for name, _, _, _ in JOSE_DIFFERENCE_CASES],
)
def test_gatehouse_rules_decide_where_joserfc_differs(
    verifier: TokenVerifier,
    wall: Clock,
    k: Keys,
    overrides: dict[str, Any],
    elapsed: float,
    reason: Reason | None,
) -> None:
    wall.advance(elapsed)
    result = outcome(verifier, token(k.rsa, body=payload(**overrides)))
    if reason is None:
        assert isinstance(result, Identity)
        assert result.token_id is None or result.token_id == overrides.get("jti")
    else:
        assert result == reason


# --- size: refused before parsing -------------------------------------------------------------


def _token_of_length(k: Keys, length: int) -> str:
    """A genuine RS256 token exactly ``length`` characters long."""
    sig_length = len(b64url(bytes(k.rsa.key_size // 8)))
    for header_fill in range(3):
        header = segment(head(fill="h" * header_fill))
        budget = length - len(header) - sig_length - 2
        estimate = max(0, (budget - len(segment(payload(fill="")))) * 3 // 4)
        for fill in range(max(0, estimate - 4), estimate + 5):
            body = segment(payload(fill="p" * fill))
            if len(header) + len(body) + sig_length + 2 == length:
                tok = signed(k.rsa, "RS256", header, body)
                assert len(tok) == length
                return tok
    raise AssertionError(f"cannot build a token of {length} characters")


@pytest.mark.parametrize(
    "build",
    [
        lambda k: "x" * (MAX_BYTES + 1),
        lambda k: "." * (MAX_BYTES + 1),
        lambda k: "a.b.c" + "=" * MAX_BYTES,
        lambda k: _token_of_length(k, MAX_BYTES + 1),
        lambda k: _token_of_length(k, 4 * MAX_BYTES),
    ],
    ids=["garbage", "only-dots", "padding-run", "genuine-one-over", "genuine-4x"],
)
def test_oversize_tokens_are_refused_before_parsing(
    verifier: TokenVerifier, idp: FakeIdp, k: Keys, build: Build
) -> None:
    assert rejection(verifier, build(k)) == Reason.TOKEN_TOO_LARGE
    assert idp.fetches == []


def test_size_limit_counts_bytes_not_characters(verifier: TokenVerifier) -> None:
    # 4,097 two-byte characters: 8,194 bytes, over the 8,192-byte limit.
    oversize = "é" * (MAX_BYTES // 2 + 1)
    assert len(oversize.encode()) > MAX_BYTES
    assert rejection(verifier, oversize) == Reason.TOKEN_TOO_LARGE


def test_size_limit_is_inclusive(verifier: TokenVerifier, k: Keys) -> None:
    assert rejection(verifier, "x" * MAX_BYTES) == Reason.MALFORMED_TOKEN
    assert verifier.verify(_token_of_length(k, MAX_BYTES)).subject == "alice"


# --- structure and base64url ----------------------------------------------------------------


@pytest.mark.parametrize(
    "build",
    [
        lambda k: "",
        lambda k: "abc",
        lambda k: ".".join(token(k.rsa).split(".")[:2]),
        lambda k: token(k.rsa) + ".",
        lambda k: token(k.rsa) + ".e30.e30",
        lambda k: "." + token(k.rsa).split(".", 1)[1],
        lambda k: token(k.rsa).split(".")[0] + ".." + token(k.rsa).split(".")[2],
        lambda k: "..",
        lambda k: " " + token(k.rsa),
        lambda k: "Bearer " + token(k.rsa),
    ],
    ids=[
        "empty",
        "one-segment",
        "two-segments",
        "four-segments",
        "five-segments-jwe-like",
        "empty-header",
        "empty-payload",
        "only-dots",
        "leading-space",
        "bearer-prefix",
    ],
)
def test_wrong_structure_is_malformed(verifier: TokenVerifier, k: Keys, build: Build) -> None:
    assert rejection(verifier, build(k)) == Reason.MALFORMED_TOKEN


def _shaped(value: dict[str, Any]) -> str:
    """segment() of ``value`` plus a filler that makes the segment contain both '-' and '_'
    (from '>>>' and '???') and have length % 4 == 2 (so it has stray bits and would need '==')."""
    for n in range(3):
        candidate = segment({**value, "fill": ">>>>>>??????" + "." * n})
        if len(candidate) % 4 == 2 and "-" in candidate and "_" in candidate:
            return candidate
    raise AssertionError("no filler gives the wanted shape")


def _signature_with_both_url_chars(k: Keys) -> str:
    """A genuine token whose signature segment contains '-' and '_'."""
    for n in range(1000):
        tok = token(k.rsa, body=payload(jti=f"j{n}"))
        sig = tok.rsplit(".", 1)[1]
        if "-" in sig and "_" in sig and len(sig) % 4 == 2:
            return tok
    raise AssertionError("no signature with both characters")


def _stray_bits(seg: str) -> str:
    return seg[:-1] + ALPHABET[ALPHABET.index(seg[-1]) | 1]


MUTATIONS: dict[str, Callable[[str], str]] = {
    "plus-for-minus": lambda seg: seg.replace("-", "+", 1),
    "slash-for-underscore": lambda seg: seg.replace("_", "/", 1),
    "padding": lambda seg: seg + "==",
    "one-pad-char": lambda seg: seg + "=",
    "bang": lambda seg: seg[:3] + "!" + seg[4:],
    "inner-space": lambda seg: seg[:3] + " " + seg[4:],
    "trailing-newline": lambda seg: seg + "\n",
    "non-ascii-letter": lambda seg: seg[:3] + "é" + seg[4:],
    "length-1-mod-4": lambda seg: seg + "AAA",
    "stray-low-bits": _stray_bits,
}


def test_shaped_segments_verify_before_mutation(verifier: TokenVerifier, k: Keys) -> None:
    header, body = _shaped(head()), _shaped(payload())
    assert verifier.verify(signed(k.rsa, "RS256", header, body)).subject == "alice"
    assert verifier.verify(_signature_with_both_url_chars(k)).subject == "alice"


@pytest.mark.parametrize("mutate", list(MUTATIONS.values()), ids=list(MUTATIONS))
@pytest.mark.parametrize("part", ["header", "payload", "signature"])
def test_bad_base64url_in_any_segment_is_malformed(
    verifier: TokenVerifier, k: Keys, part: str, mutate: Callable[[str], str]
) -> None:
    header, body = _shaped(head()), _shaped(payload())
    if part == "header":
        # Signed over the mutated segment: the encoding is the only defect.
        tok = signed(k.rsa, "RS256", mutate(header), body)
    elif part == "payload":
        tok = signed(k.rsa, "RS256", header, mutate(body))
    else:
        genuine_header, genuine_body, sig = _signature_with_both_url_chars(k).split(".")
        tok = f"{genuine_header}.{genuine_body}.{mutate(sig)}"
    assert rejection(verifier, tok) == Reason.MALFORMED_TOKEN


def _payload_bytes() -> bytes:
    return segment_text().encode()


JSON_CASES: list[tuple[str, Callable[[], tuple[str | bytes, str | bytes]]]] = [
    ("header-list", lambda: ('["RS256","rsa"]', _payload_bytes())),
    ("header-string", lambda: ('"RS256"', _payload_bytes())),
    ("header-number", lambda: ("256", _payload_bytes())),
    ("header-null", lambda: ("null", _payload_bytes())),
    ("header-invalid-json", lambda: ('{"alg":"RS256","kid":"rsa"', _payload_bytes())),
    ("header-single-quotes", lambda: ("{'alg':'RS256','kid':'rsa'}", _payload_bytes())),
    (
        "header-duplicate-alg",
        lambda: ('{"alg":"none","alg":"RS256","kid":"rsa"}', _payload_bytes()),
    ),
    ("header-duplicate-kid", lambda: ('{"alg":"RS256","kid":"x","kid":"rsa"}', _payload_bytes())),
    ("header-nan", lambda: ('{"alg":"RS256","kid":"rsa","x":NaN}', _payload_bytes())),
    ("header-infinity", lambda: ('{"alg":"RS256","kid":"rsa","x":-Infinity}', _payload_bytes())),
    ("header-trailing-garbage", lambda: ('{"alg":"RS256","kid":"rsa"}x', _payload_bytes())),
    ("header-invalid-utf8", lambda: (b'{"alg":"RS256","kid":"rsa","x":"\xff"}', _payload_bytes())),
    ("payload-list", lambda: (json.dumps(head()), json.dumps([payload()]))),
    ("payload-string", lambda: (json.dumps(head()), json.dumps(segment_text()))),
    ("payload-number", lambda: (json.dumps(head()), "1")),
    ("payload-invalid-json", lambda: (json.dumps(head()), segment_text()[:-1])),
    ("payload-whitespace", lambda: (json.dumps(head()), "   ")),
    ("payload-trailing-garbage", lambda: (json.dumps(head()), segment_text() + "{}")),
    ("payload-nan", lambda: (json.dumps(head()), payload_text(ext="NaN"))),
    ("payload-infinity", lambda: (json.dumps(head()), payload_text(ext="Infinity"))),
    (
        "payload-invalid-utf8",
        lambda: (json.dumps(head()), payload_text(ext='"\xff"').encode("latin-1")),
    ),
    (
        "payload-deeply-nested",
        lambda: (json.dumps(head()), '{"x":' + "[" * 2500 + "]" * 2500 + "}"),
    ),
]


@pytest.mark.parametrize(
    "parts", [parts for _, parts in JSON_CASES], ids=[name for name, _ in JSON_CASES]
)
def test_header_and_payload_must_be_strict_json_objects(
    verifier: TokenVerifier, k: Keys, parts: Callable[[], tuple[str | bytes, str | bytes]]
) -> None:
    header, body = parts()
    assert rejection(verifier, raw(k.rsa, header, body)) == Reason.MALFORMED_TOKEN


# --- accepted tokens --------------------------------------------------------------------------

RICH_CLAIMS: dict[str, Any] = {
    "sub": "alice",
    "email": "  Alice@Example.COM ",
    "email_verified": True,
    "groups": ["engineering", "admins", "engineering"],
    "amr": ["pwd", "mfa"],
    "auth_time": NOW - 100,
    "azp": "client-1",
    "sid": "session-1",
    "jti": "token-1",
}


def _expected(audience: str = AUDIENCE) -> Identity:
    return Identity(
        issuer=ISSUER,
        subject="alice",
        audience=audience,
        expires_at=NOW + 600,
        email="alice@example.com",
        groups=frozenset({"engineering", "admins"}),
        amr=("mfa", "pwd"),
        auth_time=NOW - 100,
        issued_at=NOW,
        client_id="client-1",
        session_id="session-1",
        token_id="token-1",
    )


@pytest.mark.parametrize(
    ("alg", "kid"),
    [("RS256", "rsa"), ("ES256", "ec"), ("EdDSA", "ed")],
    ids=["rs256", "es256", "eddsa"],
)
def test_genuine_tokens_produce_the_identity(
    verifier: TokenVerifier, k: Keys, alg: str, kid: str
) -> None:
    private = {"RS256": k.rsa, "ES256": k.ec, "EdDSA": k.ed}[alg]
    identity = verifier.verify(token(private, alg, head(alg, kid), payload(**RICH_CLAIMS)))
    assert identity == _expected()
    assert isinstance(identity.groups, frozenset)
    assert identity.email_domain == "example.com"
    assert identity.claims["jti"] == "token-1"


@pytest.mark.parametrize(
    "aud",
    [[AUDIENCE], ["another-app", AUDIENCE], [AUDIENCE, "another-app"]],
    ids=["list-of-ours", "ours-second", "ours-first"],
)
def test_audience_list_containing_ours_is_accepted(
    verifier: TokenVerifier, k: Keys, aud: list[str]
) -> None:
    assert verifier.verify(token(k.rsa, body=payload(aud=aud))).audience == AUDIENCE


def test_audience_reports_which_configured_audience_matched(
    idp: FakeIdp, mono: Clock, wall: Clock, k: Keys
) -> None:
    issuer = TrustedIssuer(issuer=ISSUER, audiences=(AUDIENCE, "admin-console"), jwks_uri=JWKS_URL)
    verifier = _verifier(idp, mono, wall, issuer)
    assert verifier.verify(token(k.rsa, body=payload(aud="admin-console"))).audience == (
        "admin-console"
    )
    tok = token(k.rsa, body=payload(aud=["x", "admin-console"]))
    assert verifier.verify(tok).audience == "admin-console"


@pytest.mark.parametrize(
    ("overrides", "email"),
    [
        ({"email_verified": False}, None),
        ({"email_verified": True}, "alice@example.com"),
        ({"email_verified": None}, None),
        ({"email": "BOB@Example.Org", "email_verified": True}, "bob@example.org"),
        ({"email": "   "}, None),
        ({"email": None}, None),
    ],
    ids=["unverified", "verified", "not-stated", "lower-cased", "blank", "absent"],
)
def test_email_is_verified_and_lower_cased(
    verifier: TokenVerifier, k: Keys, overrides: dict[str, Any], email: str | None
) -> None:
    assert verifier.verify(token(k.rsa, body=payload(**overrides))).email == email


@pytest.mark.parametrize(
    "flag", ["false", "False", 0], ids=["string-false", "string-False", "zero"]
)
def test_email_verified_that_is_not_true_never_grants_the_email(
    verifier: TokenVerifier, k: Keys, flag: Any
) -> None:
    # Some IdPs send email_verified as a string. A non-boolean must not count as verified:
    # either the token is refused as invalid or the email is withheld.
    tok = token(k.rsa, body=payload(email_verified=flag))
    result = outcome(verifier, tok)
    assert result == Reason.INVALID_CLAIM or (isinstance(result, Identity) and result.email is None)


def test_issuer_may_be_trusted_to_verify_every_email(
    idp: FakeIdp, mono: Clock, wall: Clock, k: Keys
) -> None:
    issuer = TrustedIssuer(ISSUER, (AUDIENCE,), jwks_uri=JWKS_URL, email_verified_required=False)
    verifier = _verifier(idp, mono, wall, issuer)

    assert verifier.verify(token(k.rsa, body=payload(email_verified=None))).email == (
        "alice@example.com"
    )
    assert verifier.verify(token(k.rsa, body=payload(email_verified=False))).email is None


@pytest.mark.parametrize(
    ("groups", "claimed"),
    [(["eng"], True), ([], True), (None, False)],
    ids=["groups", "empty list", "no groups claim"],
)
def test_identity_records_whether_the_groups_claim_was_present(
    verifier: TokenVerifier, k: Keys, groups: Any, claimed: bool
) -> None:
    overrides: dict[str, Any] = {"groups": groups} if groups is not None else {"groups": None}
    assert verifier.verify(token(k.rsa, body=payload(**overrides))).groups_claimed is claimed


def test_groups_and_amr_may_be_single_strings(verifier: TokenVerifier, k: Keys) -> None:
    identity = verifier.verify(token(k.rsa, body=payload(groups="engineering", amr="pwd")))
    assert identity.groups == frozenset({"engineering"})
    assert identity.amr == ("pwd",)


def test_absent_groups_give_an_empty_set(verifier: TokenVerifier, k: Keys) -> None:
    assert verifier.verify(token(k.rsa, body=payload(groups=None))).groups == frozenset()


def test_256_groups_are_accepted(verifier: TokenVerifier, k: Keys) -> None:
    groups = [f"g{n}" for n in range(256)]
    assert len(verifier.verify(token(k.rsa, body=payload(groups=groups))).groups) == 256


def test_groups_come_from_the_configured_claim(
    idp: FakeIdp, mono: Clock, wall: Clock, k: Keys
) -> None:
    issuer = TrustedIssuer(
        issuer=ISSUER, audiences=(AUDIENCE,), jwks_uri=JWKS_URL, groups_claim="cognito:groups"
    )
    verifier = _verifier(idp, mono, wall, issuer)
    body = payload(groups=["ignored"], **{"cognito:groups": ["admins"]})
    assert verifier.verify(token(k.rsa, body=body)).groups == frozenset({"admins"})
    bad = payload(**{"cognito:groups": [1]})
    assert rejection(verifier, token(k.rsa, body=bad)) == Reason.INVALID_CLAIM


def test_key_of_one_issuer_does_not_sign_for_another(k: Keys, mono: Clock, wall: Clock) -> None:
    other = "https://other.example"
    first = FakeIdp([jwk(k.rsa.public_key(), "rsa")])
    second = FakeIdp([jwk(k.other_rsa.public_key(), "rsa"), jwk(k.ec.public_key(), "ec2")], other)

    def network(url: str) -> Any:
        return (second if url.startswith(other) else first)(url)

    verifier = _verifier(
        network,
        mono,
        wall,
        TrustedIssuer(issuer=ISSUER, audiences=(AUDIENCE,), jwks_uri=JWKS_URL),
        TrustedIssuer(issuer=other, audiences=(AUDIENCE,), jwks_uri=f"{other}/jwks"),
    )
    assert verifier.verify(token(k.rsa)).issuer == ISSUER
    claiming_other = token(k.rsa, body=payload(iss=other))  # signed by the first issuer's key
    assert rejection(verifier, claiming_other) == Reason.BAD_SIGNATURE
    by_kid = token(k.rsa, header=head(kid="ec2"), body=payload(iss=other))
    assert rejection(verifier, by_kid) == Reason.ALGORITHM_MISMATCH
    assert verifier.verify(token(k.other_rsa, body=payload(iss=other))).issuer == other


# --- the verified-token cache -----------------------------------------------------------------


def _make_uncached_verification_fail(idp: FakeIdp, mono: Clock, k: Keys) -> None:
    """Rotate the RSA key away at the IdP and let the key set go stale: any token that
    is not in the verified-token cache now costs a fetch and fails with unknown_key."""
    idp.keys = [jwk(k.ec.public_key(), "ec")]
    mono.advance(MAX_AGE)


def test_repeated_token_is_served_from_the_cache(
    verifier: TokenVerifier, idp: FakeIdp, mono: Clock, k: Keys
) -> None:
    tok = token(k.rsa)
    first = verifier.verify(tok)
    assert idp.fetches == [JWKS_URL]
    _make_uncached_verification_fail(idp, mono, k)
    assert verifier.verify(tok) is first
    assert idp.fetches == [JWKS_URL]
    # Control: a token that is not cached does go to the IdP, and fails.
    assert rejection(verifier, token(k.rsa, body=payload(jti="fresh"))) == Reason.UNKNOWN_KEY
    assert idp.fetches == [JWKS_URL, JWKS_URL]


def test_cached_token_is_rejected_once_it_expires(
    verifier: TokenVerifier, idp: FakeIdp, mono: Clock, wall: Clock, k: Keys
) -> None:
    tok = token(k.rsa)
    verifier.verify(tok)
    _make_uncached_verification_fail(idp, mono, k)
    wall.advance(599)
    assert verifier.verify(tok).subject == "alice"
    wall.advance(1)  # now == exp
    assert rejection(verifier, tok) == Reason.TOKEN_EXPIRED
    wall.advance(3600)
    assert rejection(verifier, tok) == Reason.TOKEN_EXPIRED
    assert idp.fetches == [JWKS_URL]  # answered from the cache, not re-verified


def test_cache_gives_the_same_answer_as_verification(
    verifier: TokenVerifier, wall: Clock, k: Keys
) -> None:
    # exp is a NumericDate and may be fractional; at NOW the token is valid.
    tok = token(k.rsa, body=payload(exp=NOW + 0.5))
    assert verifier.verify(tok).subject == "alice"
    assert verifier.verify(tok).subject == "alice"  # same token, same instant


def test_cache_evicts_the_least_recently_used_token(
    idp: FakeIdp, mono: Clock, wall: Clock, k: Keys
) -> None:
    verifier = _verifier(idp, mono, wall, cache_size=2)
    a, b, c = (token(k.rsa, body=payload(jti=name)) for name in "abc")
    for tok in (a, b, a, c):  # b is now the least recently used, and evicted by c
        verifier.verify(tok)
    _make_uncached_verification_fail(idp, mono, k)
    assert verifier.verify(a).token_id == "a"
    assert verifier.verify(c).token_id == "c"
    assert rejection(verifier, b) == Reason.UNKNOWN_KEY


def test_rejections_are_not_cached(
    verifier: TokenVerifier, idp: FakeIdp, mono: Clock, k: Keys
) -> None:
    tok = token(k.rsa)
    idp.up = False
    assert rejection(verifier, tok) == Reason.ISSUER_UNAVAILABLE
    idp.up = True
    mono.advance(COOLDOWN)
    assert verifier.verify(tok).subject == "alice"
