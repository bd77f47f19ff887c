"""Where the ledger keeps things in the bucket, and the form they are stored in.

Every producer and reader of the bucket (the writer, the digest writer, the
verifier, proofs, the CLI's local query engine) builds and parses keys and
lines here, so they cannot drift apart::

    audit/v1/events/dt=2026-11-28/hour=15/0000000000004096-r12.ndjson.gz
    audit/v1/digests/dt=2026-11-28/hour=16/20261128T160000Z-0000000000004200.json

An event object is named by the first sequence it holds and the head
version that reserved it. Each of its lines is the event as emitted with
its ledger position appended as the last member
(``"ledger":{"sequence":N}``). Digests and the anchor's checkpoint are
canonical JSON (sorted keys, no spaces), the bytes a signature covers.

This module imports only the standard library: worker processes that read
objects for the verifier import it (see :mod:`chalicelib.ledger.reading`).
"""

from __future__ import annotations

import gzip
import json
import re
import time
from typing import Any

EVENTS_PREFIX = "audit/v1/events/"
DIGESTS_PREFIX = "audit/v1/digests/"
# What witnesses publish: <key id hex>/cosigned/<digest stem>.note, <key id hex>/refused/...
WITNESS_PREFIX = "audit/v1/witness/"

# What the writer leaves at the key of a reservation it abandoned after a crash
# (an empty gzip member, put with If-None-Match so the object can never land).
FENCE = gzip.compress(b"", mtime=0)

# The writer stores every line as ``{"schema_version":1,"event_id":"<id>",...,
# "ledger":{"sequence":N}}`` (it refuses events that open any other way).
LINE_HEAD = b'{"schema_version":1,"event_id":"'
# The end of the line holding sequence N is ``LINE_TAIL % N``.
LINE_TAIL = b',"ledger":{"sequence":%d}}'

_OBJECT_NAME = re.compile(r"/([0-9]{16})-r[0-9]+\.ndjson\.gz\Z")
_TAIL_KEY = b',"ledger":{"sequence":'
_TAIL = re.compile(rb',"ledger":\{"sequence":(0|[1-9][0-9]{0,17})\}\}')


def object_key(epoch_seconds: float, first_sequence: int, reservation: int) -> str:
    """The key of the object whose lines start at ``first_sequence`` (head ``reservation``)."""
    partition = time.strftime("dt=%Y-%m-%d/hour=%H", time.gmtime(epoch_seconds))
    return f"{EVENTS_PREFIX}{partition}/{first_sequence:016d}-r{reservation}.ndjson.gz"


def object_first_sequence(key: str) -> int | None:
    """The first sequence an object's key names (None: not a key :func:`object_key` makes)."""
    match = _OBJECT_NAME.search(key)
    return int(match.group(1)) if match else None


def digest_key(end: float, tree_size: int) -> str:
    """Where the digest ending at ``end`` (epoch seconds) for ``tree_size`` leaves is stored."""
    moment = time.gmtime(end)
    partition = time.strftime("dt=%Y-%m-%d/hour=%H", moment)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", moment)
    return f"{DIGESTS_PREFIX}{partition}/{stamp}-{tree_size:016d}.json"


def digest_stem(key: str) -> str:
    """``dt=.../hour=.../<end>-<size>`` of a digest's key (what witness objects are named by)."""
    stem = key[len(DIGESTS_PREFIX) :] if key.startswith(DIGESTS_PREFIX) else key
    return stem.removesuffix(".json")


def cosigned_key(witness_key_id: str, digest: str) -> str:
    """Where witness ``witness_key_id`` (hex) publishes its cosigned checkpoint of ``digest``."""
    return f"{WITNESS_PREFIX}{witness_key_id}/cosigned/{digest_stem(digest)}.note"


def refusal_key(witness_key_id: str, digest: str) -> str:
    """Where the witness ``witness_key_id`` (hex) publishes its refusal of ``digest``."""
    return f"{WITNESS_PREFIX}{witness_key_id}/refused/{digest_stem(digest)}.json"


def with_sequence(body: str, sequence: int) -> bytes:
    """The stored line: the event ``body`` with its ledger position as the last member."""
    return body.strip()[:-1].encode() + LINE_TAIL % sequence


def sequence_of(line: bytes) -> int | None:
    """The ledger sequence a stored line carries (None: it carries none), parsed as JSON."""
    try:
        value = json.loads(line)
        return int(value["ledger"]["sequence"])
    except (ValueError, KeyError, TypeError):
        return None


def line_position(line: bytes) -> tuple[str | None, int | None]:
    """The event id and ledger sequence of a stored line (None, None: not a ledger event).

    Lines as the writer stores them are read without a JSON parse: the id
    opens the line (the writer refuses events that do not open that way, so
    the id shown first is the id a parser sees) and the position closes it.
    Any other line is parsed.
    """
    if line.startswith(LINE_HEAD):
        end = line.find(b'"', len(LINE_HEAD))
        tail = _TAIL.fullmatch(line, max(0, line.rfind(_TAIL_KEY)))
        event_id = line[len(LINE_HEAD) : end]
        if tail is not None and end > len(LINE_HEAD) and b"\\" not in event_id:
            return event_id.decode("utf-8", "replace"), int(tail.group(1))
    return parsed_position(line)


def parsed_position(line: bytes) -> tuple[str | None, int | None]:
    """:func:`line_position` by a JSON parse: what any line means, however it is spelt."""
    try:
        event = json.loads(line)
        event_id, sequence = event["event_id"], event["ledger"]["sequence"]
    except (ValueError, KeyError, TypeError):
        return None, None
    if not isinstance(event_id, str) or not isinstance(sequence, int):
        return None, None
    return event_id, sequence


def canonical(value: Any) -> bytes:
    """The canonical JSON of ``value`` (sorted keys, no spaces): what a signature covers."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def utc_text(epoch: float) -> str:
    """``2026-11-28T15:00:00Z``."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
