"""What the gateway publishes about its assertion keys (``/.well-known/gatehouse/``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chalicelib.signing.certificate import KeyCertificate


def jwks_document(certificates: Sequence[KeyCertificate]) -> dict[str, Any]:
    """``jwks.json``: the public JWK of every live key (RFC 7517), newest first."""
    return {"keys": [dict(certificate.jwk) for certificate in certificates]}


def certificates_document(certificates: Sequence[KeyCertificate]) -> dict[str, Any]:
    """``key-certificates.json``: each live key's certificate, by ``kid``.

    A backend checks one with the KMS key's public key, pinned out of band
    (see :func:`chalicelib.signing.check_certificate`).
    """
    return {
        "certificates": [
            {
                "kid": certificate.kid,
                "certified_by": certificate.certified_by,
                "not_before": certificate.not_before,
                "not_after": certificate.not_after,
                "certificate": certificate.token,
            }
            for certificate in certificates
        ]
    }
