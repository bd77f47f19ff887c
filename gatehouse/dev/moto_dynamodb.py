"""moto's DynamoDB without its whole-table work on every call.

Two of moto's operations cost time in proportion to everything the table
holds, and the local stack's state table grows with every audit object the
ledger records:

* ``Query`` on the table (not an index) sorted *every* item of the table,
  then kept those of the one partition asked for; it reads that partition now;
* ``TransactWriteItems`` deep-copied every table it touches to be able to
  roll back; it copies the items it touches now, and puts them back (or
  removes what it created) when the transaction is cancelled.

Under the moto server's one lock (:mod:`gatehouse.dev.aws_server`) each of
these held up every other AWS call of the stack, the request path's audit
enqueues among them. Neither changes what moto answers: the same items, in
the same order, the same conditions, errors and all-or-nothing writes.
"""

from __future__ import annotations

import copy
import inspect
import threading
from typing import Any

_INSTALLED = False


def install() -> None:
    """Patch moto's DynamoDB ``Query`` and ``TransactWriteItems`` (idempotent)."""
    global _INSTALLED
    if _INSTALLED:
        return
    _install_partition_query()
    _install_item_rollback()
    _INSTALLED = True


def _install_partition_query() -> None:
    from moto.dynamodb.models.table import Table

    original = Table.query
    signature = inspect.signature(original)

    def query(self: Table, *args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(self, *args, **kwargs)
        hash_key = bound.arguments.get("hash_key")
        if bound.arguments.get("index_name") or hash_key is None:
            return original(self, *args, **kwargs)
        # moto keeps the items of hash_key whatever the order it is given them
        # in, then sorts them by range key: give it that partition alone.
        partition = self.items.get(hash_key)
        if partition is None:
            found: list[Any] = []
        elif self.has_range_key:
            found = list(partition.values())
        else:
            found = [partition]
        self.all_items = lambda: found  # type: ignore[method-assign]
        try:
            return original(self, *args, **kwargs)
        finally:
            del self.all_items

    Table.query = query  # type: ignore[method-assign]


class _Copying(threading.local):
    tables = True


_COPYING = _Copying()


class _CopyModule:
    """moto's ``copy`` in its DynamoDB models: tables are not copied while a transaction runs."""

    def __getattr__(self, name: str) -> Any:
        return getattr(copy, name)

    @staticmethod
    def deepcopy(value: Any, memo: Any = None) -> Any:
        from moto.dynamodb.models.table import Table

        if isinstance(value, Table) and not _COPYING.tables:
            return value  # rolled back item by item instead (see _install_item_rollback)
        return copy.deepcopy(value, memo)


def _install_item_rollback() -> None:
    from moto.dynamodb import models
    from moto.dynamodb.models import DynamoDBBackend

    original = DynamoDBBackend.transact_write_items
    setattr(models, "copy", _CopyModule())  # noqa: B010 (the module's own name for copy)

    def transact_write_items(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
        saved = _touched_items(self, transact_items)
        streams = _streams(saved)
        _COPYING.tables = False
        try:
            original(self, transact_items)
        except BaseException:
            _restore(saved, streams)
            raise
        finally:
            _COPYING.tables = True

    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]


def _touched_items(backend: Any, transact_items: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """(table, hash key, range key, a copy of the item or None) for each item an action names."""
    from moto.dynamodb.models.dynamo_type import DynamoType

    saved = []
    for action in transact_items:
        for op in action.values():
            table = backend.tables.get(op.get("TableName")) if isinstance(op, dict) else None
            if table is None:
                continue
            key = op.get("Key") or op.get("Item") or {}
            try:
                hash_key = DynamoType(key[table.hash_key_attr])
                range_key = DynamoType(key[table.range_key_attr]) if table.has_range_key else None
            except (KeyError, TypeError, AttributeError):
                continue  # moto refuses the action before it writes anything
            current = _get(table, hash_key, range_key)
            saved.append((table, hash_key, range_key, copy.deepcopy(current)))
    return saved


def _get(table: Any, hash_key: Any, range_key: Any) -> Any:
    partition = table.items.get(hash_key)
    if table.has_range_key:
        return None if partition is None else partition.get(range_key)
    return partition


def _streams(saved: list[tuple[Any, ...]]) -> dict[Any, int]:
    """How many records each touched table's stream holds (a cancelled write adds none)."""
    return {
        table.stream_shard: len(table.stream_shard.items)
        for table, *_ in saved
        if getattr(table, "stream_shard", None) is not None
    }


def _restore(saved: list[tuple[Any, ...]], streams: dict[Any, int]) -> None:
    """Put every saved item back as it was, newest change first, and drop their stream records."""
    for shard, length in streams.items():
        del shard.items[length:]
    for table, hash_key, range_key, item in reversed(saved):
        if table.has_range_key:
            if item is None:
                table.items.get(hash_key, {}).pop(range_key, None)
            else:
                table.items[hash_key][range_key] = item
        elif item is None:
            table.items.pop(hash_key, None)
        else:
            table.items[hash_key] = item
