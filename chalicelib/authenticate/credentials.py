"""A request's browser session: the cookie opened, checked and turned into an identity.

The authorizer calls this on every request that carries a session cookie
and no bearer token. It makes no AWS call: the keys and the revoked
sessions are the container's copies, each re-read on its own bound.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from chalicelib.reasons import Reason
from chalicelib.sessions import SessionError, SessionRejected, SessionsUnavailable
from chalicelib.sessions.cookies import SESSION_COOKIE, cookie_values, set_cookie
from chalicelib.sessions.model import BrowserSession

if TYPE_CHECKING:
    from chalicelib.sessions.cookies import Keyring
    from chalicelib.sessions.keys import SessionKeySource
    from chalicelib.sessions.revocations import RevokedSessions


# Opened cookies kept per container (a few hundred bytes each).
_CACHE_SIZE = 4096


class SessionEnded(SessionRejected):
    """A genuine session (its cookie opened) that can no longer be used; ``session`` says whose.

    Its decision still names the person and the session: a revoked session's
    cookie replayed is part of that session's story.
    """

    def __init__(self, reason: Reason, session: BrowserSession) -> None:
        super().__init__(reason, f"session {session.session_id}")
        self.session = session


class SessionCredentials:
    """Opens and checks session cookies.

    Parameters
    ----------
    keys
        The session keys (newest seals, all open).
    revoked
        The revoked sessions, as this container last read them.
    idle_seconds
        A session unused for longer has ended.
    clock
        Wall clock, injectable for tests.
    """

    def __init__(
        self,
        keys: SessionKeySource,
        revoked: RevokedSessions,
        *,
        idle_seconds: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._keys = keys
        self._revoked = revoked
        self._idle_seconds = idle_seconds
        self._clock = clock
        self._cache: OrderedDict[str, BrowserSession] = OrderedDict()
        self._cache_ring: Keyring | None = None
        self._cache_lock = threading.Lock()

    @staticmethod
    def presented(cookie_headers: Sequence[str]) -> bool:
        """Whether the request carries a session cookie at all."""
        return bool(cookie_values(cookie_headers, SESSION_COOKIE))

    def renewed_cookie(self, cookie_headers: Sequence[str], session_id: str) -> str | None:
        """A ``Set-Cookie`` that moves the session's last use to now, when it is due.

        The idle limit counts from the last use the cookie records; the
        proxy re-seals it after a request it served, at most once per
        :meth:`renew_after` seconds (a cookie on every response would cost
        a seal each time and churn the browser's cookie jar).
        """
        values = cookie_values(cookie_headers, SESSION_COOKIE)
        if len(values) != 1:
            return None
        try:
            session = self._opened(values[0])
        except (SessionRejected, SessionsUnavailable):
            return None
        now = self._clock()
        if session.session_id != session_id or now - session.seen_at < self.renew_after:
            return None
        try:
            keyring = self._keys.keyring()
            value = keyring.seal(session.seen(now).to_payload(), purpose=SESSION_COOKIE)
        except SessionError:
            return None
        return set_cookie(SESSION_COOKIE, value, max_age=max(0, int(session.expires_at - now)))

    @property
    def renew_after(self) -> float:
        """Seconds between two renewals: a tenth of the idle limit, at least a minute."""
        return max(60.0, self._idle_seconds / 10)

    def _opened(self, value: str) -> BrowserSession:
        """The session sealed in ``value``, opened once per container and cookie.

        A browser sends the same cookie on every request until it is renewed:
        opening it (base64, AES-GCM, JSON) costs more than the rest of the
        decision. The cache is keyed by the exact value (the seal's random
        nonce makes every cookie unique; the AEAD makes a value mean one
        payload) and is emptied whenever the key ring changes, so a key
        rotated out stops opening its cookies at once. Expiry, idleness and
        revocation are checked on every request all the same.
        """
        keyring = self._keys.keyring()
        with self._cache_lock:
            if keyring is not self._cache_ring:
                self._cache.clear()
                self._cache_ring = keyring
            cached = self._cache.get(value)
            if cached is not None:
                self._cache.move_to_end(value)
                return cached
        session = BrowserSession.from_payload(self._keys.open(value, purpose=SESSION_COOKIE))
        with self._cache_lock:
            if self._cache_ring is keyring:
                self._cache[value] = session
                if len(self._cache) > _CACHE_SIZE:
                    self._cache.popitem(last=False)
        return session

    def revoked_here(self, session_id: str) -> None:
        """This container revoked ``session_id``: refuse it from the next request on."""
        self._revoked.remember(session_id)

    def is_revoked(self, session_id: str) -> bool:
        """Whether ``session_id`` was revoked (SessionsUnavailable when that cannot be known)."""
        return self._revoked.is_revoked(session_id)

    def session(
        self, cookie_headers: Sequence[str], *, refresh_due_ok: bool = False
    ) -> BrowserSession:
        """The live session the request's cookie names.

        Parameters
        ----------
        cookie_headers
            The request's ``Cookie`` header values.
        refresh_due_ok
            Accept a session whose claims are due to be asked for again (the
            refresh endpoint, which does exactly that).

        Raises
        ------
        SessionRejected
            With the reason the cookie cannot be used (several session
            cookies, tampered, expired, idle, revoked, refresh due).
        SessionsUnavailable
            When the keys or the revocations cannot be read (fail closed).
        """
        values = cookie_values(cookie_headers, SESSION_COOKIE)
        if len(values) != 1:
            # Two cookies of one name: one was planted (by a sibling host or
            # a script); there is no telling which is the person's own.
            detail = "no session cookie" if not values else "several session cookies"
            raise SessionRejected(Reason.SESSION_INVALID, detail)
        session = self._opened(values[0])
        # Revoked first: a revoked session's cookie is recorded as that, whatever else.
        if self._revoked.is_revoked(session.session_id):
            raise SessionEnded(Reason.SESSION_REVOKED, session)
        problem = session.check(self._clock(), idle_seconds=self._idle_seconds)
        if problem is Reason.SESSION_REFRESH_REQUIRED and refresh_due_ok:
            problem = None
        if problem is not None:
            raise SessionEnded(problem, session)
        return session
