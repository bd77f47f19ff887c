"""The one DynamoDB table (policy versions, grants, ledger state): reads, writes, errors.

Every store of the table goes through :class:`Table`, which

- converts values with boto3's ``TypeSerializer``/``TypeDeserializer``
  (:mod:`chalicelib.aws.table_items`): the stores write and read plain
  ``str``, ``int``, ``float`` and ``Decimal``;
- builds partition and sort keys with one :class:`ItemKind` per kind of
  item, all declared in :mod:`chalicelib.aws.table_layout`, so the table's
  layout is read in one place;
- maps botocore's errors once (:func:`_table_error`): a refused condition
  or a cancelled transaction is :class:`WriteRefused` (with each action's
  cancellation reason), an unreadable item :class:`CorruptItem`, anything
  else :class:`TableUnavailable` (:mod:`chalicelib.aws.table_errors`). The
  stores turn these into their own errors.

Condition expressions stay with the stores, next to what they guarantee;
so do retry policies (how long to keep retrying what a batch left unprocessed).

boto3 is imported on the first conversion, never when this module is
loaded: the authorizer imports the stores on a cold start.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from chalicelib.aws.table_errors import TableError, TableUnavailable, WriteRefused
from chalicelib.aws.table_items import Item, deserialize, serialize

if TYPE_CHECKING:
    from chalicelib.aws.table_layout import ItemKind


class Table:
    """One DynamoDB table, through a low-level boto3 client.

    Reads are strongly consistent: every reader here decides something
    (an authorization, a transition) on what it reads.

    Parameters
    ----------
    dynamodb:
        A low-level boto3 DynamoDB client.
    name:
        The table name.
    """

    def __init__(self, dynamodb: Any, name: str) -> None:
        self._dynamodb = dynamodb
        self.name = name

    def get(self, key: Mapping[str, Any]) -> Item | None:
        """The item under ``key``, or None.

        Raises
        ------
        TableUnavailable
            When the table cannot be read.
        CorruptItem
            When the item cannot be read.
        """
        response = self._call(
            "get_item", TableName=self.name, Key=serialize(key), ConsistentRead=True
        )
        item = response.get("Item")
        return None if item is None else deserialize(item)

    def query(
        self,
        kind: ItemKind,
        *,
        newest_first: bool = False,
        limit: int | None = None,
        filter_expression: str | None = None,
        names: Mapping[str, str] | None = None,
        values: Mapping[str, Any] | None = None,
        between: tuple[str, str] | None = None,
    ) -> Iterator[Item]:
        """The items of ``kind``, in sort-key order (reversed when ``newest_first``).

        With ``limit``, one request of at most that many items; without it,
        every page. A filter only saves transfer: it applies after ``limit``.
        With ``between`` (two sort keys, both included), only the items in
        that range rather than every item with the kind's prefix.

        Raises
        ------
        TableUnavailable
            When the table cannot be read.
        CorruptItem
            When an item cannot be read.
        """
        condition = "pk = :pk"
        key_values: Item = {":pk": kind.partition}
        if between is not None:
            condition += " AND sk BETWEEN :low AND :high"
            key_values.update({":low": between[0], ":high": between[1]})
        elif kind.prefix:
            condition += " AND begins_with(sk, :prefix)"
            key_values[":prefix"] = kind.prefix
        request: dict[str, Any] = {
            "TableName": self.name,
            "KeyConditionExpression": condition,
            "ExpressionAttributeValues": serialize({**key_values, **(values or {})}),
            "ScanIndexForward": not newest_first,
            "ConsistentRead": True,
        }
        if limit is not None:
            request["Limit"] = limit
        if filter_expression is not None:
            request["FilterExpression"] = filter_expression
        if names:
            request["ExpressionAttributeNames"] = dict(names)
        while True:
            response = self._call("query", **request)
            for item in response.get("Items", []):
                yield deserialize(item)
            last = response.get("LastEvaluatedKey")
            if limit is not None or not last:
                return
            request["ExclusiveStartKey"] = last

    def update(
        self,
        key: Mapping[str, Any],
        expression: str,
        *,
        condition: str | None = None,
        values: Mapping[str, Any] | None = None,
    ) -> None:
        """Apply ``expression`` to the item under ``key`` (only if ``condition``, when given).

        Raises
        ------
        WriteRefused
            When ``condition`` failed.
        TableUnavailable
            When the table cannot be written.
        """
        request: dict[str, Any] = {
            "TableName": self.name,
            "Key": serialize(key),
            "UpdateExpression": expression,
        }
        _conditional(request, condition, None, values)
        self._call("update_item", **request)

    def delete(self, key: Mapping[str, Any]) -> None:
        """Delete the item under ``key`` (unconditionally; absent is fine).

        Raises
        ------
        TableUnavailable
            When the table cannot be written.
        """
        self._call("delete_item", TableName=self.name, Key=serialize(key))

    # Batches: one request each; ``attempts`` (the caller's retry policy, which
    # may sleep between its steps) bounds how often what DynamoDB left
    # unprocessed is sent again.

    def batch_put(self, items: Sequence[Mapping[str, Any]], attempts: Iterable[object]) -> None:
        """Write ``items`` (each holding its key; at most 25) unconditionally, in one batch.

        Raises
        ------
        TableUnavailable
            When the table cannot be written, or items are still unprocessed
            when ``attempts`` runs out.
        """
        requests = [{"PutRequest": {"Item": serialize(item)}} for item in items]
        pending: dict[str, Any] = {self.name: requests}
        tries = 0
        for _attempt in attempts:
            tries += 1
            response = self._call("batch_write_item", RequestItems=pending)
            pending = response.get("UnprocessedItems") or {}
            if not pending:
                return
        raise TableUnavailable(f"DynamoDB left items unprocessed {tries} times")

    def batch_get(
        self, keys: Sequence[Mapping[str, Any]], attempts: Iterable[object]
    ) -> list[Item]:
        """The items under ``keys`` (at most 100) that exist, in no particular order.

        Strongly consistent, like every read here.

        Raises
        ------
        TableUnavailable
            When the table cannot be read, or keys are still unprocessed when
            ``attempts`` runs out.
        CorruptItem
            When an item cannot be read.
        """
        found: list[Item] = []
        request: dict[str, Any] = {
            self.name: {"Keys": [serialize(key) for key in keys], "ConsistentRead": True}
        }
        tries = 0
        for _attempt in attempts:
            tries += 1
            response = self._call("batch_get_item", RequestItems=request)
            found.extend(map(deserialize, response.get("Responses", {}).get(self.name, [])))
            request = response.get("UnprocessedKeys") or {}
            if not request:
                return found
        raise TableUnavailable(f"DynamoDB left items unprocessed {tries} times")

    # Actions of a transaction: built here, written together by :meth:`transact`.

    def put(
        self,
        item: Mapping[str, Any],
        *,
        condition: str | None = None,
        values: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A transaction action writing ``item`` (which holds its key), if ``condition``."""
        put: dict[str, Any] = {"TableName": self.name, "Item": serialize(item)}
        _conditional(put, condition, None, values)
        return {"Put": put}

    def put_new(self, item: Mapping[str, Any]) -> dict[str, Any]:
        """A transaction action writing ``item`` only where no item is."""
        # No item under the key yet: nothing is ever overwritten.
        return self.put(item, condition="attribute_not_exists(sk)")

    def update_action(
        self,
        key: Mapping[str, Any],
        expression: str,
        *,
        condition: str | None = None,
        names: Mapping[str, str] | None = None,
        values: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A transaction action: ``expression`` on the item under ``key``, if ``condition``."""
        update: dict[str, Any] = {
            "TableName": self.name,
            "Key": serialize(key),
            "UpdateExpression": expression,
        }
        _conditional(update, condition, names, values)
        return {"Update": update}

    def delete_action(
        self, key: Mapping[str, Any], *, condition: str | None = None
    ) -> dict[str, Any]:
        """A transaction action deleting the item under ``key``, if ``condition``."""
        delete: dict[str, Any] = {"TableName": self.name, "Key": serialize(key)}
        _conditional(delete, condition, None, None)
        return {"Delete": delete}

    def transact(self, actions: list[dict[str, Any]]) -> None:
        """Write ``actions`` all together, or none of them.

        Raises
        ------
        WriteRefused
            When a condition failed or another transaction held an item
            (``reasons`` says which, per action).
        TableUnavailable
            When the table cannot be written.
        """
        self._call("transact_write_items", TransactItems=actions)

    def _call(self, operation: str, **request: Any) -> dict[str, Any]:
        """Call the client; the one place botocore's errors become this module's."""
        try:
            response: dict[str, Any] = getattr(self._dynamodb, operation)(**request)
        except Exception as exc:  # botocore raises many unrelated types; all mean unavailable
            raise _table_error(exc) from exc
        return response


def _conditional(
    action: dict[str, Any],
    condition: str | None,
    names: Mapping[str, str] | None,
    values: Mapping[str, Any] | None,
) -> None:
    if condition is not None:
        action["ConditionExpression"] = condition
    if names:
        action["ExpressionAttributeNames"] = dict(names)
    if values:
        action["ExpressionAttributeValues"] = serialize(values)


def _table_error(exc: Exception) -> TableError:
    from botocore.exceptions import ClientError  # loaded already: a client exists

    if not isinstance(exc, ClientError):
        return TableUnavailable(str(exc))
    response: dict[str, Any] = dict(exc.response)
    code = response.get("Error", {}).get("Code")
    if code == "ConditionalCheckFailedException":
        return WriteRefused(str(exc), ("ConditionalCheckFailed",))
    if code == "TransactionCanceledException":
        reasons = tuple(
            str(reason.get("Code")) for reason in response.get("CancellationReasons", ())
        )
        return WriteRefused(str(exc), reasons)
    return TableUnavailable(str(exc))
