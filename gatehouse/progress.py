"""Progress of long work, shown on a terminal and nowhere else.

``audit verify``, ``audit flush``, the query cache sync and ``audit report``
take seconds to minutes. On a terminal they keep one line on stderr updated
in place (``verify: 12/40 digests, 3,200 events``); when stderr is a file or
a pipe they say nothing, so logs and scripts read only what the command
prints when it is done::

    with Progress("verify") as progress:
        for done, digest in enumerate(digests, 1):
            progress.update(f"{done}/{len(digests)} digests")

The line is redrawn at most every ``interval`` seconds (the last update is
always drawn when the work ends) and cleared at the end: the command's
result is what stays on the screen.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import IO, Any


def is_terminal(stream: IO[Any]) -> bool:
    """Whether ``stream`` is a terminal (a closed or odd stream is not)."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


class Progress:
    """One status line on ``stream`` (default stderr), only when it is a terminal.

    Parameters
    ----------
    label:
        What is in progress (``verify``), printed before each status.
    stream:
        Where the line goes (default: ``sys.stderr`` at the time of the call).
    enabled:
        Force it on or off (default: on exactly when ``stream`` is a terminal).
    interval:
        The shortest time between two redraws, in seconds.
    clock:
        A monotonic clock (tests give their own).
    """

    def __init__(
        self,
        label: str,
        *,
        stream: IO[Any] | None = None,
        enabled: bool | None = None,
        interval: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self._stream = stream if stream is not None else sys.stderr
        self.enabled = is_terminal(self._stream) if enabled is None else enabled
        self._interval = interval
        self._clock = clock
        self._drawn_at: float | None = None
        self._width = 0
        self._pending: str | None = None

    def update(self, status: str) -> None:
        """Show ``status`` (redrawn now unless the last redraw was under ``interval`` ago)."""
        if not self.enabled:
            return
        now = self._clock()
        if self._drawn_at is not None and now - self._drawn_at < self._interval:
            self._pending = status
            return
        self._draw(status)
        self._drawn_at = now

    def close(self) -> None:
        """Clear the line (drawing a pending status first is pointless: it is cleared)."""
        if not self.enabled or self._width == 0:
            return
        self._pending = None
        self._stream.write("\r" + " " * self._width + "\r")
        self._stream.flush()
        self._width = 0

    def _draw(self, status: str) -> None:
        self._pending = None
        line = f"{self.label}: {status}"
        # Pad over what a longer previous line left on screen.
        padding = " " * max(0, self._width - len(line))
        self._stream.write("\r" + line + padding)
        self._stream.flush()
        self._width = len(line)

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()


def count(number: int) -> str:
    """``3200`` -> ``"3,200"``: counts as a progress line shows them."""
    return f"{number:,}"
