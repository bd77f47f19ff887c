"""P-256 signing keys: one in memory (local stack, tests) or an asymmetric KMS key.

The identity assertion (:mod:`chalicelib.proxy.assertion`) and the ledger's
digests (:mod:`chalicelib.ledger.digest`) both sign through a :class:`Signer`;
the key lives here so that neither depends on the other.
"""

from __future__ import annotations

import hashlib
import json
import threading
from typing import Any, Protocol

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import load_der_public_key

from chalicelib.aws.errors import SigningError
from chalicelib.identity.keys import b64url_encode, public_jwk

# KMS signs at most 4096 bytes as a RAW message; longer input goes as a digest.
_KMS_RAW_LIMIT = 4096


class Signer(Protocol):
    """A P-256 key that signs (assertions, ledger digests)."""

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

    @property
    def kid(self) -> str:
        """The key's id (its RFC 7638 thumbprint)."""
        return self._jwk["kid"]

    def current(self) -> LocalSigner:
        """This key, as a key source that never rotates (tests, benchmarks)."""
        return self

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
