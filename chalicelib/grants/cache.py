"""The live grants as one container sees them, refreshed on a bound.

Approvals and revocations are noticed within ``refresh_seconds`` (the same
bound as policy changes). Expiry is not this cache's business: the engine
checks every grant against the request time, to the second.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from chalicelib.grants.errors import GrantsUnavailable

if TYPE_CHECKING:
    from chalicelib.grants.model import Grant
    from chalicelib.grants.store import GrantStore

Principal = tuple[str, str]


class ActiveGrants:
    """Live grants by principal.

    When a refresh fails, the last good set serves for at most
    ``max_stale_seconds`` after its last successful load; after that
    :meth:`for_principal` raises :class:`GrantsUnavailable` and decisions go
    on without grants.
    """

    def __init__(
        self,
        store: GrantStore,
        *,
        refresh_seconds: float,
        max_stale_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._refresh = refresh_seconds
        self._max_stale = max_stale_seconds
        self._clock = clock
        self._by_principal: dict[Principal, tuple[Grant, ...]] | None = None
        self._loaded_at: float | None = None
        self._checked_at: float | None = None
        self._lock = threading.Lock()

    def for_principal(self, issuer: str, subject: str) -> tuple[Grant, ...]:
        """The live grants of ``(issuer, subject)`` (possibly past expiry: check the time).

        Raises
        ------
        GrantsUnavailable
            When grants could not be loaded recently enough.
        """
        now = self._clock()
        grants, checked_at = self._by_principal, self._checked_at
        if grants is None or checked_at is None or now - checked_at >= self._refresh:
            with self._lock:
                grants = self._reload(now)
        return grants.get((issuer, subject), ())

    def _reload(self, now: float) -> dict[Principal, tuple[Grant, ...]]:
        current = self._by_principal
        checked_at = self._checked_at
        if current is not None and checked_at is not None and now - checked_at < self._refresh:
            return current  # another thread refreshed while we waited
        try:
            by_principal: dict[Principal, list[Grant]] = {}
            for grant in self._store.live_grants():
                by_principal.setdefault(grant.principal, []).append(grant)
        except GrantsUnavailable:
            stale_ok = self._loaded_at is not None and now - self._loaded_at < self._max_stale
            if current is not None and stale_ok:
                return current
            raise
        loaded = {principal: tuple(grants) for principal, grants in by_principal.items()}
        self._by_principal = loaded
        self._loaded_at = self._checked_at = now
        return loaded
