"""Browser sessions: sealed cookies, their keys, the session store and revocations.

Offers :class:`Keyring` (seal and open cookies, :mod:`chalicelib.sessions.cookies`
with the cookie header helpers), :class:`BrowserSession` (what a session
cookie holds), :class:`SessionKeySource` (the keys, from Secrets Manager) and
:func:`rotate_session_keys`, :class:`RevokedSessions` (what every container
checks, without an AWS call per request) and :class:`SessionStore` (the
``SESSION`` and ``SESSION-REVOKED`` partitions of the state table).

Exceptions::

    SessionError
     ├── SessionRejected      the session cannot be used; ``.reason`` is a Reason
     │                        (session_invalid, _expired, _idle, _revoked,
     │                        _refresh_required), ``.detail`` says what was wrong
     ├── SessionsUnavailable  keys or revocations cannot be read (callers fail closed,
     │                        Reason.SESSIONS_UNAVAILABLE)
     └── CookieTooLarge       what was to be sealed does not fit in a cookie
"""

from chalicelib.sessions.cookies import (
    LOGIN_COOKIE,
    MAX_COOKIE_BYTES,
    SESSION_COOKIE,
    Keyring,
    SessionKey,
    clear_cookie,
    cookie_values,
    set_cookie,
    without_cookies,
)
from chalicelib.sessions.errors import (
    CookieTooLarge,
    SessionError,
    SessionRejected,
    SessionsUnavailable,
)
from chalicelib.sessions.keys import SessionKeySource, rotate_session_keys
from chalicelib.sessions.model import BrowserSession, new_session_id
from chalicelib.sessions.revocations import RevokedSessions
from chalicelib.sessions.store import SessionStore, StoredSession

__all__ = [
    "LOGIN_COOKIE",
    "MAX_COOKIE_BYTES",
    "SESSION_COOKIE",
    "BrowserSession",
    "CookieTooLarge",
    "Keyring",
    "RevokedSessions",
    "SessionError",
    "SessionKey",
    "SessionKeySource",
    "SessionRejected",
    "SessionStore",
    "SessionsUnavailable",
    "StoredSession",
    "clear_cookie",
    "cookie_values",
    "new_session_id",
    "rotate_session_keys",
    "set_cookie",
    "without_cookies",
]
