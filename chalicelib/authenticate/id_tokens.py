"""An ID token from the token endpoint: the bearer verifier's checks, then the relying party's.

The signature, issuer, audience (the client id), expiry and the other
registered claims are checked by the same :class:`~chalicelib.identity.TokenVerifier`
(and reason codes) as bearer tokens. What only a relying party checks is
here: the token comes from the provider this sign-in went to, and a token
for several clients names this one as its authorized party (OIDC Core
3.1.3.7). The nonce is the callback's to check (it knows the attempt).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chalicelib.authenticate.errors import SignInFailed
from chalicelib.identity import TokenRejected
from chalicelib.reasons import Reason

if TYPE_CHECKING:
    from chalicelib.identity import Identity, TokenVerifier


def verify_id_token(token: str, verifier: TokenVerifier, issuer: str, client_id: str) -> Identity:
    """The identity ``token`` proves, for a sign-in with ``issuer`` as ``client_id``.

    Raises
    ------
    SignInFailed
        With the token's reason code (``bad_signature``, ``wrong_audience``...),
        ``unknown_issuer`` for another provider's token, or ``invalid_claim``
        for a token of several audiences whose ``azp`` is another client.
    """
    try:
        identity = verifier.verify(token)
    except TokenRejected as exc:
        raise SignInFailed(exc.reason, exc.detail) from exc
    if identity.issuer.rstrip("/") != issuer.rstrip("/"):
        raise SignInFailed(Reason.UNKNOWN_ISSUER, "the ID token is from another provider")
    audiences = identity.claims.get("aud")
    several = isinstance(audiences, list) and len(audiences) > 1
    if several and identity.claims.get("azp") != client_id:
        raise SignInFailed(Reason.INVALID_CLAIM, "several audiences and another azp")
    return identity
