"""A sign-in in flight: what must come back from the provider, sealed in a cookie.

Nothing is stored server-side between ``/.gatehouse/login`` and the
callback: the ``state``, the ``nonce``, the PKCE verifier, the provider and
the return-to address travel in the ``__Host-gatehouse-login`` cookie,
sealed (encrypted and authenticated) by the session keys with the cookie's
name as associated data. The callback accepts only the one attempt whose
``state`` the provider echoes; an attempt older than
:data:`ATTEMPT_MAX_SECONDS` is refused.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chalicelib.authenticate.errors import SignInFailed
from chalicelib.reasons import Reason
from chalicelib.sessions import SessionRejected
from chalicelib.sessions.cookies import LOGIN_COOKIE

if TYPE_CHECKING:
    from chalicelib.sessions.cookies import Keyring
    from chalicelib.sessions.keys import SessionKeySource

ATTEMPT_MAX_SECONDS = 600


@dataclass(frozen=True, slots=True)
class SignInAttempt:
    """One sign-in started by this browser."""

    idp: str
    state: str
    nonce: str
    code_verifier: str
    return_to: str
    started_at: int

    @classmethod
    def start(cls, idp: str, return_to: str, now: float) -> SignInAttempt:
        """A fresh attempt: unguessable state, nonce and PKCE verifier (RFC 7636: 43+ chars)."""
        return cls(
            idp=idp,
            state=secrets.token_urlsafe(24),
            nonce=secrets.token_urlsafe(24),
            code_verifier=secrets.token_urlsafe(48),
            return_to=return_to,
            started_at=int(now),
        )

    def seal(self, keyring: Keyring) -> str:
        """The attempt as the login cookie's value."""
        return keyring.seal(
            {
                "i": self.idp,
                "s": self.state,
                "n": self.nonce,
                "v": self.code_verifier,
                "r": self.return_to,
                "t": self.started_at,
            },
            purpose=LOGIN_COOKIE,
        )

    @classmethod
    def open(cls, values: list[str], keys: SessionKeySource, now: float) -> SignInAttempt:
        """The attempt the browser brought back.

        Raises
        ------
        SignInFailed
            ``login_expired`` when there is no attempt, more than one, or one
            that cannot be opened or is too old.
        """
        if len(values) != 1:
            detail = "no sign-in attempt cookie" if not values else "several sign-in cookies"
            raise SignInFailed(Reason.LOGIN_EXPIRED, detail)
        try:
            payload: dict[str, Any] = keys.open(values[0], purpose=LOGIN_COOKIE)
            attempt = cls(
                idp=_text(payload, "i"),
                state=_text(payload, "s"),
                nonce=_text(payload, "n"),
                code_verifier=_text(payload, "v"),
                return_to=_text(payload, "r"),
                started_at=int(payload["t"]),
            )
        except SessionRejected as exc:
            raise SignInFailed(Reason.LOGIN_EXPIRED, exc.detail) from exc
        except (KeyError, TypeError, ValueError) as exc:
            raise SignInFailed(Reason.LOGIN_EXPIRED, "unusable sign-in attempt") from exc
        if not 0 <= now - attempt.started_at <= ATTEMPT_MAX_SECONDS:
            raise SignInFailed(Reason.LOGIN_EXPIRED, "the sign-in took too long")
        return attempt


def _text(payload: dict[str, Any], key: str) -> str:
    value = payload[key]
    if not isinstance(value, str):
        raise TypeError(key)
    return value
