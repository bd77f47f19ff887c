"""Reading one stored object for the verifier: the part that can run anywhere.

:func:`read_object` is pure and imports only the standard library,
:mod:`chalicelib.ledger.layout` and :mod:`chalicelib.ledger.merkle` (which
import nothing else), so that
the verifier can hand objects to worker processes (hashing and gunzip are
most of a verification, and they spread over cores) and keep only the
ordered part, the tree and the set of event ids, in its own process.
"""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass

from chalicelib.ledger.layout import LINE_HEAD, LINE_TAIL
from chalicelib.ledger.merkle import aligned_subtrees


@dataclass(frozen=True, slots=True)
class ObjectReading:
    """What one object holds, as far as it can be known without the rest of the log.

    ``subtrees`` (the object's leaves hashed into the tree's own perfect
    subtrees, see :func:`~chalicelib.ledger.merkle.aligned_subtrees`) and
    ``event_ids`` are set only when every line is as the writer stores it,
    at the position it must have, with an id not repeated within the object
    (the fast path). Otherwise they are None and the verifier judges the
    object line by line, naming what is wrong.
    """

    sha256: str
    line_count: int
    subtrees: list[tuple[int, bytes]] | None = None
    event_ids: frozenset[bytes] | None = None
    gzip_error: str | None = None


def split_lines(text: bytes) -> list[bytes]:
    """The non-empty lines of an object's decompressed text."""
    lines = text.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    if b"" in lines:
        lines = [line for line in lines if line]
    return lines


def gunzip(payload: bytes) -> bytes:
    """The text of a gzip file of one or more members.

    :func:`gzip.decompress` does the same in Python and costs twice as much
    on a megabyte of lines.

    Raises
    ------
    EOFError
        When a member is cut short.
    zlib.error
        When the bytes are not gzip.
    """
    parts = []
    rest = payload
    while rest:
        member = zlib.decompressobj(wbits=31)
        parts.append(member.decompress(rest))
        if not member.eof:
            raise EOFError("the gzip stream ends before its end-of-stream marker")
        rest = member.unused_data
    return b"".join(parts)


def read_object(payload: bytes, first_sequence: int) -> ObjectReading:
    """Hash, decompress and take apart one object whose first line is ``first_sequence``."""
    digest = hashlib.sha256(payload).hexdigest()
    try:
        lines = split_lines(gunzip(payload))
    except (zlib.error, EOFError) as exc:
        return ObjectReading(digest, 0, gzip_error=str(exc))
    start = len(LINE_HEAD)
    if not all(
        line.startswith(LINE_HEAD) and line.endswith(LINE_TAIL % sequence)
        for sequence, line in enumerate(lines, first_sequence)
    ):
        return ObjectReading(digest, len(lines))
    ids = [line[start : line.find(b'"', start)] for line in lines]
    unique = frozenset(ids)
    # An id with an escape could read differently to a JSON parser; an empty
    # one is not an id. Both go the slow way, which names them.
    if len(unique) != len(ids) or b"" in unique or b"\\" in b"".join(ids):
        return ObjectReading(digest, len(lines))
    sha256 = hashlib.sha256
    leaves = [sha256(b"\x00" + line).digest() for line in lines]
    subtrees = aligned_subtrees(first_sequence, leaves)
    return ObjectReading(digest, len(lines), subtrees=subtrees, event_ids=unique)
