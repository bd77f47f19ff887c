"""Exceptions of the sessions package.

::

    SessionError
     ├── SessionRejected      the session (cookie) cannot be used; ``.reason`` says why
     ├── SessionsUnavailable  keys or revocations cannot be read (callers fail closed)
     └── CookieTooLarge       what was to be sealed does not fit in a cookie

Messages never hold secret material: no key, no cookie value, no token.
"""

from __future__ import annotations

from chalicelib.reasons import Reason


class SessionError(Exception):
    """Base class for browser session failures."""


class SessionRejected(SessionError):
    """A session cannot be used: a new sign-in helps.

    Attributes
    ----------
    reason:
        ``SESSION_INVALID``, ``SESSION_EXPIRED``, ``SESSION_IDLE``,
        ``SESSION_REVOKED`` or ``SESSION_REFRESH_REQUIRED``.
    detail:
        What was wrong, for logs and the audit trail (never secret material).
    """

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


class SessionsUnavailable(SessionError):
    """The session keys or the revoked sessions cannot be read.

    Callers fail closed with ``Reason.SESSIONS_UNAVAILABLE``: a session that
    cannot be checked is not used.
    """

    reason = Reason.SESSIONS_UNAVAILABLE


class CookieTooLarge(SessionError):
    """The sealed value would not fit in one cookie (``MAX_COOKIE_BYTES``).

    Attributes
    ----------
    size:
        The bytes ``name=value`` would take.
    """

    def __init__(self, message: str, *, size: int) -> None:
        super().__init__(message)
        self.size = size
