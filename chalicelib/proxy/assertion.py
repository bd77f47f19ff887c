"""The signed identity assertion sent upstream in ``X-Gatehouse-Assertion``.

An ES256 JWT (RFC 7519) that tells the upstream who the caller is, for which
audience, for which request, signed by the gateway's P-256 key: the KMS key
``ECC_NIST_P256`` in AWS, a local key when offline. Upstreams verify it with
the public keys at ``/.well-known/gatehouse/jwks.json`` and any standard JWT
library; they must check ``iss``, ``aud`` and ``exp``.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import orjson
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import load_der_public_key

from chalicelib.audit.schema import uuid7
from chalicelib.identity.keys import b64url_encode, public_jwk
from chalicelib.proxy.errors import SigningError

if TYPE_CHECKING:
    from chalicelib.identity import Identity

# KMS signs at most 4096 bytes as a RAW message; longer input goes as a digest.
_KMS_RAW_LIMIT = 4096


class AssertionSigner(Protocol):
    """A P-256 key that signs assertions."""

    def jwk(self) -> dict[str, str]:
        """The public key as a JWK (with ``kid``)."""

    def sign(self, message: bytes) -> bytes:
        """The ES256 signature of ``message`` (raw ``r || s``, 64 bytes)."""


def jwk_thumbprint(jwk: dict[str, str]) -> str:
    """The RFC 7638 thumbprint of a P-256 JWK, used as its ``kid``."""
    required = {name: jwk[name] for name in ("crv", "kty", "x", "y")}
    canonical = json.dumps(required, sort_keys=True, separators=(",", ":"))
    return b64url_encode(hashlib.sha256(canonical.encode("ascii")).digest())


def _raw_signature(der: bytes) -> bytes:
    r, s = decode_dss_signature(der)
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


class LocalSigner:
    """Signs with a P-256 private key held in memory (local stack, tests)."""

    def __init__(self, private_key: ec.EllipticCurvePrivateKey) -> None:
        public = private_key.public_key()
        self._private_key = private_key
        self._jwk = public_jwk(public, kid="")
        self._jwk["kid"] = jwk_thumbprint(self._jwk)

    def jwk(self) -> dict[str, str]:
        """The public JWK."""
        return dict(self._jwk)

    def sign(self, message: bytes) -> bytes:
        """Sign ``message``."""
        return _raw_signature(self._private_key.sign(message, ec.ECDSA(hashes.SHA256())))


class KmsSigner:
    """Signs with an asymmetric KMS key (``ECC_NIST_P256``, ``SIGN_VERIFY``).

    The public key is fetched once per container.
    """

    def __init__(self, kms: Any, key_id: str) -> None:
        self._kms = kms
        self._key_id = key_id
        self._jwk: dict[str, str] | None = None
        self._lock = threading.Lock()

    def jwk(self) -> dict[str, str]:
        """The public JWK of the KMS key.

        Raises
        ------
        SigningError
            When KMS cannot be reached or the key is not a P-256 key.
        """
        if self._jwk is None:
            with self._lock:
                if self._jwk is None:
                    self._jwk = self._fetch_jwk()
        return dict(self._jwk)

    def _fetch_jwk(self) -> dict[str, str]:
        try:
            der = self._kms.get_public_key(KeyId=self._key_id)["PublicKey"]
        except Exception as exc:
            raise SigningError(f"cannot read the signing key: {type(exc).__name__}") from exc
        public = load_der_public_key(der)
        if not isinstance(public, ec.EllipticCurvePublicKey) or public.curve.name != "secp256r1":
            raise SigningError("the signing key is not an ECC_NIST_P256 key")
        jwk = public_jwk(public, kid="")
        jwk["kid"] = jwk_thumbprint(jwk)
        return jwk

    def sign(self, message: bytes) -> bytes:
        """Sign ``message`` with KMS (ECDSA_SHA_256).

        Raises
        ------
        SigningError
            When KMS refuses or cannot be reached.
        """
        if len(message) <= _KMS_RAW_LIMIT:
            request = {"Message": message, "MessageType": "RAW"}
        else:
            request = {"Message": hashlib.sha256(message).digest(), "MessageType": "DIGEST"}
        try:
            response = self._kms.sign(
                KeyId=self._key_id, SigningAlgorithm="ECDSA_SHA_256", **request
            )
        except Exception as exc:
            raise SigningError(f"KMS did not sign: {type(exc).__name__}") from exc
        return _raw_signature(response["Signature"])


class AssertionIssuer:
    """Issues identity assertions for upstream requests.

    Parameters
    ----------
    signer:
        The gateway's key.
    issuer:
        ``iss`` of every assertion (the gateway's URL).
    ttl_seconds:
        Lifetime of an assertion (at most 300 s).
    """

    def __init__(
        self,
        signer: AssertionSigner,
        *,
        issuer: str,
        ttl_seconds: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._signer = signer
        self._issuer = issuer
        self._ttl = ttl_seconds
        self._clock = clock
        self._header: str | None = None

    def issue(
        self,
        identity: Identity,
        *,
        audience: str,
        request_id: str,
        decision_id: str,
        method: str,
        url: str,
    ) -> str:
        """A signed assertion of ``identity`` for one request to ``audience``.

        It names the request (``htm`` method, ``htu`` URL without query, as in
        DPoP, RFC 9449) so it cannot be replayed for another one, and it never
        outlives the token it was derived from.

        Raises
        ------
        SigningError
            When the assertion cannot be signed.
        """
        now = int(self._clock())
        claims = {
            "iss": self._issuer,
            "aud": audience,
            "sub": identity.subject,
            "email": identity.email,
            "groups": sorted(identity.groups),
            "amr": list(identity.amr),
            "idp": identity.issuer,
            "iat": now,
            "nbf": now,
            "exp": min(now + self._ttl, identity.expires_at),
            "htm": method,
            "htu": url,
            "rid": request_id,
            "decision_id": decision_id,
            "jti": uuid7(),
        }
        signing_input = self._header_segment() + "." + _segment(claims)
        signature = self._signer.sign(signing_input.encode("ascii"))
        return f"{signing_input}.{b64url_encode(signature)}"

    def _header_segment(self) -> str:
        # The header only changes with the key: encode it once.
        if self._header is None:
            header = {"alg": "ES256", "typ": "JWT", "kid": self._signer.jwk()["kid"]}
            self._header = _segment(header)
        return self._header

    def jwks(self) -> dict[str, Any]:
        """The gateway's public key set."""
        return {"keys": [self._signer.jwk()]}


def _segment(value: dict[str, Any]) -> str:
    try:
        encoded = orjson.dumps(value)
    except orjson.JSONEncodeError:  # e.g. a lone surrogate from an IdP claim
        encoded = json.dumps(value, separators=(",", ":"), ensure_ascii=True).encode("ascii")
    return b64url_encode(encoded)
