"""Key certificates: what the KMS key vouches for, and every way a certificate fails."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from chalicelib.aws.signers import LocalSigner
from chalicelib.identity.keys import b64url_decode, b64url_encode
from chalicelib.signing import CertificateInvalid, KeyCertificate, certify, check_certificate
from chalicelib.signing.certificate import MAX_CERTIFICATE_SECONDS

ISSUER = "https://gatehouse.example.com"
STAGE = "prod"
T0 = 1_800_000_000


def new_signer() -> LocalSigner:
    return LocalSigner(ec.generate_private_key(ec.SECP256R1()))


@pytest.fixture(scope="module")
def kms() -> LocalSigner:
    """Stands in for the certifying KMS key: the same P-256 ES256 signatures."""
    return new_signer()


@pytest.fixture(scope="module")
def certified(kms: LocalSigner) -> tuple[LocalSigner, KeyCertificate]:
    key = new_signer()
    certificate = certify(
        kms, key.jwk(), issuer=ISSUER, stage=STAGE, not_before=T0, lifetime_seconds=3 * 3600
    )
    return key, certificate


def test_a_certificate_names_the_key_the_gateway_and_its_lifetime(
    kms: LocalSigner, certified: tuple[LocalSigner, KeyCertificate]
) -> None:
    key, certificate = certified

    checked = check_certificate(
        certificate.token, kms.jwk(), issuer=ISSUER, stage=STAGE, now=T0 + 90, at=T0 + 60
    )

    assert checked.kid == key.jwk()["kid"] == certificate.kid
    assert checked.jwk == {k: v for k, v in key.jwk().items()}
    assert (checked.not_before, checked.not_after) == (T0, T0 + 3 * 3600)
    assert checked.certified_by == kms.jwk()["kid"]
    assert "d" not in checked.jwk  # only the public key is certified


def _tampered(token: str, **changes: Any) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(b64url_decode(payload))
    claims.update(changes)
    return ".".join([header, b64url_encode(json.dumps(claims).encode()), signature])


def _resigned(kms: LocalSigner, header: dict[str, Any], claims: dict[str, Any]) -> str:
    signing_input = (
        b64url_encode(json.dumps(header).encode())
        + "."
        + b64url_encode(json.dumps(claims).encode())
    )
    return signing_input + "." + b64url_encode(kms.sign(signing_input.encode()))


def _claims(token: str) -> dict[str, Any]:
    return dict(json.loads(b64url_decode(token.split(".")[1])))


def _header(token: str) -> dict[str, Any]:
    return dict(json.loads(b64url_decode(token.split(".")[0])))


Case = Callable[[LocalSigner, str], tuple[str, float | None]]


def _changed(change: Callable[[dict[str, Any]], dict[str, Any]]) -> Case:
    """A certificate re-signed by the certifying key after ``change`` to its claims."""
    return lambda kms, token: (_resigned(kms, _header(token), change(_claims(token))), T0 + 1)


def _header_changed(change: dict[str, Any]) -> Case:
    return lambda kms, token: (_resigned(kms, {**_header(token), **change}, _claims(token)), T0 + 1)


def _at(moment: Callable[[dict[str, Any]], float]) -> Case:
    return lambda kms, token: (token, moment(_claims(token)))


def _without(name: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda claims: {k: v for k, v in claims.items() if k != name}


OTHER = new_signer()
CASES: dict[str, tuple[Case, str]] = {
    "signed by another key": (
        lambda kms, token: (_resigned(OTHER, _header(token), _claims(token)), T0 + 1),
        "not the certifying key's",
    ),
    "payload changed after signing": (
        lambda kms, token: (_tampered(token, exp=T0 + 4 * 3600), T0 + 1),
        "not the certifying key's",
    ),
    "another stage": (_changed(lambda c: {**c, "stage": "dev"}), "another gateway or stage"),
    "another issuer": (
        _changed(lambda c: {**c, "iss": "https://evil.example"}),
        "another gateway or stage",
    ),
    "kid is not the thumbprint": (
        _changed(lambda c: {**c, "sub": "x", "jwk": {**c["jwk"], "kid": "x"}}),
        "not its thumbprint",
    ),
    "jwk swapped for another key": (
        _changed(lambda c: {**c, "jwk": OTHER.jwk()}),
        "not its thumbprint",
    ),
    "lifetime too long": (
        _changed(lambda c: {**c, "exp": T0 + MAX_CERTIFICATE_SECONDS + 1}),
        "longer than allowed",
    ),
    "no lifetime": (_changed(_without("exp")), "longer than allowed"),
    "assertion before nbf": (_at(lambda c: T0 - 1), "not certified at that time"),
    "assertion at exp": (_at(lambda c: c["exp"]), "not certified at that time"),
    "wrong typ": (_header_changed({"typ": "JWT"}), "alg or typ"),
    "alg none": (_header_changed({"alg": "none"}), "alg or typ"),
    "not a JWS": (lambda kms, token: ("abc.def", None), "not a compact JWS"),
    "payload not JSON": (
        lambda kms, token: (
            token.split(".")[0] + "." + b64url_encode(b"{nope") + "." + token.split(".")[2],
            None,
        ),
        "unreadable payload",
    ),
    "payload a list": (_changed(lambda c: []), "not a JSON object"),  # type: ignore[arg-type,return-value]
    "no jwk": (_changed(_without("jwk")), "no certified JWK"),
    "jwk without x": (
        _changed(lambda c: {**c, "jwk": {k: v for k, v in c["jwk"].items() if k != "x"}}),
        "lacks",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_certificate_that_breaks_a_rule_is_refused_saying_which(
    kms: LocalSigner, certified: tuple[LocalSigner, KeyCertificate], case: str
) -> None:
    make, expected = CASES[case]
    token, at = make(kms, certified[1].token)

    with pytest.raises(CertificateInvalid, match=expected):
        check_certificate(token, kms.jwk(), issuer=ISSUER, stage=STAGE, now=T0 + 2, at=at)


@pytest.mark.parametrize(
    ("now", "at"),
    [
        pytest.param(T0 + 3 * 3600, None, id="expired now"),
        pytest.param(T0 + 30 * 86400, T0 + 60, id="expired, whatever iat an assertion claims"),
        pytest.param(T0 - 61, None, id="not valid yet"),
    ],
)
def test_a_certificate_vouches_only_while_it_is_valid(
    kms: LocalSigner, certified: tuple[LocalSigner, KeyCertificate], now: float, at: float | None
) -> None:
    with pytest.raises(CertificateInvalid, match="not valid now"):
        check_certificate(certified[1].token, kms.jwk(), issuer=ISSUER, stage=STAGE, now=now, at=at)


def test_a_clock_slightly_behind_the_gateway_still_accepts_a_new_certificate(
    kms: LocalSigner, certified: tuple[LocalSigner, KeyCertificate]
) -> None:
    checked = check_certificate(
        certified[1].token, kms.jwk(), issuer=ISSUER, stage=STAGE, now=T0 - 59
    )
    assert checked.not_before == T0


@pytest.mark.parametrize("lifetime", [0, -1, MAX_CERTIFICATE_SECONDS + 1])
def test_certify_refuses_a_lifetime_outside_its_bounds(kms: LocalSigner, lifetime: int) -> None:
    with pytest.raises(ValueError, match="lives 1 to"):
        certify(
            kms,
            new_signer().jwk(),
            issuer=ISSUER,
            stage=STAGE,
            not_before=T0,
            lifetime_seconds=lifetime,
        )
