"""Which sessions are revoked: what every container checks on every session request.

Each revocation is two items of the ``SESSION-REVOKED`` partition (written
together by :meth:`~chalicelib.sessions.store.SessionStore.revoke`): one
named by the session (``ID#<id>``) and one in a time-ordered feed
(``AT#<revoked_at>#<id>``), each living until ten minutes past the
session's end (DynamoDB's TTL). A container holds the revoked ids and reads
the feed at most every ``refresh_seconds``, from where it left off (less
:data:`OVERLAP_SECONDS`, for a revocation stamped by a slower clock or
committed late): one small strongly consistent ``Query``, never an AWS call
per request, and a revocation takes effect everywhere within
``refresh_seconds``. The whole feed is read on the first check and again
every :data:`FULL_READ_SECONDS`, so whatever an incremental read could have
missed is healed, and anyone able to sign in and out in a loop costs each
container one full read per five minutes, not one per refresh.

When the feed cannot be read, the set in hand is used while it is at most
``max_stale_seconds`` old; after that every check fails closed
(:class:`~chalicelib.sessions.errors.SessionsUnavailable`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

from chalicelib.aws.table_errors import CorruptItem, TableError
from chalicelib.aws.table_items import integer
from chalicelib.aws.table_layout import SESSION_REVOKED_AT
from chalicelib.observability import get_logger
from chalicelib.sessions.errors import SessionsUnavailable

if TYPE_CHECKING:
    from chalicelib.aws.table import Table

logger = get_logger(__name__)

# After a failed read, the next one waits this long (no AWS call per request
# while the table is down), or less when the refresh interval is shorter.
_RETRY_SECONDS: Final = 1.0
# An incremental read starts this long before the newest revocation seen.
OVERLAP_SECONDS: Final = 120
# The whole feed is read again this often.
FULL_READ_SECONDS: Final = 300.0
_FEED_END: Final = "~"  # sorts after every "<10 digits>#<id>"


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
        # Session id -> when its revocation item expires (then the session has too).
        self._entries: dict[str, int] = {}
        self._revoked: frozenset[str] | None = None
        self._newest = 0  # the newest revoked_at read from the feed
        self._loaded_at = 0.0
        self._next_read = 0.0
        self._next_full_read = 0.0
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
                self._entries.setdefault(session_id, int(self._clock()) + 86_400)

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
        full = now >= self._next_full_read or self._revoked is None
        low = "" if full else f"{max(0, self._newest - OVERLAP_SECONDS):010d}"
        try:
            items = list(
                self._table.query(
                    SESSION_REVOKED_AT,
                    between=(
                        SESSION_REVOKED_AT.sort_key(low),
                        SESSION_REVOKED_AT.sort_key(_FEED_END),
                    ),
                )
            )
            read = [_entry(item) for item in items]
        except TableError as exc:  # CorruptItem among them
            self._failure = f"{type(exc).__name__}: {exc}"
            self._next_read = now + min(_RETRY_SECONDS, self._refresh_seconds)
            logger.warning("revoked sessions not read: %s", self._failure)
            return
        entries = {} if full else dict(self._entries)
        for revoked_at, session_id, expires in read:
            entries[session_id] = expires
            self._newest = max(self._newest, revoked_at)
        # A session past its end is refused as expired: its revocation can go.
        self._entries = {sid: expires for sid, expires in entries.items() if expires > now}
        self._revoked = frozenset(self._entries)
        self._loaded_at = now
        # Read again before the set grows too old to use, whatever the refresh.
        self._next_read = now + min(self._refresh_seconds, self._max_stale_seconds)
        if full:
            self._next_full_read = now + FULL_READ_SECONDS
        self._failure = ""


def _entry(item: Mapping[str, Any]) -> tuple[int, str, int]:
    """``(revoked_at, session id, expires)`` of a feed item.

    Raises
    ------
    CorruptItem
        When the item's name or TTL is not what the store writes.
    """
    name = SESSION_REVOKED_AT.name(item)
    stamp, separator, session_id = name.partition("#")
    if not (stamp.isdigit() and separator and session_id):
        raise CorruptItem(f"revocation feed item {name!r} is malformed")
    return int(stamp), session_id, integer(item, "ttl")
