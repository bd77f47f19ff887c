"""The ledger's own state in DynamoDB: where the log stands, what is reserved, what is stored.

Item layout (the stage's table, partition key ``pk``, sort key ``sk``)::

    pk="LEDGER"        sk="HEAD"            next sequence, the Merkle tree (compact range),
                                            object count, version, and the pending reservation
    pk="LEDGER"        sk="OBJECT#<start>"  one stored object: key, version id, SHA-256,
                                            first sequence, count, tree size and root after it
    pk="LEDGER"        sk="FENCE#<version>" a reservation abandoned by a crash, and its fence
    pk="LEDGER"        sk="DIGESTS"         the newest signed digest (the chain's head)
    pk="LEDGER-EVENT"  sk=<event id>        which reservation took the event (the dedupe index)

Every change of ``HEAD`` is conditional on its ``version``: a second writer
(or a writer that lost track after a crash) cannot change the log behind
the first one's back. An event counts as stored only when the reservation
its index entry names was committed (its ``OBJECT`` item carries the same
reservation), so entries left by an abandoned reservation mean nothing.

Every read and write goes through the table adapter (:mod:`chalicelib.aws.table`);
the items' attributes are in :mod:`chalicelib.ledger.items`.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from chalicelib.aws.table import Table
from chalicelib.aws.table_errors import CorruptItem, TableError, WriteRefused
from chalicelib.aws.table_layout import (
    LEDGER_DIGEST_CLAIM,
    LEDGER_DIGESTS,
    LEDGER_EVENT,
    LEDGER_HEAD,
    LEDGER_OBJECT,
)
from chalicelib.ledger.errors import LedgerBusy, LedgerUnavailable
from chalicelib.ledger.items import (
    checkpoint_from_item,
    checkpoint_text,
    claim_from_item,
    event_item,
    fence_item,
    head_from_item,
    object_from_item,
    object_item,
)
from chalicelib.ledger.merkle import CompactRange
from chalicelib.ledger.records import Checkpoint, LedgerHead, ObjectRecord, Reservation

# The partitions this store writes (infra/ lets only the ledger's functions write them).
_PK = LEDGER_HEAD.partition
_EVENTS = LEDGER_EVENT.partition
# Past the last object's sort key: the upper end of "every object from here on".
_AFTER_LAST_OBJECT = LEDGER_OBJECT.prefix + "~"
_BATCH_GET = 100
_BATCH_WRITE = 25
_CONCURRENT_REQUESTS = 16
_UNPROCESSED_ATTEMPTS = 8

_Chunk = TypeVar("_Chunk")
_Done = TypeVar("_Done")


class LedgerState:
    """Reads and changes the ledger's state.

    Parameters
    ----------
    dynamodb:
        A low-level boto3 DynamoDB client.
    table:
        The stage's table.
    """

    def __init__(self, dynamodb: Any, table: str) -> None:
        self._table = Table(dynamodb, table)

    def head(self) -> LedgerHead:
        """Where the log stands (an empty log before the first object).

        Raises
        ------
        LedgerUnavailable
            When the table cannot be read or the head is corrupt.
        """
        with _ledger_errors("read the ledger head"):
            item = self._table.get(LEDGER_HEAD.key())
        if item is None:
            return LedgerHead(version=0, next_sequence=0, tree=CompactRange(), objects=0)
        try:
            return head_from_item(item)
        except CorruptItem as exc:
            raise LedgerUnavailable(f"the ledger head is corrupt: {exc}") from exc

    def reserve(self, head: LedgerHead, count: int, key: str, now: float = 0.0) -> Reservation:
        """Hold ``count`` sequence numbers from ``head.next_sequence`` for the object ``key``.

        Raises
        ------
        LedgerBusy
            When the head changed since it was read (another writer).
        LedgerUnavailable
            When the table cannot be written.
        """
        reservation = Reservation(head.version + 1, head.next_sequence, count, key, now)
        values: dict[str, Any] = {":next": reservation.version, ":pending": reservation.as_json()}
        if head.version == 0:
            # No head yet: of two first writers, one creates it.
            condition = "attribute_not_exists(sk)"
            update = (
                "SET version = :next, pending = :pending, next_sequence = :zero, "
                "tree = :empty, objects = :zero"
            )
            values.update({":zero": 0, ":empty": "[]"})
        else:
            # The head is as read and holds no other reservation.
            condition = "version = :seen AND attribute_not_exists(pending)"
            update = "SET version = :next, pending = :pending"
            values[":seen"] = head.version
        with _ledger_errors("reserve sequence numbers"):
            self._table.update(LEDGER_HEAD.key(), update, condition=condition, values=values)
        return reservation

    def index_events(self, reservation: Reservation, event_ids: Iterable[str]) -> None:
        """Record which reservation takes each event (before the object is written).

        Raises
        ------
        LedgerUnavailable
            When the table cannot be written.
        """
        items = [event_item(event_id, reservation) for event_id in event_ids]

        def write(chunk: list[dict[str, Any]]) -> None:
            self._table.batch_put(chunk, _backoff())

        with _ledger_errors("index events"):
            _in_parallel(write, list(_chunks(items, _BATCH_WRITE)))

    def stored_events(self, event_ids: Iterable[str]) -> set[str]:
        """Which of ``event_ids`` are in a committed object already.

        Raises
        ------
        LedgerUnavailable
            When the table cannot be read.
        """
        claimed: dict[str, tuple[int, int]] = {}
        for item in self._batch_get([LEDGER_EVENT.key(event_id) for event_id in set(event_ids)]):
            event_id, start, reservation = self._read(claim_from_item, item)
            claimed[event_id] = (start, reservation)
        if not claimed:
            return set()
        starts = {start for start, _ in claimed.values()}
        committed = {}
        for item in self._batch_get([LEDGER_OBJECT.key(start) for start in starts]):
            record = self._read(object_from_item, item)
            committed[record.first_sequence] = record.reservation
        return {
            event_id
            for event_id, (start, reservation) in claimed.items()
            if committed.get(start) == reservation
        }

    def commit(self, reservation: Reservation, record: ObjectRecord, tree: CompactRange) -> None:
        """Make the object part of the log: advance the head, record the object. One transaction.

        Raises
        ------
        LedgerBusy
            When the head no longer holds ``reservation``.
        LedgerUnavailable
            When the table cannot be written.
        """
        head_update = self._release(
            reservation,
            "SET version = :next, next_sequence = :sequence, tree = :tree, "
            "objects = objects + :one REMOVE pending",
            {
                ":sequence": reservation.start + reservation.count,
                ":tree": json.dumps(tree.to_json()),
                ":one": 1,
            },
        )
        # An object is recorded once: its first sequence is never reserved twice.
        put_object = self._table.put_new(object_item(record))
        with _ledger_errors("commit the object"):
            self._table.transact([head_update, put_object])

    def abandon(self, reservation: Reservation, fence_version_id: str | None) -> None:
        """Give up a reservation whose object was never written (its key is now fenced).

        Raises
        ------
        LedgerBusy
            When the head no longer holds ``reservation``.
        LedgerUnavailable
            When the table cannot be written.
        """
        head_update = self._release(reservation, "SET version = :next REMOVE pending", {})
        put_fence = self._table.put(fence_item(reservation, fence_version_id))
        with _ledger_errors("abandon the reservation"):
            self._table.transact([head_update, put_fence])

    def _release(
        self, reservation: Reservation, update: str, values: dict[str, Any]
    ) -> dict[str, Any]:
        """A head update that ends ``reservation``, only if the head still holds it."""
        return self._table.update_action(
            LEDGER_HEAD.key(),
            update,
            condition="version = :held AND pending = :pending",
            values={
                ":next": reservation.version + 1,
                ":held": reservation.version,
                ":pending": reservation.as_json(),
                **values,
            },
        )

    def objects(self, from_sequence: int = 0) -> list[ObjectRecord]:
        """The committed objects whose first sequence is ``from_sequence`` or later, in order.

        Raises
        ------
        LedgerUnavailable
            When the table cannot be read or a record is corrupt.
        """
        with _ledger_errors("list ledger objects"):
            items = self._table.query(
                LEDGER_OBJECT,
                between=(LEDGER_OBJECT.sort_key(from_sequence), _AFTER_LAST_OBJECT),
            )
            return [self._read(object_from_item, item) for item in items]

    def object_holding(self, event_id: str) -> ObjectRecord | None:
        """The committed object that stores ``event_id`` (None: not stored).

        Raises
        ------
        LedgerUnavailable
            When the table cannot be read.
        """
        claims = self._batch_get([LEDGER_EVENT.key(event_id)])
        if not claims:
            return None
        _, start, reservation = self._read(claim_from_item, claims[0])
        found = self._batch_get([LEDGER_OBJECT.key(start)])
        if not found:
            return None
        record = self._read(object_from_item, found[0])
        return record if record.reservation == reservation else None

    def object_before(self, first_sequence: int) -> ObjectRecord | None:
        """The committed object just before the one starting at ``first_sequence``.

        Raises
        ------
        LedgerUnavailable
            When the table cannot be read.
        """
        with _ledger_errors("read the object before"):
            items = list(
                self._table.query(
                    LEDGER_OBJECT,
                    between=(
                        LEDGER_OBJECT.sort_key(0),
                        LEDGER_OBJECT.sort_key(max(first_sequence - 1, 0)),
                    ),
                    newest_first=True,
                    limit=1,
                )
            )
        if first_sequence == 0 or not items:
            return None
        return self._read(object_from_item, items[0])

    def checkpoint(self) -> tuple[Checkpoint | None, int]:
        """The newest digest's checkpoint (None before the first) and the chain's version.

        Raises
        ------
        LedgerUnavailable
            When the table cannot be read or the item is corrupt.
        """
        with _ledger_errors("read the digest chain"):
            item = self._table.get(LEDGER_DIGESTS.key())
        if item is None:
            return None, 0
        try:
            return checkpoint_from_item(item)
        except CorruptItem as exc:
            raise LedgerUnavailable(f"the digest chain head is corrupt: {exc}") from exc

    def claim_digest(self, version: int, now: float, *, stale_seconds: float = 900.0) -> None:
        """Claim the digest after chain ``version`` for this writer, before anything is stored.

        Two writers that read the chain at once (the schedule and ``gatehouse
        audit digest``) would otherwise both store a locked digest naming the
        same predecessor, a fork no one can remove. A claim older than
        ``stale_seconds`` (longer than the function may run) is a writer that
        died: it is taken over.

        Raises
        ------
        LedgerBusy
            When another writer holds a fresh claim on the same digest.
        LedgerUnavailable
            When the table cannot be written.
        """
        with _ledger_errors("claim the next digest"):
            self._table.update(
                LEDGER_DIGEST_CLAIM.key(),
                "SET claimed = :next, claimed_at = :now",
                condition=("attribute_not_exists(sk) OR claimed < :next OR claimed_at < :stale"),
                values={
                    ":next": version + 1,
                    ":now": int(now),
                    ":stale": int(now - stale_seconds),
                },
            )

    def release_digest_claim(self, version: int, now: float) -> None:
        """Give back the claim :meth:`claim_digest` made at ``now``.

        Best effort: a claim left behind goes stale, and is then taken over.
        """
        try:
            with _ledger_errors("release the digest claim"):
                self._table.update(
                    LEDGER_DIGEST_CLAIM.key(),
                    "SET claimed = :released",
                    condition="claimed = :next AND claimed_at = :now",
                    values={":released": version, ":next": version + 1, ":now": int(now)},
                )
        except (LedgerBusy, LedgerUnavailable):
            pass

    def advance_checkpoint(self, version: int, checkpoint: Checkpoint) -> None:
        """Make ``checkpoint`` the newest, if the chain is still at ``version``.

        Raises
        ------
        LedgerBusy
            When another digest moved the chain meanwhile.
        LedgerUnavailable
            When the table cannot be written.
        """
        # The chain is as read: of two digests, one advances it.
        condition = "attribute_not_exists(sk)" if version == 0 else "version = :seen"
        values: dict[str, Any] = {":next": version + 1, ":checkpoint": checkpoint_text(checkpoint)}
        if version:
            values[":seen"] = version
        with _ledger_errors("advance the digest chain"):
            self._table.update(
                LEDGER_DIGESTS.key(),
                "SET version = :next, checkpoint = :checkpoint",
                condition=condition,
                values=values,
            )

    # --- plumbing --------------------------------------------------------------------------

    def _batch_get(self, keys: list[dict[str, Any]]) -> list[dict[str, Any]]:
        def read(chunk: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return self._table.batch_get(chunk, _backoff())

        with _ledger_errors("read the ledger index"):
            parts = _in_parallel(read, list(_chunks(keys, _BATCH_GET)))
        return [item for part in parts for item in part]

    @staticmethod
    def _read(parse: Callable[[dict[str, Any]], _Done], item: dict[str, Any]) -> _Done:
        """``parse(item)``; a corrupt item makes the ledger's state unreadable."""
        try:
            return parse(item)
        except CorruptItem as exc:
            raise LedgerUnavailable(f"ledger item {item.get('sk')} is corrupt: {exc}") from exc


@contextmanager
def _ledger_errors(what: str) -> Iterator[None]:
    """The one place the table's errors become the ledger's.

    A refused write (a failed condition, a cancelled transaction) means the
    head (or the digest chain) moved since it was read: another writer.
    """
    try:
        yield
    except WriteRefused as exc:
        raise LedgerBusy(f"cannot {what}: the ledger head changed") from exc
    except TableError as exc:
        raise LedgerUnavailable(f"cannot {what}: {exc}") from exc


def _backoff() -> Iterator[int]:
    """Attempt numbers for a batch call, sleeping before each retry of what was left unprocessed.

    DynamoDB leaves items unprocessed when it throttles: retrying at once
    would only add load, so retries back off exponentially with jitter, and
    stop (the table gives up, the queue redelivers the batch later) after a
    bounded number.
    """
    for attempt in range(_UNPROCESSED_ATTEMPTS):
        if attempt:
            time.sleep(random.uniform(0, min(1.0, 0.025 * 2**attempt)))  # noqa: S311 - jitter
        yield attempt


def _in_parallel(work: Callable[[_Chunk], _Done], chunks: list[_Chunk]) -> list[_Done]:
    """``work`` on each chunk, up to :data:`_CONCURRENT_REQUESTS` at a time, results in order.

    A batch of thousands of events is hundreds of index requests; against
    DynamoDB each waits on the network, so sending them one after another
    would bound the writer to a couple of thousand events a second.
    """
    if len(chunks) <= 1:
        return [work(chunk) for chunk in chunks]
    # Imported here: only the writer's large batches need threads, and the
    # authorizer loads this module (through the audit package) on its cold start.
    from concurrent.futures import ThreadPoolExecutor

    workers = min(len(chunks), _CONCURRENT_REQUESTS)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ledger") as pool:
        return list(pool.map(work, chunks))


def _chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
