"""OIDC Back-Channel Logout 1.0: the logout token a provider posts when a person signs out there.

A logout token is a JWT signed like an ID token (same keys, same issuer,
the client id as audience) and checked by the same verifier. What makes it
a logout token, and nothing else, is checked here (section 2.6): an
``events`` claim with the back-channel logout member, no ``nonce`` (an ID
token can never pass for one), and a ``sub``. A token that names only a
``sid`` is refused: sessions are found by the person they belong to.

A logout token is good once: its ``jti`` is remembered (per container)
until it expires, and one issued more than :data:`MAX_LOGOUT_TOKEN_AGE_SECONDS`
ago is refused, so a captured token cannot be replayed to sign someone out
again later (the handler also spares sessions that began after ``iat``).
"""

from __future__ import annotations

import threading
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
MAX_LOGOUT_TOKEN_AGE_SECONDS = 300
_SEEN_LIMIT = 10_000


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
    issued_at: int


class SeenLogoutTokens:
    """The ``jti`` of every logout token this container accepted, until it expires."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def first_use(self, issuer: str, token_id: str, expires_at: float, now: float) -> bool:
        """Remember ``token_id``; False when it was seen already."""
        with self._lock:
            if len(self._seen) >= _SEEN_LIMIT:
                self._seen = {key: exp for key, exp in self._seen.items() if exp > now}
            key = (issuer, token_id)
            if key in self._seen:
                return False
            self._seen[key] = expires_at
            return True


def verify_logout_token(
    token: str,
    verifier: TokenVerifier,
    providers: Mapping[str, Provider],
    seen: SeenLogoutTokens,
    now: float,
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
    seen
        The logout tokens accepted already (a replay is refused).
    now
        Epoch seconds.

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
    issued_at = claims.get("iat")
    if not isinstance(issued_at, int | float):
        raise LogoutTokenRejected("a logout token must carry iat")
    if now - issued_at > MAX_LOGOUT_TOKEN_AGE_SECONDS:
        raise LogoutTokenRejected("the logout token is too old")
    token_id = claims.get("jti")
    if not isinstance(token_id, str) or not token_id:
        raise LogoutTokenRejected("a logout token must carry jti")
    if not seen.first_use(identity.issuer, token_id, identity.expires_at, now):
        raise LogoutTokenRejected("the logout token was used already")
    sid = claims.get("sid")
    return LogoutToken(
        issuer=identity.issuer,
        subject=identity.subject,
        idp_session_id=sid if isinstance(sid, str) and sid else None,
        issued_at=int(issued_at),
    )
