"""The signed identity assertion sent upstream in ``X-Gatehouse-Assertion``.

An ES256 JWT (RFC 7519) that tells the upstream who the caller is, for which
audience, for which request, signed by this container's short-lived P-256 key
(:mod:`chalicelib.signing.delegated`: certified by the stage's KMS key once,
never a KMS call per request). Upstreams verify it with the public keys at
``/.well-known/gatehouse/jwks.json`` and any standard JWT library, fetching
the set again when they meet a ``kid`` they do not know; they must check
``iss``, ``aud`` and ``exp``.
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
    from chalicelib.identity import Identity
    from chalicelib.signing.delegated import KeySource


class AssertionIssuer:
    """Issues identity assertions for upstream requests.

    Parameters
    ----------
    keys:
        The container's assertion keys (:class:`~chalicelib.signing.delegated.DelegatedKeys`;
        a fixed :class:`~chalicelib.aws.signers.LocalSigner` in tests).
    issuer:
        ``iss`` of every assertion (the gateway's URL).
    ttl_seconds:
        Lifetime of an assertion (at most 300 s).
    """

    def __init__(
        self,
        keys: KeySource,
        *,
        issuer: str,
        ttl_seconds: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._keys = keys
        self._issuer = issuer
        self._ttl = ttl_seconds
        self._clock = clock
        self._header: tuple[str, str] | None = None  # (kid, encoded header)

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
        key = self._keys.current()
        signing_input = self._header_segment(key.kid) + "." + _segment(claims)
        signature = key.sign(signing_input.encode("ascii"))
        return f"{signing_input}.{b64url_encode(signature)}"

    def _header_segment(self, kid: str) -> str:
        # The header only changes with the key: encode it once per key.
        header = self._header  # read once: another thread may replace it meanwhile
        if header is None or header[0] != kid:
            header = (kid, _segment({"alg": "ES256", "typ": "JWT", "kid": kid}))
            self._header = header
        return header[1]


def _segment(value: dict[str, Any]) -> str:
    try:
        encoded = orjson.dumps(value)
    except orjson.JSONEncodeError:  # e.g. a lone surrogate from an IdP claim
        encoded = json.dumps(value, separators=(",", ":"), ensure_ascii=True).encode("ascii")
    return b64url_encode(encoded)
