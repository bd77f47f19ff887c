"""chalicelib.identity.keys: JWK parsing, base64url decoding, signature checks."""

from __future__ import annotations

import base64
import string
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.identity.keys import (
    InvalidKey,
    VerificationKey,
    b64url_decode,
    b64url_encode,
    parse_jwk,
    public_jwk,
)
from tests.helpers import b64url, jwk, sign

ALPHABET = string.ascii_uppercase + string.ascii_lowercase + string.digits + "-_"  # value order

Jwk = dict[str, Any]


@pytest.fixture(scope="module")
def rsa_1024() -> rsa.RSAPrivateKey:
    # Deliberately weak: Gatehouse must refuse it.
    return rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505


@pytest.fixture(scope="module")
def p384_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP384R1())


@pytest.fixture
def keys(
    rsa_key: rsa.RSAPrivateKey,
    ec_key: ec.EllipticCurvePrivateKey,
    ed_key: ed25519.Ed25519PrivateKey,
    rsa_1024: rsa.RSAPrivateKey,
    p384_key: ec.EllipticCurvePrivateKey,
) -> dict[str, Jwk]:
    p384 = p384_key.public_key().public_numbers()
    return {
        "rsa": jwk(rsa_key.public_key(), "k"),
        "ec": jwk(ec_key.public_key(), "k"),
        "ed": jwk(ed_key.public_key(), "k"),
        "rsa1024": jwk(rsa_1024.public_key(), "k"),
        "p384": {
            "kty": "EC",
            "crv": "P-384",
            "x": b64url(p384.x.to_bytes(48, "big")),
            "y": b64url(p384.y.to_bytes(48, "big")),
            "kid": "k",
        },
    }


def _with(**changes: Any) -> Callable[[Jwk], Jwk]:
    """A JWK edit: set members (None removes one)."""

    def edit(key: Jwk) -> Jwk:
        edited = dict(key)
        for name, value in changes.items():
            if value is None:
                edited.pop(name, None)
            else:
                edited[name] = value
        return edited

    return edit


def _off_curve(key: Jwk) -> Jwk:
    y = int.from_bytes(b64url_decode(key["y"]), "big")
    return {**key, "y": b64url(((y + 1) % 2**256).to_bytes(32, "big"))}


def _padded(member: str) -> Callable[[Jwk], Jwk]:
    def edit(key: Jwk) -> Jwk:
        value = key[member]
        return {**key, member: value + "=" * (-len(value) % 4 or 4)}

    return edit


def _unchanged(key: Jwk) -> Jwk:
    return dict(key)


ACCEPTED = [
    ("rsa", _unchanged, "RS256"),
    ("rsa", _with(alg="RS256", use="sig"), "RS256"),
    ("rsa", _with(key_ops=["verify"]), "RS256"),
    ("ec", _unchanged, "ES256"),
    ("ec", _with(alg="ES256"), "ES256"),
    ("ed", _unchanged, "EdDSA"),
    ("ed", _with(alg="EdDSA"), "EdDSA"),
    ("ed", _with(alg="Ed25519"), "EdDSA"),
]


@pytest.mark.parametrize(
    ("base", "edit", "alg"),
    ACCEPTED,
    ids=[
        "rsa-2048",
        "rsa-declared-rs256-use-sig",
        "rsa-key-ops-verify",
        "ec-p256",
        "ec-declared-es256",
        "okp-ed25519",
        "okp-declared-eddsa",
        "okp-declared-ed25519-name",
    ],
)
def test_parse_jwk_accepts(
    keys: dict[str, Jwk], base: str, edit: Callable[[Jwk], Jwk], alg: str
) -> None:
    key = parse_jwk(edit(keys[base]))
    assert key.kid == "k"
    assert key.alg == alg


REFUSED = [
    ("rsa1024", _unchanged),
    ("p384", _unchanged),
    ("ec", _off_curve),
    ("ec", _with(crv="P-384")),
    ("ec", _with(x=b64url(b"\x01" * 31))),
    ("ec", _with(y=None)),
    ("ed", _with(crv="X25519")),
    ("ed", _with(x=b64url(b"\x01" * 31))),
    ("rsa", _with(use="enc")),
    ("rsa", _with(key_ops=["sign"])),
    ("rsa", _with(key_ops=["encrypt", "wrapKey"])),
    ("rsa", _with(key_ops="verify")),
    ("rsa", _with(alg="PS256")),
    ("rsa", _with(alg="HS256")),
    ("rsa", _with(alg="RS512")),
    ("rsa", _with(alg="none")),
    ("ec", _with(alg="RS256")),
    ("ed", _with(alg="ES256")),
    ("rsa", _with(kid=None)),
    ("rsa", _with(kid="")),
    ("rsa", _with(kid=7)),
    ("rsa", _with(kty="oct", k=b64url(b"secret" * 6))),
    ("rsa", _with(kty=None)),
    ("rsa", _with(kty=["RSA"])),
    ("rsa", _with(n=None)),
    ("rsa", _with(n=12345)),
    ("rsa", _padded("n")),
    ("rsa", _with(n="not+base64/")),
    ("rsa", _with(e=b64url(b"\x02"))),
]


@pytest.mark.parametrize(
    ("base", "edit"),
    REFUSED,
    ids=[
        "rsa-1024",
        "ec-p384",
        "ec-point-not-on-curve",
        "ec-p256-coordinates-labelled-p384",
        "ec-short-x",
        "ec-missing-y",
        "okp-x25519",
        "okp-short-x",
        "use-enc",
        "key-ops-sign-only",
        "key-ops-without-verify",
        "key-ops-not-a-list",
        "alg-ps256",
        "alg-hs256",
        "alg-rs512",
        "alg-none",
        "ec-declared-rs256",
        "okp-declared-es256",
        "missing-kid",
        "empty-kid",
        "kid-not-a-string",
        "kty-oct",
        "missing-kty",
        "kty-not-a-string",
        "rsa-missing-n",
        "rsa-n-not-a-string",
        "rsa-n-padded",
        "rsa-n-not-base64url",
        "rsa-even-exponent",
    ],
)
def test_parse_jwk_refuses(keys: dict[str, Jwk], base: str, edit: Callable[[Jwk], Jwk]) -> None:
    with pytest.raises(InvalidKey):
        parse_jwk(edit(keys[base]))


@pytest.mark.parametrize("value", [None, [], "kid", 42], ids=["null", "list", "string", "number"])
def test_parse_jwk_refuses_non_objects(value: Any) -> None:
    with pytest.raises(InvalidKey):
        parse_jwk(value)


def test_public_jwk_round_trips_through_parse_jwk(ec_key: ec.EllipticCurvePrivateKey) -> None:
    published = public_jwk(ec_key.public_key(), "assertion-1")
    key = parse_jwk(published)
    assert (key.kid, key.alg) == ("assertion-1", "ES256")
    assert key.public_key.public_numbers() == ec_key.public_key().public_numbers()


# --- VerificationKey.verify -------------------------------------------------------------------

MESSAGE = b"header.payload"


@pytest.fixture
def signers(
    rsa_key: rsa.RSAPrivateKey,
    ec_key: ec.EllipticCurvePrivateKey,
    ed_key: ed25519.Ed25519PrivateKey,
) -> dict[str, tuple[Any, VerificationKey]]:
    return {
        alg: (private, parse_jwk(jwk(private.public_key(), alg)))
        for alg, private in (("RS256", rsa_key), ("ES256", ec_key), ("EdDSA", ed_key))
    }


@pytest.mark.parametrize("alg", ["RS256", "ES256", "EdDSA"])
def test_verify_accepts_a_genuine_signature(
    signers: dict[str, tuple[Any, VerificationKey]], alg: str
) -> None:
    private, key = signers[alg]
    assert key.verify(MESSAGE, sign(private, alg, MESSAGE)) is True


@pytest.mark.parametrize("alg", ["RS256", "ES256", "EdDSA"])
def test_verify_refuses_a_signature_over_other_bytes(
    signers: dict[str, tuple[Any, VerificationKey]], alg: str
) -> None:
    private, key = signers[alg]
    assert key.verify(MESSAGE + b"x", sign(private, alg, MESSAGE)) is False


def test_verify_refuses_another_rsa_key(
    signers: dict[str, tuple[Any, VerificationKey]], other_rsa_key: rsa.RSAPrivateKey
) -> None:
    _, key = signers["RS256"]
    assert key.verify(MESSAGE, sign(other_rsa_key, "RS256", MESSAGE)) is False


@pytest.mark.parametrize(
    ("alg", "mangle"),
    [
        ("RS256", lambda sig: sig[:-1]),
        ("RS256", lambda sig: sig + b"\x00"),
        ("RS256", lambda sig: b""),
        ("ES256", lambda sig: sig[:-1]),
        ("ES256", lambda sig: sig + b"\x00"),
        ("ES256", lambda sig: b"\x00" * 64),
        ("ES256", lambda sig: b"\xff" * 64),
        ("ES256", lambda sig: sig[32:] + sig[:32]),
        ("ES256", lambda sig: sig[:32] + b"\x00" + sig[32:]),
        ("ES256", lambda sig: b"\x00" + sig[:32] + b"\x00" + sig[32:]),
        ("EdDSA", lambda sig: sig[:-1]),
        ("EdDSA", lambda sig: sig + b"\x00"),
        ("EdDSA", lambda sig: bytes([sig[0] ^ 1]) + sig[1:]),
    ],
    ids=[
        "rs256-truncated",
        "rs256-extended",
        "rs256-empty",
        "es256-63-bytes",
        "es256-65-bytes",
        "es256-zero-r-s",
        "es256-r-s-above-order",
        "es256-r-s-swapped",
        "es256-s-zero-padded-65-bytes",
        "es256-r-and-s-zero-padded-66-bytes",
        "eddsa-truncated",
        "eddsa-extended",
        "eddsa-bit-flip",
    ],
)
def test_verify_refuses_mangled_signatures(
    signers: dict[str, tuple[Any, VerificationKey]],
    alg: str,
    mangle: Callable[[bytes], bytes],
) -> None:
    private, key = signers[alg]
    assert key.verify(MESSAGE, mangle(sign(private, alg, MESSAGE))) is False


def test_verify_refuses_der_encoded_es256_signature(
    signers: dict[str, tuple[Any, VerificationKey]], ec_key: ec.EllipticCurvePrivateKey
) -> None:
    from cryptography.hazmat.primitives import hashes

    _, key = signers["ES256"]
    der = ec_key.sign(MESSAGE, ec.ECDSA(hashes.SHA256()))
    assert key.verify(MESSAGE, der) is False


# --- b64url_decode ----------------------------------------------------------------------------


def _stdlib_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@given(st.binary(max_size=300))
def test_b64url_round_trips_any_bytes(data: bytes) -> None:
    assert b64url_decode(_stdlib_encode(data)) == data
    assert b64url_decode(b64url_encode(data)) == data


@given(
    st.text(alphabet=ALPHABET, max_size=40),
    st.characters(exclude_characters=ALPHABET),
    st.text(alphabet=ALPHABET, max_size=40),
)
def test_b64url_refuses_any_character_outside_the_alphabet(
    before: str, intruder: str, after: str
) -> None:
    with pytest.raises(ValueError, match="base64url"):
        b64url_decode(before + intruder + after)


@given(st.binary(min_size=1, max_size=100).filter(lambda b: len(b) % 3), st.data())
def test_b64url_refuses_stray_low_bits(data: bytes, draw: st.DataObject) -> None:
    canonical = _stdlib_encode(data)
    stray_bits = 4 if len(data) % 3 == 1 else 2
    index = ALPHABET.index(canonical[-1])
    noise = draw.draw(st.integers(1, 2**stray_bits - 1))
    assert index % 2**stray_bits == 0  # canonical: the stray bits are zero
    non_canonical = canonical[:-1] + ALPHABET[index | noise]
    # The standard library decodes it to the same bytes, which is why it must be refused.
    assert base64.urlsafe_b64decode(non_canonical + "=" * (-len(non_canonical) % 4)) == data
    with pytest.raises(ValueError, match="base64url"):
        b64url_decode(non_canonical)


@given(st.binary(min_size=1, max_size=100).filter(lambda b: len(b) % 3))
def test_b64url_refuses_padding(data: bytes) -> None:
    padded = base64.urlsafe_b64encode(data).decode("ascii")
    assert padded.endswith("=")
    with pytest.raises(ValueError, match="base64url"):
        b64url_decode(padded)


@given(
    st.integers(0, 15).flatmap(
        lambda n: st.text(alphabet=ALPHABET, min_size=4 * n + 1, max_size=4 * n + 1)
    )
)
def test_b64url_refuses_impossible_lengths(text: str) -> None:
    assert len(text) % 4 == 1
    with pytest.raises(ValueError, match="base64url"):
        b64url_decode(text)


@given(st.text(alphabet=ALPHABET, max_size=60))
def test_b64url_accepts_only_the_canonical_spelling(text: str) -> None:
    try:
        decoded = b64url_decode(text)
    except ValueError:
        return
    assert _stdlib_encode(decoded) == text


@pytest.mark.parametrize(
    "text",
    ["YQ==", "YQ=", "Y+E", "Y/E", "YW I", " YWI", "YWI\n", "YR", "YWJ", "Y", "YWJjZ"],
    ids=[
        "double-pad",
        "single-pad",
        "plus",
        "slash",
        "inner-space",
        "leading-space",
        "trailing-newline",
        "stray-bits-1-byte",
        "stray-bits-2-bytes",
        "length-1",
        "length-5",
    ],
)
def test_b64url_refuses_examples(text: str) -> None:
    with pytest.raises(ValueError, match="base64url"):
        b64url_decode(text)


def test_b64url_decodes_the_empty_string() -> None:
    assert b64url_decode("") == b""
