"""Public signing keys (JWK) and signature checks.

Only asymmetric algorithms are accepted, one per key type: RS256 for RSA
(>= 2048 bits), ES256 for P-256, EdDSA for Ed25519. A key advertises exactly
one algorithm, and a token's ``alg`` must equal it: this is what stops the
"HS256 signed with the RSA public key" and "ES256 token, RSA key" attacks.

JWKs are parsed here, strictly (canonical base64url members, minimum RSA
size, P-256 points on the curve); the signature itself is checked by joserfc's
JWS algorithm of the key's ``alg``, with the parsed key imported into joserfc.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from joserfc.jwk import ECKey, OKPKey, RSAKey
from joserfc.jws import JWSRegistry

SUPPORTED_ALGORITHMS = frozenset({"RS256", "ES256", "EdDSA"})
# RFC 9864 names the Ed25519 algorithm "Ed25519"; JOSE's older name is "EdDSA".
ALGORITHM_ALIASES = {"Ed25519": "EdDSA"}
MIN_RSA_BITS = 2048

# joserfc's implementation of each accepted algorithm, resolved once. Gatehouse's
# "EdDSA" is Ed25519 only, which is exactly RFC 9864's fully specified "Ed25519";
# joserfc's polymorphic "EdDSA" would also take Ed448 and warns on every use.
_JWS = JWSRegistry(algorithms=["RS256", "ES256", "Ed25519"])
_JWS_ALGORITHMS = {
    "RS256": _JWS.get_alg("RS256"),
    "ES256": _JWS.get_alg("ES256"),
    "EdDSA": _JWS.get_alg("Ed25519"),
}
# bytes.translate: several times faster than str.translate on every token segment.
_TO_STANDARD = bytes.maketrans(b"-_", b"+/")
_B64URL_VALUES = {
    char: value
    for value, char in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
}

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | Ed25519PublicKey
JoseKey = RSAKey | ECKey | OKPKey


class InvalidKey(ValueError):
    """A JWK that cannot be used for verification."""


def b64url_decode(segment: str) -> bytes:
    """Decode unpadded, canonical base64url (RFC 7515 section 2).

    Raises
    ------
    ValueError
        On any character outside the alphabet, padding, an impossible
        length, or a non-canonical encoding (stray low bits).
    """
    remainder = len(segment) % 4
    # "+", "/" and "=" belong to other base64 alphabets; strict decoding
    # refuses everything else that is not base64url once it is translated.
    if (
        remainder == 1
        or not segment.isascii()
        or "+" in segment
        or "/" in segment
        or "=" in segment
    ):
        raise ValueError("not base64url")
    # The last character of a partial quantum carries 4 (or 2) unused bits,
    # which must be zero: otherwise several strings decode to the same bytes.
    if remainder and _B64URL_VALUES.get(segment[-1], 0) & (0xF if remainder == 2 else 0x3):
        raise ValueError("non-canonical base64url")
    try:
        padded = segment.encode("ascii").translate(_TO_STANDARD) + b"==="[: (4 - remainder) % 4]
        return binascii.a2b_base64(padded, strict_mode=True)
    except binascii.Error as exc:
        raise ValueError("not base64url") from exc


def b64url_encode(data: bytes) -> str:
    """Encode bytes as unpadded base64url."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass(frozen=True, slots=True)
class VerificationKey:
    """One public key from an issuer's JWKS, bound to one algorithm."""

    kid: str
    alg: str
    public_key: PublicKey
    # The same key as joserfc's JWS algorithms take it; derived, so callers
    # keep building a key from kid, alg and a cryptography public key.
    jose_key: JoseKey = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "jose_key", _jose_key(self.public_key))

    def verify(self, signing_input: bytes, signature: bytes) -> bool:
        """Return whether ``signature`` over ``signing_input`` is valid for this key.

        The check is joserfc's JWS algorithm named by the key's ``alg``. An
        algorithm Gatehouse does not accept verifies nothing.
        """
        algorithm = _JWS_ALGORITHMS.get(self.alg)
        if algorithm is None:
            return False
        return algorithm.verify(signing_input, signature, self.jose_key)


def _jose_key(public_key: PublicKey) -> JoseKey:
    # Importing the already-validated cryptography key (not the JWK dict) keeps
    # Gatehouse's strict JWK parsing the only one that decides which keys count.
    if isinstance(public_key, rsa.RSAPublicKey):
        return RSAKey.import_key(public_key)
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return ECKey.import_key(public_key)
    return OKPKey.import_key(public_key)


def parse_jwk(jwk: Any) -> VerificationKey:
    """Turn one JWK (a dict) into a :class:`VerificationKey`.

    Raises
    ------
    InvalidKey
        When the key is not a usable public signing key.
    """
    if not isinstance(jwk, dict):
        raise InvalidKey("a JWK must be an object")
    kid = jwk.get("kid")
    if not isinstance(kid, str) or not kid:
        raise InvalidKey("a JWK without a kid cannot be selected")
    if jwk.get("use", "sig") != "sig":
        raise InvalidKey(f"key {kid} is not for signatures")
    key_ops = jwk.get("key_ops")
    if key_ops is not None and (not isinstance(key_ops, list) or "verify" not in key_ops):
        raise InvalidKey(f"key {kid} does not allow verify")
    kty = jwk.get("kty")
    build = _KEY_BUILDERS.get(kty) if isinstance(kty, str) else None
    if build is None:
        raise InvalidKey(f"key {kid} has unsupported kty {jwk.get('kty')!r}")
    try:
        alg, public_key = build(jwk)
    except InvalidKey:
        raise
    except (ValueError, TypeError) as exc:
        raise InvalidKey(f"key {kid} is malformed: {exc}") from exc
    declared = jwk.get("alg")
    if declared is not None and canonical_algorithm(declared) != alg:
        raise InvalidKey(f"key {kid} declares alg {declared!r}, which Gatehouse does not accept")
    return VerificationKey(kid=kid, alg=alg, public_key=public_key)


def public_jwk(key: ec.EllipticCurvePublicKey, kid: str) -> dict[str, str]:
    """The JWK of a P-256 public key, for publishing (ES256)."""
    numbers = key.public_numbers()
    return {
        "kty": "EC",
        "crv": "P-256",
        "x": b64url_encode(numbers.x.to_bytes(32, "big")),
        "y": b64url_encode(numbers.y.to_bytes(32, "big")),
        "kid": kid,
        "alg": "ES256",
        "use": "sig",
    }


def canonical_algorithm(alg: object) -> str | None:
    """The algorithm name Gatehouse uses for ``alg``, or None when it is not a name."""
    if not isinstance(alg, str):
        return None
    return ALGORITHM_ALIASES.get(alg, alg)


def _member(jwk: dict[str, Any], name: str) -> bytes:
    value = jwk.get(name)
    if not isinstance(value, str):
        raise InvalidKey(f"JWK member {name!r} is missing")
    return b64url_decode(value)


def _rsa_key(jwk: dict[str, Any]) -> tuple[str, PublicKey]:
    n = int.from_bytes(_member(jwk, "n"), "big")
    e = int.from_bytes(_member(jwk, "e"), "big")
    public_key = rsa.RSAPublicNumbers(e, n).public_key()
    if public_key.key_size < MIN_RSA_BITS:
        raise InvalidKey(f"RSA key is {public_key.key_size} bits, below {MIN_RSA_BITS}")
    return "RS256", public_key


def _ec_key(jwk: dict[str, Any]) -> tuple[str, PublicKey]:
    if jwk.get("crv") != "P-256":
        raise InvalidKey(f"unsupported curve {jwk.get('crv')!r}")
    x, y = _member(jwk, "x"), _member(jwk, "y")
    if len(x) != 32 or len(y) != 32:
        raise InvalidKey("P-256 coordinates must be 32 bytes")
    numbers = ec.EllipticCurvePublicNumbers(
        int.from_bytes(x, "big"), int.from_bytes(y, "big"), ec.SECP256R1()
    )
    return "ES256", numbers.public_key()  # raises ValueError when off the curve


def _okp_key(jwk: dict[str, Any]) -> tuple[str, PublicKey]:
    if jwk.get("crv") != "Ed25519":
        raise InvalidKey(f"unsupported curve {jwk.get('crv')!r}")
    return "EdDSA", Ed25519PublicKey.from_public_bytes(_member(jwk, "x"))


_KEY_BUILDERS = {"RSA": _rsa_key, "EC": _ec_key, "OKP": _okp_key}
