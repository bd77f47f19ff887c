"""A value loaded from a store and refreshed on a bound, shared by a container's threads.

Used for the active policy and the live grants: a change in the store is
seen within ``refresh_seconds``; when a refresh fails, the last good value
serves for at most ``max_stale_seconds`` after its last successful load,
then the failure propagates (callers fail closed).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Refreshing(Generic[T]):
    """A refreshed value.

    Parameters
    ----------
    load:
        Loads a fresh value; receives the current one (or None), so it can
        keep what did not change.
    unavailable:
        The exception ``load`` raises when the store cannot be read.
    """

    def __init__(
        self,
        load: Callable[[T | None], T],
        *,
        unavailable: type[Exception],
        refresh_seconds: float,
        max_stale_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._load = load
        self._unavailable = unavailable
        self._refresh = refresh_seconds
        self._max_stale = max_stale_seconds
        self._clock = clock
        self._value: T | None = None
        self._loaded_at: float | None = None
        self._checked_at: float | None = None
        self._lock = threading.Lock()

    def get(self) -> T:
        """The value, refreshed when it is older than the bound."""
        now = self._clock()
        value = self._fresh(now)
        if value is not None:
            return value
        with self._lock:
            value = self._fresh(now)  # another thread may have refreshed while we waited
            return value if value is not None else self._reload(now)

    def _fresh(self, now: float) -> T | None:
        value, checked_at, loaded_at = self._value, self._checked_at, self._loaded_at
        if value is None or checked_at is None or loaded_at is None:
            return None
        if now - checked_at < self._refresh and now - loaded_at < self._max_stale:
            return value
        return None

    def _reload(self, now: float) -> T:
        try:
            value = self._load(self._value)
        except self._unavailable:
            stale_ok = self._loaded_at is not None and now - self._loaded_at < self._max_stale
            if self._value is not None and stale_ok:
                # Retry after a refresh interval, not on every call: during an
                # outage each request would otherwise wait for a failing read.
                self._checked_at = now
                return self._value
            raise
        self._value = value
        self._loaded_at = self._checked_at = now
        return value
