"""The local stack's console: whole lines only, whichever thread prints.

In Lambda each container has its own stdout. The local stack runs every
function in threads of one process, and ``print`` writes its text and its
newline as two calls: two handlers printing at once (an EMF metrics line
from the authorizer and one from the proxy) could interleave into one line
that no log reader can parse. :class:`LineAtomicStream` keeps each thread's
partial line to itself and writes a line only once it is complete, in one
call, under one lock.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Iterator
from typing import TextIO


class LineAtomicStream:
    """A text stream that writes each thread's complete lines whole.

    Parameters
    ----------
    target
        The stream the lines end up on (the process's real stdout).
    """

    def __init__(self, target: TextIO) -> None:
        self._target = target
        self._lock = threading.Lock()
        self._pending = threading.local()

    def write(self, text: str) -> int:
        """Keep ``text``; write every line it completes, whole."""
        pending: str = getattr(self._pending, "text", "") + text
        complete, newline, partial = pending.rpartition("\n")
        self._pending.text = partial
        if newline:
            self._emit(complete + newline)
        return len(text)

    def flush(self) -> None:
        """Write this thread's partial line too (a prompt, a progress count)."""
        partial: str = getattr(self._pending, "text", "")
        self._pending.text = ""
        self._emit(partial)

    def _emit(self, text: str) -> None:
        with self._lock:
            if text:
                self._target.write(text)
            self._target.flush()

    def isatty(self) -> bool:
        """Whether the target is a terminal."""
        return self._target.isatty()

    def fileno(self) -> int:
        """The target's file descriptor."""
        return self._target.fileno()

    @property
    def encoding(self) -> str:
        """The target's encoding."""
        return self._target.encoding


@contextlib.contextmanager
def whole_lines() -> Iterator[LineAtomicStream]:
    """Route ``sys.stdout`` through a :class:`LineAtomicStream` for the block."""
    original = sys.stdout
    stream = LineAtomicStream(original)
    sys.stdout = stream
    try:
        yield stream
    finally:
        stream.flush()
        sys.stdout = original
