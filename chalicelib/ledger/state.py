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
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from chalicelib.ledger.errors import LedgerBusy, LedgerUnavailable
from chalicelib.ledger.merkle import CompactRange
from chalicelib.ledger.records import LEDGER_PARTITION as _PK
from chalicelib.ledger.records import Checkpoint, LedgerHead, ObjectRecord, Reservation
from chalicelib.ledger.records import object_sort_key as _object_sk

_EVENTS = "LEDGER-EVENT"
_HEAD = "HEAD"
_DIGESTS = "DIGESTS"
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
        self._dynamodb = dynamodb
        self._table = table

    def head(self) -> LedgerHead:
        """Where the log stands (an empty log before the first object).

        Raises
        ------
        LedgerUnavailable
            When the table cannot be read or the head is corrupt.
        """
        item = self._call("read the ledger head", "get_item", Key=_key(_PK, _HEAD)).get("Item")
        if item is None:
            return LedgerHead(version=0, next_sequence=0, tree=CompactRange(), objects=0)
        try:
            pending = item.get("pending")
            return LedgerHead(
                version=int(item["version"]["N"]),
                next_sequence=int(item["next_sequence"]["N"]),
                tree=CompactRange.from_json(json.loads(item["tree"]["S"])),
                objects=int(item["objects"]["N"]),
                pending=Reservation.from_json(pending["S"]) if pending else None,
            )
        except (KeyError, TypeError, ValueError) as exc:
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
        values: dict[str, Any] = {
            ":next": {"N": str(reservation.version)},
            ":pending": {"S": reservation.as_json()},
        }
        if head.version == 0:
            condition = "attribute_not_exists(sk)"
            update = (
                "SET version = :next, pending = :pending, next_sequence = :zero, "
                "tree = :empty, objects = :zero"
            )
            values.update({":zero": {"N": "0"}, ":empty": {"S": "[]"}})
        else:
            condition = "version = :seen AND attribute_not_exists(pending)"
            update = "SET version = :next, pending = :pending"
            values[":seen"] = {"N": str(head.version)}
        self._conditional(
            "reserve sequence numbers",
            Key=_key(_PK, _HEAD),
            UpdateExpression=update,
            ConditionExpression=condition,
            ExpressionAttributeValues=values,
        )
        return reservation

    def index_events(self, reservation: Reservation, event_ids: Iterable[str]) -> None:
        """Record which reservation takes each event (before the object is written).

        Raises
        ------
        LedgerUnavailable
            When the table cannot be written.
        """
        items = [
            {
                "PutRequest": {
                    "Item": {
                        **_key(_EVENTS, event_id),
                        "start": {"N": str(reservation.start)},
                        "reservation": {"N": str(reservation.version)},
                    }
                }
            }
            for event_id in event_ids
        ]

        def write(chunk: list[dict[str, Any]]) -> None:
            pending: dict[str, Any] = {self._table: chunk}
            for _attempt in _attempts("index events"):
                response = self._call(
                    "index events", "batch_write_item", RequestItems=pending, table=False
                )
                pending = response.get("UnprocessedItems") or {}
                if not pending:
                    return

        _in_parallel(write, list(_chunks(items, _BATCH_WRITE)))

    def stored_events(self, event_ids: Iterable[str]) -> set[str]:
        """Which of ``event_ids`` are in a committed object already.

        Raises
        ------
        LedgerUnavailable
            When the table cannot be read.
        """
        claimed: dict[str, tuple[int, int]] = {}
        for item in self._batch_get([_key(_EVENTS, event_id) for event_id in set(event_ids)]):
            claimed[item["sk"]["S"]] = (int(item["start"]["N"]), int(item["reservation"]["N"]))
        if not claimed:
            return set()
        starts = {start for start, _ in claimed.values()}
        committed = {
            int(item["first_sequence"]["N"]): int(item["reservation"]["N"])
            for item in self._batch_get([_key(_PK, _object_sk(start)) for start in starts])
        }
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
                ":sequence": {"N": str(reservation.start + reservation.count)},
                ":tree": {"S": json.dumps(tree.to_json())},
                ":one": {"N": "1"},
            },
        )
        put_object = {
            "Put": {
                "TableName": self._table,
                "Item": record.as_item(),
                "ConditionExpression": "attribute_not_exists(sk)",
            }
        }
        self._transact("commit the object", [head_update, put_object])

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
        fence: dict[str, Any] = {
            **_key(_PK, f"FENCE#{reservation.version:016d}"),
            "key": {"S": reservation.key},
            "start": {"N": str(reservation.start)},
        }
        if fence_version_id is not None:
            fence["version_id"] = {"S": fence_version_id}
        put_fence = {"Put": {"TableName": self._table, "Item": fence}}
        self._transact("abandon the reservation", [head_update, put_fence])

    def _release(
        self, reservation: Reservation, update: str, values: dict[str, Any]
    ) -> dict[str, Any]:
        """A head update that ends ``reservation``, only if the head still holds it."""
        return {
            "Update": {
                "TableName": self._table,
                "Key": _key(_PK, _HEAD),
                "UpdateExpression": update,
                "ConditionExpression": "version = :held AND pending = :pending",
                "ExpressionAttributeValues": {
                    ":next": {"N": str(reservation.version + 1)},
                    ":held": {"N": str(reservation.version)},
                    ":pending": {"S": reservation.as_json()},
                    **values,
                },
            }
        }

    def objects(self, from_sequence: int = 0) -> list[ObjectRecord]:
        """The committed objects whose first sequence is ``from_sequence`` or later, in order.

        Raises
        ------
        LedgerUnavailable
            When the table cannot be read or a record is corrupt.
        """
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": "pk = :pk AND sk BETWEEN :low AND :high",
            "ExpressionAttributeValues": {
                ":pk": {"S": _PK},
                ":low": {"S": _object_sk(from_sequence)},
                ":high": {"S": "OBJECT#~"},
            },
            "ConsistentRead": True,
        }
        records = []
        while True:
            response = self._call("list ledger objects", "query", **kwargs)
            for item in response.get("Items", []):
                try:
                    records.append(ObjectRecord.from_item(item))
                except (KeyError, ValueError) as exc:
                    raise LedgerUnavailable(f"object record {item['sk']} is corrupt") from exc
            if not response.get("LastEvaluatedKey"):
                return records
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def object_holding(self, event_id: str) -> ObjectRecord | None:
        """The committed object that stores ``event_id`` (None: not stored).

        Raises
        ------
        LedgerUnavailable
            When the table cannot be read.
        """
        claims = self._batch_get([_key(_EVENTS, event_id)])
        if not claims:
            return None
        start, reservation = int(claims[0]["start"]["N"]), int(claims[0]["reservation"]["N"])
        found = self._batch_get([_key(_PK, _object_sk(start))])
        if not found or int(found[0]["reservation"]["N"]) != reservation:
            return None
        return ObjectRecord.from_item(found[0])

    def object_before(self, first_sequence: int) -> ObjectRecord | None:
        """The committed object just before the one starting at ``first_sequence``.

        Raises
        ------
        LedgerUnavailable
            When the table cannot be read.
        """
        response = self._call(
            "read the object before",
            "query",
            KeyConditionExpression="pk = :pk AND sk BETWEEN :low AND :high",
            ExpressionAttributeValues={
                ":pk": {"S": _PK},
                ":low": {"S": _object_sk(0)},
                ":high": {"S": _object_sk(max(first_sequence - 1, 0))},
            },
            ScanIndexForward=False,
            Limit=1,
            ConsistentRead=True,
        )
        items = response.get("Items", [])
        if first_sequence == 0 or not items:
            return None
        return ObjectRecord.from_item(items[0])

    def checkpoint(self) -> tuple[Checkpoint | None, int]:
        """The newest digest's checkpoint (None before the first) and the chain's version.

        Raises
        ------
        LedgerUnavailable
            When the table cannot be read or the item is corrupt.
        """
        item = self._call("read the digest chain", "get_item", Key=_key(_PK, _DIGESTS)).get("Item")
        if item is None:
            return None, 0
        try:
            return Checkpoint.from_dict(json.loads(item["checkpoint"]["S"])), int(
                item["version"]["N"]
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise LedgerUnavailable(f"the digest chain head is corrupt: {exc}") from exc

    def advance_checkpoint(self, version: int, checkpoint: Checkpoint) -> None:
        """Make ``checkpoint`` the newest, if the chain is still at ``version``.

        Raises
        ------
        LedgerBusy
            When another digest moved the chain meanwhile.
        LedgerUnavailable
            When the table cannot be written.
        """
        condition = "attribute_not_exists(sk)" if version == 0 else "version = :seen"
        values: dict[str, Any] = {
            ":next": {"N": str(version + 1)},
            ":checkpoint": {"S": json.dumps(checkpoint.as_dict(), sort_keys=True)},
        }
        if version:
            values[":seen"] = {"N": str(version)}
        self._conditional(
            "advance the digest chain",
            Key=_key(_PK, _DIGESTS),
            UpdateExpression="SET version = :next, checkpoint = :checkpoint",
            ConditionExpression=condition,
            ExpressionAttributeValues=values,
        )

    # --- plumbing --------------------------------------------------------------------------

    def _batch_get(self, keys: list[dict[str, Any]]) -> list[dict[str, Any]]:
        def read(chunk: list[dict[str, Any]]) -> list[dict[str, Any]]:
            found: list[dict[str, Any]] = []
            request: dict[str, Any] = {self._table: {"Keys": chunk, "ConsistentRead": True}}
            for _attempt in _attempts("read the ledger index"):
                response = self._call(
                    "read the ledger index", "batch_get_item", RequestItems=request, table=False
                )
                found.extend(response.get("Responses", {}).get(self._table, []))
                request = response.get("UnprocessedKeys") or {}
                if not request:
                    break
            return found

        return [
            item for part in _in_parallel(read, list(_chunks(keys, _BATCH_GET))) for item in part
        ]

    def _conditional(self, what: str, **kwargs: Any) -> None:
        from botocore.exceptions import ClientError

        try:
            self._dynamodb.update_item(TableName=self._table, **kwargs)
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise LedgerBusy(f"cannot {what}: the ledger head changed") from exc
            raise LedgerUnavailable(f"cannot {what}: {exc}") from exc
        except Exception as exc:
            raise LedgerUnavailable(f"cannot {what}: {exc}") from exc

    def _transact(self, what: str, actions: list[dict[str, Any]]) -> None:
        from botocore.exceptions import ClientError

        try:
            self._dynamodb.transact_write_items(TransactItems=actions)
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "TransactionCanceledException":
                raise LedgerBusy(f"cannot {what}: the ledger head changed") from exc
            raise LedgerUnavailable(f"cannot {what}: {exc}") from exc
        except Exception as exc:
            raise LedgerUnavailable(f"cannot {what}: {exc}") from exc

    def _call(self, what: str, operation: str, *, table: bool = True, **kwargs: Any) -> Any:
        if table:
            kwargs["TableName"] = self._table
        try:
            return getattr(self._dynamodb, operation)(**kwargs)
        except Exception as exc:  # botocore raises many unrelated types; all mean unavailable
            raise LedgerUnavailable(f"cannot {what}: {exc}") from exc


def _key(pk: str, sk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def _attempts(what: str) -> Iterator[int]:
    """Attempt numbers for a batch call, sleeping before each retry of what was left unprocessed.

    DynamoDB leaves items unprocessed when it throttles: retrying at once
    would only add load, so retries back off exponentially with jitter, and
    give up (the queue redelivers the batch later) after a bounded number.
    """
    for attempt in range(_UNPROCESSED_ATTEMPTS):
        if attempt:
            time.sleep(random.uniform(0, min(1.0, 0.025 * 2**attempt)))  # noqa: S311 - jitter
        yield attempt
    raise LedgerUnavailable(
        f"cannot {what}: DynamoDB left items unprocessed {_UNPROCESSED_ATTEMPTS} times"
    )


def _in_parallel(work: Callable[[_Chunk], _Done], chunks: list[_Chunk]) -> list[_Done]:
    """``work`` on each chunk, up to :data:`_CONCURRENT_REQUESTS` at a time, results in order.

    A batch of thousands of events is hundreds of index requests; against
    DynamoDB each waits on the network, so sending them one after another
    would bound the writer to a couple of thousand events a second.
    """
    if len(chunks) <= 1:
        return [work(chunk) for chunk in chunks]
    workers = min(len(chunks), _CONCURRENT_REQUESTS)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ledger") as pool:
        return list(pool.map(work, chunks))


def _chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
