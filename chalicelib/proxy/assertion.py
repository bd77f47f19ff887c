"""The signed identity assertion sent upstream in ``X-Gatehouse-Assertion``.

An ES256 JWT (RFC 7519) that tells the upstream who the caller is, for which
audience, for which request, signed by the gateway's P-256 key: the KMS key
``ECC_NIST_P256`` in AWS, a local key when offline. Upstreams verify it with
the public keys at ``/.well-known/gatehouse/jwks.json`` and any standard JWT
library; they must check ``iss``, ``aud`` and ``exp``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson

from chalicelib.audit.schema import uuid7
from chalicelib.identity.keys import b64url_encode

if TYPE_CHECKING:
    from chalicelib.aws.signers import Signer
    from chalicelib.identity import Identity


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
        signer: Signer,
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
