"""Fetching and reading the digested objects for the verifier: its I/O pipeline.

The verifier's checks (:mod:`chalicelib.ledger.checks`) take the objects in
digest order, one after the other; this feeds them, fetched and read ahead
on threads and worker processes.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from itertools import islice
from multiprocessing import get_all_start_methods, get_context
from typing import TYPE_CHECKING

from chalicelib.ledger.reading import ObjectReading, read_object

if TYPE_CHECKING:
    from chalicelib.ledger.records import DigestEntry

_DOWNLOADS = 8
_AHEAD = 16
# Below this many objects, starting worker processes costs more than it saves.
POOL_MIN_OBJECTS = 16

# An object's bytes (None: the version is gone) and what reading them gave.
Fetched = tuple[bytes | None, ObjectReading | None]


class ObjectFeed:
    """Fetches and reads the digested objects ahead of the checks, in their order.

    Downloads run on threads (against S3 they wait on the network); reading
    an object (SHA-256, gunzip, a leaf hash per line) runs on ``jobs``
    worker processes when there are enough objects to pay for starting
    them, else on those threads. The checks themselves, which carry the
    tree and the event ids from one object to the next, stay in order in
    the caller's thread.
    """

    def __init__(
        self,
        fetch: Callable[[str, str | None], bytes | None],
        entries: list[DigestEntry],
        jobs: int,
    ) -> None:
        self._fetch = fetch
        self._entries = entries
        self._jobs = jobs
        self._io: ThreadPoolExecutor | None = None
        self._cpu: ProcessPoolExecutor | None = None

    def __enter__(self) -> Iterator[Future[Fetched]]:
        if self._jobs > 1 and len(self._entries) >= POOL_MIN_OBJECTS:
            self._cpu = ProcessPoolExecutor(self._jobs, mp_context=get_context(start_method()))
            # Start every worker now, before this object starts threads.
            self._cpu.submit(int).result()
        self._io = ThreadPoolExecutor(max_workers=_DOWNLOADS, thread_name_prefix="verify")
        return self._ahead(self._io)

    def __exit__(self, *exc_info: object) -> None:
        if self._io is not None:
            self._io.shutdown(cancel_futures=True)
        if self._cpu is not None:
            self._cpu.shutdown(cancel_futures=True)

    def _ahead(self, io: ThreadPoolExecutor) -> Iterator[Future[Fetched]]:
        entries = iter(self._entries)
        pending = deque(io.submit(self._load, entry) for entry in islice(entries, _AHEAD))
        while pending:
            following = next(entries, None)
            if following is not None:
                pending.append(io.submit(self._load, following))
            yield pending.popleft()

    def _load(self, entry: DigestEntry) -> Fetched:
        payload = self._fetch(entry.key, entry.version_id)
        if payload is None:
            return None, None
        first = entry.first_sequence
        if self._cpu is not None:
            return payload, self._cpu.submit(read_object, payload, first).result()
        return payload, read_object(payload, first)


def start_method() -> str:
    """How to start reading processes.

    Forking is fastest and does not import the caller's ``__main__`` again
    (spawn and forkserver do, which breaks unguarded scripts), but a fork
    taken while another thread holds a lock can leave it held in the child:
    so fork only from a single-threaded process, as the CLI is.
    """
    methods = get_all_start_methods()
    if "fork" in methods and threading.active_count() == 1:
        return "fork"
    return "forkserver" if "forkserver" in methods else "spawn"
