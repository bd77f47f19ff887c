"""OIDC Back-Channel Logout 1.0: the logout token a provider posts when a person signs out there.

A logout token is a JWT signed like an ID token (same keys, same issuer,
the client id as audience) and checked by the same verifier. What makes it
a logout token, and nothing else, is checked here (section 2.6): an
``events`` claim with the back-channel logout member, no ``nonce`` (an ID
token can never pass for one), and a ``sub``. A token that names only a
``sid`` is refused: sessions are found by the person they belong to.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from chalicelib.authenticate.errors import SignInError
from chalicelib.identity import TokenRejected

if TYPE_CHECKING:
    from chalicelib.authenticate.provider import Provider
    from chalicelib.identity import TokenVerifier

BACKCHANNEL_LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
_MAX_LOGOUT_TOKEN_BYTES = 8192


class LogoutTokenRejected(SignInError):
    """The logout token is not acceptable; ``detail`` says why (safe to return to the provider)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


@dataclass(frozen=True, slots=True)
class LogoutToken:
    """Whose sessions a provider ended."""

    issuer: str
    subject: str
    idp_session_id: str | None


def verify_logout_token(
    token: str, verifier: TokenVerifier, providers: Mapping[str, Provider]
) -> LogoutToken:
    """Verify ``token`` and say whose sessions it ends.

    Parameters
    ----------
    token
        The ``logout_token`` form parameter.
    verifier
        The ID token verifier (each provider's client id as the audience).
    providers
        The sign-in providers by issuer URL (no trailing slash).

    Raises
    ------
    LogoutTokenRejected
        When the token is missing, invalid, or not a logout token.
    """
    if not token or len(token) > _MAX_LOGOUT_TOKEN_BYTES:
        raise LogoutTokenRejected("missing or oversized logout_token")
    try:
        identity = verifier.verify(token)
    except TokenRejected as exc:
        raise LogoutTokenRejected(f"logout_token rejected: {exc.reason.value}") from exc
    if identity.issuer.rstrip("/") not in providers:
        raise LogoutTokenRejected("logout_token from an issuer people do not sign in with")
    claims = identity.claims
    events = claims.get("events")
    if not isinstance(events, Mapping) or not isinstance(
        events.get(BACKCHANNEL_LOGOUT_EVENT), Mapping
    ):
        raise LogoutTokenRejected("not a logout token: no back-channel logout event")
    if "nonce" in claims:
        raise LogoutTokenRejected("a logout token must not carry a nonce")
    if not isinstance(claims.get("iat"), int | float):
        raise LogoutTokenRejected("a logout token must carry iat")
    sid = claims.get("sid")
    return LogoutToken(
        issuer=identity.issuer,
        subject=identity.subject,
        idp_session_id=sid if isinstance(sid, str) and sid else None,
    )
