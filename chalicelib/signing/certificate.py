"""Key certificates: the KMS key vouches for a short-lived assertion key.

A certificate is a compact JWS (ES256) signed by the stage's certifying KMS
key. Its header is ``{"alg": "ES256", "typ": "gatehouse-key-certificate+jwt",
"kid": <the KMS key's JWK thumbprint>}`` and its payload::

    {"iss": <gateway issuer>, "stage": <stage>, "sub": <kid of the certified key>,
     "jwk": <the certified public JWK>, "iat": t, "nbf": t, "exp": t + lifetime}

A backend that wants more than the JWKS checks each assertion's ``kid`` back to
the KMS key with :func:`check_certificate` (or the same rules in any language,
``docs/architecture.md``): signature under the pinned KMS public key, ``typ``,
``iss`` and ``stage`` as expected, ``sub`` equal to the JWK's thumbprint and
``kid``, a lifetime of at most :data:`MAX_CERTIFICATE_SECONDS`, valid now,
and the assertion's ``iat`` inside ``nbf .. exp``, its ``exp`` not after the
certificate's and at most 300 s after its ``iat``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from chalicelib.aws.signers import jwk_thumbprint
from chalicelib.identity.keys import InvalidKey, b64url_decode, b64url_encode, parse_jwk
from chalicelib.signing.errors import CertificateInvalid

if TYPE_CHECKING:
    from chalicelib.aws.signers import Signer

CERTIFICATE_TYPE: Final = "gatehouse-key-certificate+jwt"
# A certified key outlives the last assertion it signs by little: a stolen one
# is useless within hours, and rotation needs no revocation list.
MAX_CERTIFICATE_SECONDS: Final = 6 * 3600
_PUBLIC_MEMBERS: Final = ("kty", "crv", "x", "y", "kid", "alg", "use")


@dataclass(frozen=True, slots=True)
class KeyCertificate:
    """A certified assertion key.

    Attributes
    ----------
    kid:
        The certified key's id (its RFC 7638 thumbprint).
    jwk:
        The certified public key.
    issuer, stage:
        Whose key it is.
    not_before, not_after:
        Epoch seconds: the key may sign assertions issued in this window.
    token:
        The certificate itself (compact JWS), as published.
    certified_by:
        The ``kid`` (thumbprint) of the KMS key that signed it.
    """

    kid: str
    jwk: dict[str, str]
    issuer: str
    stage: str
    not_before: int
    not_after: int
    token: str
    certified_by: str


def certify(
    certifier: Signer,
    jwk: dict[str, str],
    *,
    issuer: str,
    stage: str,
    not_before: int,
    lifetime_seconds: int,
) -> KeyCertificate:
    """Have ``certifier`` (the KMS key) sign a certificate of ``jwk``.

    Raises
    ------
    SigningError
        When the KMS key cannot sign.
    ValueError
        When the lifetime is not within ``1 .. MAX_CERTIFICATE_SECONDS``.
    """
    if not 0 < lifetime_seconds <= MAX_CERTIFICATE_SECONDS:
        raise ValueError(f"a key certificate lives 1 to {MAX_CERTIFICATE_SECONDS} seconds")
    public: dict[str, str] = {name: jwk[name] for name in _PUBLIC_MEMBERS if name in jwk}
    certified_by = certifier.jwk()["kid"]
    header = {"alg": "ES256", "typ": CERTIFICATE_TYPE, "kid": certified_by}
    payload = {
        "iss": issuer,
        "stage": stage,
        "sub": public["kid"],
        "jwk": public,
        "iat": not_before,
        "nbf": not_before,
        "exp": not_before + lifetime_seconds,
    }
    signing_input = _segment(header) + "." + _segment(payload)
    signature = certifier.sign(signing_input.encode("ascii"))
    return KeyCertificate(
        kid=public["kid"],
        jwk=public,
        issuer=issuer,
        stage=stage,
        not_before=not_before,
        not_after=not_before + lifetime_seconds,
        token=f"{signing_input}.{b64url_encode(signature)}",
        certified_by=certified_by,
    )


def check_certificate(
    token: str,
    certifying_jwk: dict[str, Any],
    *,
    issuer: str,
    stage: str,
    now: float,
    at: float | None = None,
    skew_seconds: float = 60.0,
) -> KeyCertificate:
    """The certificate ``token``, checked against the pinned KMS public key.

    Parameters
    ----------
    token:
        The compact JWS, as the gateway publishes it.
    certifying_jwk:
        The KMS key's public JWK, obtained out of band (``aws kms
        get-public-key``), never from the gateway that the check is about.
    issuer, stage:
        The gateway expected.
    now:
        The current time: the certificate must be valid now (``nbf`` up to
        ``skew_seconds`` in the future is tolerated, ``exp`` is not). An
        expired certificate vouches for nothing, whatever an assertion claims
        its ``iat`` to be: whoever holds a leaked key chooses that.
    at:
        When given (an assertion's ``iat``), the key must also have been
        valid then. A backend also checks that the assertion's ``exp`` is not
        after the certificate's ``exp`` and at most 300 s after its ``iat``.

    Raises
    ------
    CertificateInvalid
        Saying which rule the certificate breaks.
    """
    header, payload = _signed_parts(token, certifying_jwk)
    jwk = payload.get("jwk")
    if not isinstance(jwk, dict) or not all(isinstance(v, str) for v in jwk.values()):
        raise CertificateInvalid("no certified JWK")
    try:
        thumbprint = jwk_thumbprint(jwk)
    except KeyError as exc:
        raise CertificateInvalid(f"the certified JWK lacks {exc}") from exc
    if payload.get("sub") != thumbprint or jwk.get("kid") != thumbprint:
        raise CertificateInvalid("the certified key's kid is not its thumbprint")
    if payload.get("iss") != issuer or payload.get("stage") != stage:
        raise CertificateInvalid("issued for another gateway or stage")
    not_before, not_after = payload.get("nbf"), payload.get("exp")
    if not (isinstance(not_before, int) and isinstance(not_after, int)) or not (
        0 < not_after - not_before <= MAX_CERTIFICATE_SECONDS
    ):
        raise CertificateInvalid("its lifetime is missing or longer than allowed")
    if not not_before - skew_seconds <= now < not_after:
        raise CertificateInvalid("the certificate is not valid now (expired or not yet valid)")
    if at is not None and not not_before <= at < not_after:
        raise CertificateInvalid("the key was not certified at that time")
    return KeyCertificate(
        kid=thumbprint,
        jwk=jwk,
        issuer=issuer,
        stage=stage,
        not_before=not_before,
        not_after=not_after,
        token=token,
        certified_by=str(header.get("kid", "")),
    )


def _signed_parts(
    token: str, certifying_jwk: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The header and payload of ``token``, once its signature is the certifying key's."""
    header, payload = _parts(token)
    signed, _, signature_segment = token.rpartition(".")
    try:
        key = parse_jwk({**certifying_jwk, "alg": "ES256"})
        signature = b64url_decode(signature_segment)
    except (InvalidKey, ValueError) as exc:
        raise CertificateInvalid(f"unusable key or signature: {exc}") from exc
    if not key.verify(signed.encode("ascii"), signature):
        raise CertificateInvalid("the signature is not the certifying key's")
    return header, payload


def _parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The header and payload of a certificate, read but not checked."""
    parts = token.split(".")
    if len(parts) != 3:
        raise CertificateInvalid("not a compact JWS")
    header = _json_segment(parts[0], "header")
    payload = _json_segment(parts[1], "payload")
    if header.get("alg") != "ES256" or header.get("typ") != CERTIFICATE_TYPE:
        raise CertificateInvalid("not a Gatehouse key certificate (alg or typ)")
    return header, payload


def read_certificate(token: str) -> KeyCertificate:
    """What ``token`` says, its signature and rules *not* checked (to name an ended key).

    Raises
    ------
    CertificateInvalid
        When it cannot be read.
    """
    header, payload = _parts(token)
    try:
        jwk = {str(name): str(value) for name, value in dict(payload["jwk"]).items()}
        return KeyCertificate(
            kid=str(payload["sub"]),
            jwk=jwk,
            issuer=str(payload["iss"]),
            stage=str(payload["stage"]),
            not_before=int(payload["nbf"]),
            not_after=int(payload["exp"]),
            token=token,
            certified_by=str(header.get("kid", "")),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CertificateInvalid(f"unreadable certificate: {type(exc).__name__}") from exc


def _segment(value: dict[str, Any]) -> str:
    return b64url_encode(json.dumps(value, separators=(",", ":"), sort_keys=True).encode())


def _json_segment(segment: str, name: str) -> dict[str, Any]:
    try:
        value = json.loads(b64url_decode(segment))
    except ValueError as exc:
        raise CertificateInvalid(f"unreadable {name}") from exc
    if not isinstance(value, dict):
        raise CertificateInvalid(f"the {name} is not a JSON object")
    return value
