"""Which sessions are revoked: what every container checks on every session request.

Revocations are items of the ``SESSION-REVOKED`` partition (written by
:meth:`~chalicelib.sessions.store.SessionStore.revoke`), each living a day
past the session's end (DynamoDB's TTL). A container holds their ids as a
set and reads the whole partition again (one strongly consistent ``Query``,
paginated) at most every ``refresh_seconds``: no AWS call per request, and
a revocation takes effect everywhere within ``refresh_seconds``.

When the partition cannot be read, the set in hand is used while it is at
most ``max_stale_seconds`` old; after that every check fails closed
(:class:`~chalicelib.sessions.errors.SessionsUnavailable`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from chalicelib.aws.table_errors import TableError
from chalicelib.aws.table_layout import SESSION_REVOKED
from chalicelib.observability import get_logger
from chalicelib.sessions.errors import SessionsUnavailable

if TYPE_CHECKING:
    from chalicelib.aws.table import Table

logger = get_logger(__name__)

# After a failed read, the next one waits this long (no AWS call per request
# while the table is down), or less when the refresh interval is shorter.
_RETRY_SECONDS: Final = 1.0


class RevokedSessions:
    """The revoked session ids, as one container knows them.

    Parameters
    ----------
    table:
        The state table.
    refresh_seconds:
        The longest a revocation waits before this container honours it.
    max_stale_seconds:
        How old the set may grow while the table cannot be read.
    clock:
        Epoch seconds.
    """

    def __init__(
        self,
        table: Table,
        *,
        refresh_seconds: float,
        max_stale_seconds: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._table = table
        self._refresh_seconds = refresh_seconds
        self._max_stale_seconds = max_stale_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._revoked: frozenset[str] | None = None
        self._loaded_at = 0.0
        self._next_read = 0.0
        self._failure = ""

    def is_revoked(self, session_id: str) -> bool:
        """Whether ``session_id`` is revoked (as of at most ``refresh_seconds`` ago).

        Raises
        ------
        SessionsUnavailable
            When the revocations cannot be read and the set in hand is older
            than ``max_stale_seconds`` (or there is none).
        """
        return session_id in self._current()

    def remember(self, session_id: str) -> None:
        """This container revoked ``session_id``: honour it now, not at the next read.

        The next read returns it from the table anyway (reads are strongly
        consistent); until then it is added to the set in hand.
        """
        with self._lock:
            if self._revoked is not None:
                self._revoked = self._revoked | {session_id}

    def _current(self) -> frozenset[str]:
        now = self._clock()
        revoked = self._revoked
        fresh = now < self._next_read and now - self._loaded_at <= self._max_stale_seconds
        if revoked is not None and fresh:
            return revoked
        with self._lock:
            if now >= self._next_read:
                self._read(now)
            revoked = self._revoked
            if revoked is not None and now - self._loaded_at <= self._max_stale_seconds:
                return revoked
        raise SessionsUnavailable(f"the revoked sessions cannot be read: {self._failure}")

    def _read(self, now: float) -> None:
        try:
            ids = frozenset(
                SESSION_REVOKED.name(item) for item in self._table.query(SESSION_REVOKED)
            )
        except TableError as exc:  # CorruptItem among them
            self._failure = f"{type(exc).__name__}: {exc}"
            self._next_read = now + min(_RETRY_SECONDS, self._refresh_seconds)
            logger.warning("revoked sessions not read: %s", self._failure)
            return
        self._revoked = ids
        self._loaded_at = now
        # Read again before the set grows too old to use, whatever the refresh.
        self._next_read = now + min(self._refresh_seconds, self._max_stale_seconds)
        self._failure = ""
