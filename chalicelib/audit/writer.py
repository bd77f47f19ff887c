"""The audit writer: queue messages -> the ledger, each event stored exactly once.

Objects live under a Hive-style, time-partitioned key so Athena can prune by
day and hour, named by the first sequence number they hold::

    audit/v1/events/dt=2026-11-28/hour=15/0000000000004096-r12.ndjson.gz

Each stored line is the event with its ledger position appended
(``"ledger":{"sequence":N}``); sequences run from 0 without gaps. Every PUT
carries ``ChecksumAlgorithm="SHA256"`` and ``If-None-Match: *`` and never
sets retention: the bucket's default applies to each new version. Keys and
lines are built by :mod:`chalicelib.ledger.layout`, which every reader shares.

One batch, step by step (a crash between any two loses and duplicates nothing):

1. read the ledger head; finish or abandon a reservation a crash left behind;
2. drop events already stored (the event index) and repeats within the batch;
3. reserve the next sequence numbers (a conditional write on the head);
4. index the events under that reservation;
5. PUT the object, only if its key is new;
6. commit: advance the head (sequence, Merkle tree) and record the object, in
   one transaction;
7. answer SQS, which deletes the messages.

A reservation found pending is settled by *fencing* its key: the writer PUTs
an empty object there with ``If-None-Match``. If that succeeds the real
object was never written (and now never can be): the reservation is
abandoned and its events, still on the queue, go into a later one. If it
fails, the object is there: it is read back and committed. Until the commit,
no event of a reservation counts as stored.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chalicelib.audit.errors import AuditStorageError
from chalicelib.ledger.errors import LedgerBusy, LedgerCorrupt, LedgerError
from chalicelib.ledger.layout import FENCE, object_key, sequence_of, with_sequence
from chalicelib.ledger.merkle import leaf_hash
from chalicelib.ledger.records import ObjectRecord

if TYPE_CHECKING:
    from chalicelib.ledger.merkle import CompactRange
    from chalicelib.ledger.records import LedgerHead, Reservation
    from chalicelib.ledger.state import LedgerState

# Far longer than a writer takes from reserving to committing, and shorter than the
# queue's visibility timeout (60 s locally, 300 s deployed): the batch SQS delivers again
# after a crash finds the crashed writer's reservation stale and settles it at once.
# Fencing a writer that is in fact still running costs it its batch (retried), never an
# event.
STALE_RESERVATION_SECONDS = 50.0
_BUSY_ATTEMPTS = 10  # about 2.5 s of backing off at most


@dataclass(frozen=True, slots=True)
class StoredObject:
    """One object the writer committed to the ledger."""

    key: str
    version_id: str | None
    event_count: int
    size: int
    first_sequence: int = 0
    tree_size: int = 0
    root: str = ""


@dataclass(frozen=True, slots=True)
class BatchResult:
    """What became of one SQS batch."""

    stored: StoredObject | None
    failed_message_ids: tuple[str, ...]
    duplicates: int = 0

    def as_lambda_response(self) -> dict[str, Any]:
        """The partial-batch response understood by the SQS event source mapping."""
        return {"batchItemFailures": [{"itemIdentifier": mid} for mid in self.failed_message_ids]}


class AuditWriter:
    """Stores batches of serialised events in the ledger, each exactly once.

    Parameters
    ----------
    s3:
        A boto3 S3 client.
    bucket:
        The Object Lock audit bucket.
    state:
        The ledger's state.
    clock:
        Epoch seconds now (for partitions and records).
    stale_after_seconds:
        A reservation younger than this belongs to a writer still at work: it is
        waited for, not fenced. Older, its writer is taken for dead.
    after_commit:
        Called with the stored lines and their object's key once a batch is
        committed (detection, :mod:`chalicelib.detect`); also for a batch a
        crashed writer left and this one commits. It reports its own failures.
    """

    def __init__(
        self,
        s3: Any,
        bucket: str,
        state: LedgerState,
        *,
        clock: Callable[[], float] = time.time,
        stale_after_seconds: float = STALE_RESERVATION_SECONDS,
        after_commit: Callable[[Sequence[bytes], str], object] | None = None,
    ) -> None:
        self._after_commit = after_commit
        self._s3 = s3
        self._bucket = bucket
        self._state = state
        self._clock = clock
        self._stale_after = stale_after_seconds

    def handle_sqs_batch(self, event: dict[str, Any]) -> BatchResult:
        """Store the valid messages of an SQS event; report the rest as failures.

        A message that is not one JSON event is reported as failed, so SQS
        retries it and finally moves it to the dead-letter queue instead of
        the writer dropping it. When the batch cannot be committed, every
        message is reported failed: SQS delivers it again, and the ledger
        stores each event once however often it arrives.
        """
        events: list[tuple[str, str]] = []
        accepted: list[str] = []
        failed: list[str] = []
        for record in event.get("Records", []):
            message_id = record.get("messageId", "")
            body = record.get("body", "")
            event_id = _event_id(body)
            if event_id is None:
                failed.append(message_id)
            else:
                events.append((body, event_id))
                accepted.append(message_id)
        if not events:
            return BatchResult(None, tuple(failed))
        for attempt in range(_BUSY_ATTEMPTS):
            try:
                stored, duplicates = self.write(events)
            except LedgerBusy:
                # Another writer moved the head: read it again and retry now, rather than
                # leave the batch to SQS's visibility timeout. Each try is idempotent.
                pause = min(0.02 * 2**attempt, 0.5)
                time.sleep(random.uniform(pause / 2, pause))  # noqa: S311 - jitter only
                continue
            except (LedgerError, AuditStorageError):
                break
            return BatchResult(stored, tuple(failed), duplicates)
        return BatchResult(None, tuple(failed + accepted))

    def write(self, events: Sequence[tuple[str, str]]) -> tuple[StoredObject | None, int]:
        """Store ``(line, event_id)`` pairs not stored before, as one object.

        Returns the object (None when every event was stored already) and how
        many events were dropped as already stored or repeated.

        Raises
        ------
        LedgerError
            When the ledger's state cannot be read or changed; nothing new is committed.
        AuditStorageError
            When the object cannot be written; nothing new is committed.
        """
        head = self._state.head()
        if head.pending is not None:
            self.recover(head)
            head = self._state.head()
        first: dict[str, str] = {}  # each event id once, in arrival order
        for body, event_id in events:
            first.setdefault(event_id, body)
        already = self._state.stored_events(first)
        new = [(event_id, body) for event_id, body in first.items() if event_id not in already]
        duplicates = len(events) - len(new)
        if not new:
            return None, duplicates
        now = self._clock()
        key = object_key(now, head.next_sequence, head.version + 1)
        reservation = self._state.reserve(head, len(new), key, now)
        self._state.index_events(reservation, [event_id for event_id, _ in new])
        lines = [
            with_sequence(body, reservation.start + offset) for offset, (_, body) in enumerate(new)
        ]
        payload = gzip.compress(b"".join(line + b"\n" for line in lines), compresslevel=6, mtime=0)
        version_id = self._put(key, payload)
        stored = self._commit(head.tree, reservation, lines, payload, version_id, now)
        return stored, duplicates

    def recover(self, head: LedgerHead) -> None:
        """Settle the reservation a crashed (or still running) writer left pending.

        Raises
        ------
        LedgerBusy
            When the reservation is young: its writer is probably still at work.
        LedgerError, AuditStorageError
            When it cannot be settled now (the next batch tries again).
        LedgerCorrupt
            When the object at the reserved key is not what the reservation says.
        """
        from botocore.exceptions import ClientError

        reservation = head.pending
        assert reservation is not None
        age = self._clock() - reservation.reserved_at
        if 0 <= age < self._stale_after:
            # Another writer is between its reservation and its commit: let it finish.
            raise LedgerBusy(f"{reservation.key} was reserved {age:.1f} s ago, still in flight")
        try:
            response = self._s3.put_object(
                Bucket=self._bucket,
                Key=reservation.key,
                Body=FENCE,
                ContentType="application/x-ndjson",
                ContentEncoding="gzip",
                ChecksumAlgorithm="SHA256",
                IfNoneMatch="*",
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "PreconditionFailed":
                raise AuditStorageError(f"cannot fence {reservation.key}: {exc}") from exc
        except Exception as exc:
            raise AuditStorageError(f"cannot fence {reservation.key}: {exc}") from exc
        else:
            self._state.abandon(reservation, response.get("VersionId"))
            return
        # The object is there: written by the writer that reserved it, or a fence.
        try:
            found = self._s3.get_object(Bucket=self._bucket, Key=reservation.key)
            payload = found["Body"].read()
        except Exception as exc:
            raise AuditStorageError(f"cannot read {reservation.key}: {exc}") from exc
        lines = [line for line in gzip.decompress(payload).split(b"\n") if line]
        if not lines:  # a fence whose abandonment did not get recorded
            self._state.abandon(reservation, found.get("VersionId"))
            return
        expected = range(reservation.start, reservation.start + reservation.count)
        if [sequence_of(line) for line in lines] != list(expected):
            raise LedgerCorrupt(
                f"{reservation.key} does not hold sequences {expected.start}..{expected.stop - 1}"
            )
        self._commit(head.tree, reservation, lines, payload, found.get("VersionId"), self._clock())

    def _put(self, key: str, payload: bytes) -> str | None:
        try:
            response = self._s3.put_object(
                Bucket=self._bucket,
                Key=key,
                Body=payload,
                ContentType="application/x-ndjson",
                ContentEncoding="gzip",
                ChecksumAlgorithm="SHA256",
                IfNoneMatch="*",  # a fenced key stays fenced; an object is never overwritten
            )
        except Exception as exc:  # any botocore failure means the batch is not stored
            raise AuditStorageError(f"cannot store {key}: {exc}") from exc
        version_id = response.get("VersionId")
        return str(version_id) if version_id is not None else None

    def _commit(
        self,
        tree: CompactRange,
        reservation: Reservation,
        lines: Sequence[bytes],
        payload: bytes,
        version_id: str | None,
        now: float,
    ) -> StoredObject:
        grown = tree.copy()
        for line in lines:
            grown.append(leaf_hash(line))
        record = ObjectRecord(
            key=reservation.key,
            version_id=version_id,
            sha256=hashlib.sha256(payload).hexdigest(),
            first_sequence=reservation.start,
            count=len(lines),
            tree_size=grown.size,
            root=grown.root().hex(),
            frontier=tuple((size, digest.hex()) for size, digest in grown.subtrees),
            reservation=reservation.version,
            written_at=now,
        )
        self._state.commit(reservation, record, grown)
        if self._after_commit is not None:
            # Committed is committed: the hook reports its own failures, never ours.
            with contextlib.suppress(Exception):
                self._after_commit(lines, reservation.key)
        return StoredObject(
            reservation.key,
            version_id,
            len(lines),
            len(payload),
            reservation.start,
            record.tree_size,
            record.root,
        )


def _event_id(body: str) -> str | None:
    """The event id of a queue message that is one JSON event, else None."""
    event_id, problem = message_problem(body)
    return None if problem else event_id


def message_problem(body: str) -> tuple[str | None, str | None]:
    """``(event id, None)`` for a message that is one JSON event, else ``(id or None, why not)``."""
    if "\n" in body:
        return None, "more than one line"
    try:
        value = json.loads(body)
    except ValueError:
        return None, "not JSON"
    if not isinstance(value, dict):
        return None, "not a JSON object"
    event_id = value.get("event_id")
    if not (isinstance(event_id, str) and 0 < len(event_id) <= 64):
        return None, "no event_id (a string of 1 to 64 characters)"
    if "ledger" in value:
        return event_id, "carries a ledger position (the writer's to add)"
    if not body.startswith(f'{{"schema_version":1,"event_id":{json.dumps(event_id)}'):
        # The emitter's form, which verifiers read without a parse: the id it shows
        # first must be the id a parser sees (no second "event_id", no reordering).
        return event_id, 'does not open with {"schema_version":1,"event_id":...} as emitted'
    return event_id, None
